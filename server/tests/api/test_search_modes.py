"""Keyword and hybrid search over real gRPC with the real model: congruent
with brute-force BM25 and RRF oracles, confined to scope and filter, exact
through every write path and a restart, and deaf to query syntax."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server.embed.base import Embedder

from .. import keyword_oracle as oracle
from ..conftest import RunningServer, error_of, make_settings, start_server

FACTS = [
    "Booked flight LH440 from Frankfurt to Boston on 2024-03-05",
    "Order A-7731 shipped; the invoice for A-7731 is still pending",
    "Upgraded the mobile client to v2.3.1 after the v2.3.0 crash",
    "Alice prefers window seats on long flights",
    "Support ticket 7731 was closed as a duplicate",
    "Lunch with Zoë at the café near the station",
    "The quarterly tax filing is due in April",
    "Alice is allergic to peanuts and carries an epipen",
]
NASTY = [
    '"LH440',
    "LH440*",
    "NEAR(flight boston)",
    "-A-7731",
    "(v2.3.1)",
    "flight AND NOT boston",
    "OR",
    '"',
    "*",
]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[RunningServer]:
    """A server of its own, so the oracle knows every stored row."""
    running = start_server(make_settings(tmp_path_factory.mktemp("modes")), embedder)
    yield running
    running.stop()


class Corpus:
    """What the server stores, as the oracle sees it."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.texts: dict[str, str] = {}
        self.users: dict[str, str] = {}
        self.tags: dict[str, tuple[str, ...]] = {}

    def add(self, uid: str, facts: list[str], tags: tuple[str, ...] = ()) -> list[m.Memory]:
        ops = [
            pb.WriteOperation(
                create=pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content=f, tags=tags))
            )
            for f in facts
        ]
        response = self.server.memory.BatchWriteMemories(pb.BatchWriteMemoriesRequest(operations=ops))
        out = [r.create.memory for r in response.results]
        for memory in out:
            self.texts[memory.id] = memory.content
            self.users[memory.id] = uid
            self.tags[memory.id] = tuple(memory.tags)
        return out

    def forget(self, memory_id: str) -> None:
        del self.texts[memory_id], self.users[memory_id], self.tags[memory_id]

    def of(self, uid: str) -> list[str]:
        return [i for i, u in self.users.items() if u == uid]


@pytest.fixture(scope="module")
def corpus(fresh: RunningServer) -> Corpus:
    c = Corpus(fresh)
    c.add("alice", FACTS, ("a",))
    c.add("alice", ["LH440 LH440 rebooked twice, flight LH440 again"], ("b",))
    c.add("bob", ["Bob flies LH440 to Boston as well", "Bob's order A-7731 is his, not Alice's"])
    return c


def search(server: RunningServer, query: str, mode: int, **fields: object) -> list[tuple[str, float]]:
    request = pb.SearchMemoriesRequest(query=query, mode=mode, **fields)  # type: ignore[arg-type]
    return [(h.memory.id, h.score) for h in server.memory.SearchMemories(request).hits]


def assert_same(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [i for i, _ in got] == [i for i, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], rel=1e-5)


QUERIES = ["LH440", "A-7731", "7731", "v2.3.1", "flight to Boston", "what is Alice allergic to?", "cafe zoe"]


@pytest.mark.parametrize("query", QUERIES + NASTY)
def test_keyword_search_is_bm25_within_the_scope(fresh: RunningServer, corpus: Corpus, query: str) -> None:
    for uid in ("alice", "bob"):
        got = search(fresh, query, pb.SEARCH_MODE_KEYWORD, scope=m.Scope(user_id=uid), top_k=5)
        assert_same(got, oracle.bm25(query, corpus.texts, corpus.of(uid), 5))
        assert all(corpus.users[i] == uid for i, _ in got)


