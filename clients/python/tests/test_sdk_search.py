"""MnemoClient against the real server: SearchMemories, BatchSearchMemories,
StreamSearchMemories and BatchWriteMemories."""

from __future__ import annotations

import pytest

from mnemo import MnemoClient, SearchMode, SearchQuery, WriteOp
from mnemo.errors import AbortedError, InvalidArgumentError, NotFoundError, OutOfRangeError

FACTS = [
    "Alice is allergic to peanuts",
    "Alice's favourite city is Lisbon",
    "Alice drives a blue bicycle to work",
    "The quarterly tax filing is due in April",
    "Bob plays the trumpet in a jazz band",
]


def seed(client: MnemoClient, user: str, facts: list[str] = FACTS) -> list[str]:
    result = client.batch_write([WriteOp.create(f, user_id=user) for f in facts])
    assert all(r.ok for r in result.results)
    return [r.memory.id for r in result.results if r.memory]


def test_text_search_finds_by_meaning_within_the_user(client: MnemoClient, user: str) -> None:
    seed(client, user)
    client.create("Alice is allergic to peanuts", user_id=user + "-other")
    result = client.search("what food must Alice avoid?", user_id=user, top_k=3)
    assert result.embedding_model == "all-MiniLM-L6-v2"
    assert result.hits[0].memory.content == FACTS[0]
    assert len(result.hits) == 3 and all(h.memory.user_id == user for h in result.hits)
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True) and -1 <= scores[-1] <= scores[0] <= 1
    assert result.hits[0].raw.score == result.hits[0].score


def test_vector_search_min_score_filter_and_embeddings(client: MnemoClient, user: str) -> None:
    ids = seed(client, user)
    vector = client.get(ids[4], read_mask=["embedding"]).embedding
    assert vector is not None
    result = client.search(vector=vector, user_id=user, min_score=0.99, include_embedding=True)
    assert [h.memory.id for h in result.hits] == [ids[4]] and result.embedding_model == ""
    assert result.hits[0].memory.embedding is not None and len(result.hits[0].memory.embedding) == 384
    assert (
        client.search("jazz", user_id=user, filter=f'id != "{ids[4]}"', top_k=1).hits[0].memory.id != ids[4]
    )


def test_batch_search_answers_each_query_in_order(client: MnemoClient, user: str) -> None:
    seed(client, user)
    results = client.batch_search(
        ["peanut allergy", SearchQuery(query="jazz trumpet", top_k=2), "taxes"], user_id=user, top_k=1
    )
    assert [r.hits[0].memory.content for r in results] == [FACTS[0], FACTS[4], FACTS[3]]
    assert [len(r.hits) for r in results] == [1, 2, 1]
    with pytest.raises(InvalidArgumentError) as err:
        client.batch_search(["ok", SearchQuery(vector=[1.0, 2.0])])
    assert err.value.reason == "EMBEDDING_DIMENSION_MISMATCH"
    assert [v.field for v in err.value.field_violations] == ["requests[1].vector"]


def test_stream_search_tags_answers_and_keeps_going_after_a_bad_query(client: MnemoClient, user: str) -> None:
    seed(client, user)

    def queries():  # type: ignore[no-untyped-def]
        yield "peanut allergy"
        yield SearchQuery(query="x", filter="user_id = ", query_id="bad")
        yield SearchQuery(query="where does alice like to travel", top_k=1)

    answers = {a.query_id: a for a in client.stream_search(queries(), user_id=user, top_k=1)}
    assert set(answers) == {"0", "bad", "2"}
    assert answers["0"].result is not None and answers["0"].result.hits[0].memory.content == FACTS[0]
    assert answers["2"].result is not None and answers["2"].result.hits[0].memory.content == FACTS[1]
    bad = answers["bad"]
    assert bad.result is None and isinstance(bad.error, InvalidArgumentError)
    assert bad.error.reason == "INVALID_FILTER"


def test_keyword_and_hybrid_modes(client: MnemoClient, user: str) -> None:
    seed(client, user, [*FACTS, "Flight LH440 departs at 10:05", "Ticket A-7731 is closed"])
    keyword = client.search("LH440", user_id=user, mode="keyword")
    assert [h.memory.content for h in keyword.hits] == ["Flight LH440 departs at 10:05"]
    assert keyword.embedding_model == "" and keyword.hits[0].score > 0
    hybrid = client.search("A-7731", user_id=user, mode=SearchMode.HYBRID, rrf_k=1, top_k=3)
    assert hybrid.hits[0].memory.content == "Ticket A-7731 is closed" and hybrid.hits[0].score == 1.0
    assert (
        client.search("what food must Alice avoid?", user_id=user, mode="VECTOR", top_k=1)
        .hits[0]
        .memory.content
        == FACTS[0]
    )
    batch = client.batch_search(
        ["LH440", SearchQuery(query="A-7731", mode="vector")], user_id=user, mode="keyword", top_k=1
    )
    assert [r.embedding_model for r in batch] == ["", "all-MiniLM-L6-v2"]
    assert batch[0].hits[0].memory.content == "Flight LH440 departs at 10:05"
    answers = list(
        client.stream_search([SearchQuery(query="A-7731", query_id="q")], user_id=user, mode="hybrid")
    )
    assert (
        answers[0].result is not None
        and answers[0].result.hits[0].memory.content == "Ticket A-7731 is closed"
    )
    with pytest.raises(InvalidArgumentError) as err:
        client.search(vector=[0.0] * 384, user_id=user, mode="keyword")
    assert err.value.reason == "QUERY_REQUIRED"
    with pytest.raises(ValueError, match="unknown SearchMode"):
        client.search("x", mode="fuzzy")