def test_keyword_search_takes_filters_before_ranking(fresh: RunningServer, corpus: Corpus) -> None:
    eligible = [i for i in corpus.of("alice") if "a" in corpus.tags[i]]
    got = search(
        fresh, "LH440", pb.SEARCH_MODE_KEYWORD, scope=m.Scope(user_id="alice"), filter='tags:"a"', top_k=1
    )
    assert_same(got, oracle.bm25("LH440", corpus.texts, eligible, 1))
    # Without the filter the repeated LH440 memory (tag b) wins: the filter was not applied after a LIMIT.
    top = search(fresh, "LH440", pb.SEARCH_MODE_KEYWORD, scope=m.Scope(user_id="alice"), top_k=1)
    assert top[0][0] != got[0][0]


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("rrf_k", [None, 1, 200])
def test_hybrid_is_rrf_of_the_two_rankings(
    fresh: RunningServer, corpus: Corpus, query: str, rrf_k: int | None
) -> None:
    scope = m.Scope(user_id="alice")
    extra = {} if rrf_k is None else {"rrf_k": rrf_k}
    by_vector = [i for i, _ in search(fresh, query, pb.SEARCH_MODE_VECTOR, scope=scope, top_k=50)]
    by_words = [i for i, _ in search(fresh, query, pb.SEARCH_MODE_KEYWORD, scope=scope, top_k=50)]
    got = search(fresh, query, pb.SEARCH_MODE_HYBRID, scope=scope, top_k=4, **extra)
    assert_same(got, oracle.rrf([by_vector, by_words], 60 if rrf_k is None else rrf_k, 4))
    assert all(corpus.users[i] == "alice" for i, _ in got)


def test_hybrid_ranks_the_exact_identifier_first(fresh: RunningServer, corpus: Corpus) -> None:
    got = search(fresh, "ticket 7731", pb.SEARCH_MODE_HYBRID, scope=m.Scope(user_id="alice"), top_k=3)
    assert corpus.texts[got[0][0]] == "Support ticket 7731 was closed as a duplicate"
    got = search(fresh, "v2.3.1", pb.SEARCH_MODE_HYBRID, scope=m.Scope(user_id="alice"), top_k=3)
    assert "v2.3.1" in corpus.texts[got[0][0]]


def test_hybrid_min_score_applies_to_the_vector_half(fresh: RunningServer, corpus: Corpus) -> None:
    scope = m.Scope(user_id="alice")
    by_words = [i for i, _ in search(fresh, "A-7731", pb.SEARCH_MODE_KEYWORD, scope=scope, top_k=50)]
    by_vector = [
        i for i, _ in search(fresh, "A-7731", pb.SEARCH_MODE_VECTOR, scope=scope, top_k=50, min_score=0.99)
    ]
    got = search(fresh, "A-7731", pb.SEARCH_MODE_HYBRID, scope=scope, top_k=10, min_score=0.99)
    assert_same(got, oracle.rrf([by_vector, by_words], 60, 10))


def test_modes_share_no_cache_entries(fresh: RunningServer, corpus: Corpus) -> None:
    scope = m.Scope(user_id="alice")
    for _ in range(2):  # the second round is served from the result cache
        vector = search(fresh, "LH440", pb.SEARCH_MODE_VECTOR, scope=scope)
        keyword = search(fresh, "LH440", pb.SEARCH_MODE_KEYWORD, scope=scope)
        hybrid = search(fresh, "LH440", pb.SEARCH_MODE_HYBRID, scope=scope)
        hybrid_k1 = search(fresh, "LH440", pb.SEARCH_MODE_HYBRID, scope=scope, rrf_k=1)
        assert search(fresh, "LH440", pb.SEARCH_MODE_UNSPECIFIED, scope=scope) == vector
        assert_same(keyword, oracle.bm25("LH440", corpus.texts, corpus.of("alice"), 10))
        assert hybrid[0][1] == pytest.approx(2 / 61) and hybrid_k1[0][1] == pytest.approx(1.0)
        assert len({tuple(vector), tuple(keyword), tuple(hybrid)}) == 3


def test_batch_and_stream_take_the_modes(fresh: RunningServer, corpus: Corpus) -> None:
    requests = [
        pb.SearchMemoriesRequest(query=q, mode=mode, scope=m.Scope(user_id="alice"), top_k=3)
        for q in ("A-7731", "flight to Boston")
        for mode in (pb.SEARCH_MODE_VECTOR, pb.SEARCH_MODE_KEYWORD, pb.SEARCH_MODE_HYBRID)
    ]

    def view(results: list[pb.SearchMemoriesResponse]) -> list[tuple[str, list[tuple[str, float]]]]:
        # Batched embeddings may differ from single ones in the last bits, and
        # last_retrieve_time moves with every search: compare ids and scores.
        return [(r.embedding_model, [(h.memory.id, round(h.score, 4)) for h in r.hits]) for r in results]

    unary = [fresh.memory.SearchMemories(r) for r in requests]
    batch = fresh.memory.BatchSearchMemories(pb.BatchSearchMemoriesRequest(requests=requests)).results
    assert view(list(batch)) == view(unary)
    stream = fresh.memory.StreamSearchMemories(
        iter([pb.StreamSearchMemoriesRequest(query_id=str(i), search=r) for i, r in enumerate(requests)])
    )
    by_id = {x.query_id: x.result for x in stream}
    assert view([by_id[str(i)] for i in range(len(requests))]) == view(unary)
    assert [r.embedding_model for r in unary] == ["all-MiniLM-L6-v2", "", "all-MiniLM-L6-v2"] * 2


@pytest.mark.parametrize(
    ("fields", "reason", "field"),
    [
        ({"vector": [0.1] * 384, "mode": pb.SEARCH_MODE_KEYWORD}, "QUERY_REQUIRED", "query"),
        ({"vector": [0.1] * 384, "mode": pb.SEARCH_MODE_HYBRID}, "QUERY_REQUIRED", "query"),
        ({"mode": pb.SEARCH_MODE_KEYWORD}, "QUERY_REQUIRED", "query"),
        ({"query": "x", "mode": pb.SEARCH_MODE_KEYWORD, "min_score": 0.5}, "INVALID_ARGUMENT", "min_score"),
        ({"query": "x", "mode": pb.SEARCH_MODE_HYBRID, "rrf_k": 0}, "INVALID_ARGUMENT", "rrf_k"),
        ({"query": "x", "mode": pb.SEARCH_MODE_HYBRID, "rrf_k": 10001}, "INVALID_ARGUMENT", "rrf_k"),
        ({"query": "x", "mode": 99}, "INVALID_ENUM_VALUE", "mode"),
    ],
)
def test_bad_mode_requests_are_invalid_argument(
    fresh: RunningServer, fields: dict[str, object], reason: str, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        fresh.memory.SearchMemories(pb.SearchMemoriesRequest(**fields))  # type: ignore[arg-type]
    assert error_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, reason, [field])
    with pytest.raises(grpc.RpcError) as err:
        fresh.memory.BatchSearchMemories(
            pb.BatchSearchMemoriesRequest(
                requests=[pb.SearchMemoriesRequest(query="ok"), pb.SearchMemoriesRequest(**fields)]
            )  # type: ignore[arg-type]
        )
    assert error_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, reason, [f"requests[1].{field}"])


@pytest.mark.parametrize("query", ["?!", "the of and", "--- ... ***", '""', "()"])
def test_queries_without_words_have_no_keyword_hits(fresh: RunningServer, corpus: Corpus, query: str) -> None:
    assert search(fresh, query, pb.SEARCH_MODE_KEYWORD, scope=m.Scope(user_id="alice")) == []
    # Hybrid falls back to the vector ranking alone.
    by_vector = [
        i for i, _ in search(fresh, query, pb.SEARCH_MODE_VECTOR, scope=m.Scope(user_id="alice"), top_k=50)
    ]
    got = search(fresh, query, pb.SEARCH_MODE_HYBRID, scope=m.Scope(user_id="alice"), top_k=3)
    assert_same(got, oracle.rrf([by_vector], 60, 3))