def test_explained_hits_carry_each_halfs_rank_and_score(client: MnemoClient, user: str) -> None:
    seed(client, user, [*FACTS, "Flight LH440 departs at 10:05", "Ticket A-7731 is closed"])
    plain = client.search("Ticket A-7731", user_id=user, mode="hybrid", top_k=3)
    assert all(h.explanation is None for h in plain.hits)
    hybrid = client.search("Ticket A-7731", user_id=user, mode="hybrid", rrf_k=10, top_k=3, explain=True)
    top = hybrid.hits[0]
    assert top.memory.content == "Ticket A-7731 is closed" and top.explanation is not None
    assert (top.explanation.vector_rank, top.explanation.keyword_rank) == (1, 1)
    assert top.explanation.fused_score == top.score == pytest.approx(2 / 11)
    for hit in hybrid.hits:
        e = hit.explanation
        assert e is not None and e.fused_score == pytest.approx(
            sum(1 / (10 + r) for r in (e.vector_rank, e.keyword_rank) if r is not None)
        )
    keyword = client.search("LH440", user_id=user, mode="keyword", explain=True).hits[0].explanation
    assert keyword is not None and keyword.keyword_rank == 1 and keyword.keyword_score
    assert (keyword.vector_rank, keyword.vector_score, keyword.fused_score) == (None, None, None)
    [batch] = client.batch_search([SearchQuery(query="LH440", explain=True)], user_id=user, top_k=1)
    assert batch.hits[0].explanation is not None and batch.hits[0].explanation.vector_rank == 1
    [answer] = client.stream_search(["LH440"], user_id=user, top_k=1, explain=True)
    assert answer.result is not None and answer.result.hits[0].explanation is not None


def test_batch_write_reports_each_operation(client: MnemoClient, user: str) -> None:
    keep, gone = seed(client, user, ["kept memory", "deleted memory"])
    result = client.batch_write(
        [
            WriteOp.create("new one", user_id=user, tags=["n"]),
            WriteOp.create("   ", user_id=user),
            WriteOp.delete("does-not-exist"),
            WriteOp.update(keep, content="kept and changed"),
            WriteOp.delete(gone),
        ]
    )
    ops = [(r.operation, r.error.reason if r.error else None) for r in result.results]
    assert ops == [
        ("create", None),
        (None, "CONTENT_EMPTY"),
        (None, "MEMORY_NOT_FOUND"),
        ("update", None),
        ("delete", None),
    ]
    assert isinstance(result.results[2].error, NotFoundError)
    assert result.results[1].error is not None
    assert [v.field for v in result.results[1].error.field_violations] == [
        "operations[1].create.memory.content"
    ]
    assert result.revision == result.results[4].revision > 0
    assert sorted(m.content for m in client.iter_memories(user_id=user)) == ["kept and changed", "new one"]


def test_atomic_batch_writes_nothing_when_one_operation_fails(client: MnemoClient, user: str) -> None:
    (keep,) = seed(client, user, ["kept memory"])
    result = client.batch_write(
        [WriteOp.create("would be new", user_id=user), WriteOp.delete(keep), WriteOp.delete("nope")],
        atomic=True,
    )
    assert [type(r.error) for r in result.results] == [AbortedError, AbortedError, NotFoundError]
    assert result.results[0].error is not None and result.results[0].error.reason == "BATCH_ABORTED"
    assert result.revision == 0
    assert [m.content for m in client.iter_memories(user_id=user)] == ["kept memory"]


def test_reads_take_a_consistency_token_and_say_what_they_reflect(client: MnemoClient, user: str) -> None:
    written = client.create("Gil flies LH440 to Boston", user_id=user).memory
    token = written.revision
    found = client.search("flight to Boston", user_id=user, min_revision=token)
    assert found.revision >= token and [h.memory.id for h in found.hits] == [written.id]
    page = client.list(user_id=user, min_revision=token)
    assert page.revision >= token and [m.id for m in page.memories] == [written.id]
    assert client.get(written.id, min_revision=token).id == written.id
    assert [m.id for m in client.iter_memories(user_id=user, min_revision=token)] == [written.id]
    batch = client.batch_search(["Boston", SearchQuery(query="LH440", min_revision=token)], user_id=user)
    assert all(r.revision >= token for r in batch)
    streamed = list(client.stream_search(["Boston"], user_id=user, min_revision=token))
    assert streamed[0].result is not None and streamed[0].result.revision >= token
    # A later read's revision is itself a token.
    assert client.search("Boston", user_id=user, min_revision=found.revision).revision >= found.revision


def test_a_token_ahead_of_the_store_or_negative_is_refused(client: MnemoClient, user: str) -> None:
    with pytest.raises(OutOfRangeError) as ahead:
        client.search("Boston", user_id=user, min_revision=10**15)
    assert ahead.value.reason == "REVISION_AHEAD"
    with pytest.raises(OutOfRangeError):
        client.list(user_id=user, min_revision=10**15)
    with pytest.raises(InvalidArgumentError) as negative:
        client.get("any-id", min_revision=-1)
    assert [v.field for v in negative.value.field_violations] == ["min_revision"]