def test_the_keyword_index_follows_every_write_and_a_restart(tmp_path: Path, embedder: Embedder) -> None:
    server = start_server(make_settings(tmp_path, server={"sweep_interval_s": 0.1}), embedder)
    try:
        c = Corpus(server)
        first = c.add(
            "carol", ["Carol's passport number is X-1234", "Carol flies LH440 on Friday", "tmp note"]
        )
        c.add("dave", ["Dave's passport number is X-1234 too"])

        def check(query: str) -> None:
            for uid in ("carol", "dave"):
                got = search(server, query, pb.SEARCH_MODE_KEYWORD, scope=m.Scope(user_id=uid), top_k=10)
                assert_same(got, oracle.bm25(query, c.texts, c.of(uid), 10))

        # update
        server.memory.UpdateMemory(
            pb.UpdateMemoryRequest(
                memory=m.Memory(id=first[1].id, content="Carol flies LX318 on Monday"),
                update_mask=field_mask_pb2.FieldMask(paths=["content"]),
            )
        )
        c.texts[first[1].id] = "Carol flies LX318 on Monday"
        check("LH440 LX318 Friday Monday")
        # delete
        server.memory.DeleteMemory(pb.DeleteMemoryRequest(id=first[2].id))
        c.forget(first[2].id)
        check("tmp note")
        # TTL expiry: hidden at once, then swept
        short = server.memory.CreateMemory(
            pb.CreateMemoryRequest(
                memory=m.Memory(user_id="carol", content="ephemeral code Z-99"),
                ttl=duration_pb2.Duration(nanos=200_000_000),
            )
        ).memory
        c.texts[short.id], c.users[short.id], c.tags[short.id] = short.content, "carol", ()
        check("Z-99")
        import time

        time.sleep(0.3)
        assert search(server, "Z-99", pb.SEARCH_MODE_KEYWORD, scope=m.Scope(user_id="carol")) == []
        deadline = time.monotonic() + 10
        while server.app.service.store.count() > 3 and time.monotonic() < deadline:  # swept
            time.sleep(0.05)
        c.forget(short.id)
        check("Z-99 passport")
        # forget a user
        server.memory.DeleteMemories(pb.DeleteMemoriesRequest(scope=m.Scope(user_id="dave")))
        for i in c.of("dave"):
            c.forget(i)
        check("X-1234 passport")
        # import
        imported = m.Memory(
            id="imp-1", user_id="dave", content="Imported memo about X-1234", embedding=[0.1] * 384
        )
        header = next(iter(server.memory.ExportMemories(pb.ExportMemoriesRequest()))).header
        report = server.memory.ImportMemories(
            iter([pb.ImportMemoriesRequest(header=header), pb.ImportMemoriesRequest(memory=imported)])
        )
        assert report.imported_count == 1
        c.texts["imp-1"], c.users["imp-1"], c.tags["imp-1"] = imported.content, "dave", ()
        check("X-1234 imported")
    finally:
        server.stop()
    server = start_server(make_settings(tmp_path), embedder)
    try:
        c.server = server
        check("X-1234 LX318 imported passport")
        server.app.service.store.check_keyword_index()  # type: ignore[attr-defined]
    finally:
        server.stop()


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def test_keyword_search_on_the_shared_server_sees_only_the_user(server: RunningServer) -> None:
    alice, bob = user(), user()
    for uid in (alice, bob):
        server.memory.CreateMemory(
            pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content=f"code Q-{uid}"))
        )
    for mode in (pb.SEARCH_MODE_KEYWORD, pb.SEARCH_MODE_HYBRID):
        hits = server.memory.SearchMemories(
            pb.SearchMemoriesRequest(query=f"Q-{bob}", mode=mode, scope=m.Scope(user_id=alice), top_k=50)
        ).hits
        assert [h.memory.user_id for h in hits] == [alice] * len(hits) and len(hits) <= 1


def explained(server: RunningServer, query: str, mode: int, **fields: object) -> list[pb.SearchHit]:
    request = pb.SearchMemoriesRequest(query=query, mode=mode, explain=True, **fields)  # type: ignore[arg-type]
    return list(server.memory.SearchMemories(request).hits)


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("rrf_k", [None, 1, 200])
def test_hybrid_explanations_are_the_fusion_formula(
    fresh: RunningServer, corpus: Corpus, query: str, rrf_k: int | None
) -> None:
    scope = m.Scope(user_id="alice")
    k = 60 if rrf_k is None else rrf_k
    extra = {} if rrf_k is None else {"rrf_k": rrf_k}
    by_vector = search(fresh, query, pb.SEARCH_MODE_VECTOR, scope=scope, top_k=50)
    by_words = search(fresh, query, pb.SEARCH_MODE_KEYWORD, scope=scope, top_k=50)
    vector_at = {i: (rank, s) for rank, (i, s) in enumerate(by_vector, start=1)}
    words_at = {i: (rank, s) for rank, (i, s) in enumerate(by_words, start=1)}
    hits = explained(fresh, query, pb.SEARCH_MODE_HYBRID, scope=scope, top_k=6, **extra)
    plain = search(fresh, query, pb.SEARCH_MODE_HYBRID, scope=scope, top_k=6, **extra)
    assert [(h.memory.id, h.score) for h in hits] == plain, "explaining changes no ranking"
    assert hits
    for hit in hits:
        e = hit.explanation
        assert e.HasField("fused_score") and e.fused_score == hit.score
        fused = 0.0
        if hit.memory.id in vector_at:
            rank, score = vector_at[hit.memory.id]
            assert (e.vector_rank, e.vector_score) == (rank, pytest.approx(score, abs=1e-6))
            fused += 1 / (k + e.vector_rank)
        else:
            assert not e.HasField("vector_rank") and not e.HasField("vector_score")
        if hit.memory.id in words_at:
            rank, score = words_at[hit.memory.id]
            assert (e.keyword_rank, e.keyword_score) == (rank, pytest.approx(score, rel=1e-5))
            fused += 1 / (k + e.keyword_rank)
        else:
            assert not e.HasField("keyword_rank") and not e.HasField("keyword_score")
        assert e.fused_score == pytest.approx(fused, rel=1e-6)


def test_a_half_that_misses_a_hit_leaves_its_parts_unset(fresh: RunningServer, corpus: Corpus) -> None:
    scope = m.Scope(user_id="alice")
    # min_score 0.99 empties the vector half: every hit is the keyword half's alone.
    hits = explained(fresh, "A-7731", pb.SEARCH_MODE_HYBRID, scope=scope, min_score=0.99)
    assert hits
    for rank, hit in enumerate(hits, start=1):
        e = hit.explanation
        assert not e.HasField("vector_score") and not e.HasField("vector_rank")
        assert e.keyword_rank == rank and e.fused_score == pytest.approx(1 / (60 + rank))
    # A memory without the query's words is the vector half's alone.
    hits = explained(fresh, "peanut allergy", pb.SEARCH_MODE_HYBRID, scope=scope, top_k=10)
    alone = [h for h in hits if not h.explanation.HasField("keyword_rank")]
    assert alone and all(h.explanation.HasField("vector_rank") for h in alone)
    for h in alone:
        assert not h.explanation.HasField("keyword_score")
        assert h.explanation.fused_score == pytest.approx(1 / (60 + h.explanation.vector_rank))


@pytest.mark.parametrize(
    ("mode", "half"), [(pb.SEARCH_MODE_VECTOR, "vector"), (pb.SEARCH_MODE_KEYWORD, "keyword")]
)
def test_one_mode_explains_its_own_ranking(
    fresh: RunningServer, corpus: Corpus, mode: int, half: str
) -> None:
    scope = m.Scope(user_id="alice")
    hits = explained(fresh, "flight LH440", mode, scope=scope, top_k=5)
    assert [(h.memory.id, h.score) for h in hits] == search(fresh, "flight LH440", mode, scope=scope, top_k=5)
    other = "keyword" if half == "vector" else "vector"
    for rank, hit in enumerate(hits, start=1):
        e = hit.explanation
        assert getattr(e, f"{half}_rank") == rank and getattr(e, f"{half}_score") == hit.score
        assert not e.HasField(f"{other}_rank") and not e.HasField(f"{other}_score")
        assert not e.HasField("fused_score")


def test_explanations_only_when_asked_and_never_from_the_cache(fresh: RunningServer, corpus: Corpus) -> None:
    scope = m.Scope(user_id="alice")
    for _ in range(2):  # the second plain round is served from the result cache
        plain = fresh.memory.SearchMemories(
            pb.SearchMemoriesRequest(query="LH440", mode=pb.SEARCH_MODE_HYBRID, scope=scope)
        )
        assert not any(h.HasField("explanation") for h in plain.hits)
        hits = explained(fresh, "LH440", pb.SEARCH_MODE_HYBRID, scope=scope)
        assert [h.memory.id for h in hits] == [h.memory.id for h in plain.hits]
        assert all(h.explanation.HasField("fused_score") for h in hits)
    request = pb.SearchMemoriesRequest(query="LH440", mode=pb.SEARCH_MODE_KEYWORD, scope=scope, explain=True)
    batch = fresh.memory.BatchSearchMemories(
        pb.BatchSearchMemoriesRequest(requests=[request, request])
    ).results
    stream = list(
        fresh.memory.StreamSearchMemories(
            iter([pb.StreamSearchMemoriesRequest(query_id="a", search=request)])
        )
    )
    for result in [*batch, stream[0].result]:
        assert [h.explanation.keyword_rank for h in result.hits] == list(range(1, len(result.hits) + 1))
