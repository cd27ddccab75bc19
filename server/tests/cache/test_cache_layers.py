"""The typed caches (embeddings, search results, records) on every backend."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mnemo_server.cache import (
    Cache,
    CachedHit,
    Caches,
    EmbeddingCache,
    search_fingerprint,
)
from mnemo_server.cache.generations import affected_scopes
from mnemo_server.models import Change, ChangeType, Link, Memory, MemoryKind, Scope, now_us

ALICE = Scope("alice")
FP = search_fingerprint(model_id="m", text="where do I live?", top_k=10)
HITS = [CachedHit("m1", 11, 0.875), CachedHit("m2", 12, 0.5)]


def memory(
    id: str = "m1",
    *,
    tenant: str = "t1",
    scope: Scope = ALICE,
    embedding: bool = True,
    expire_time_us: int | None = None,
) -> Memory:
    return Memory(
        tenant=tenant,
        id=id,
        scope=scope,
        content="Alice lives in Lyon ✓ \ud800",
        kind=MemoryKind.SEMANTIC,
        tags=("home", "city"),
        metadata={"source": "chat", "turn": 3, "score": 0.25, "nested": {"a": [1, None, True]}},
        links=(Link("m0", "follows", 0.5),),
        pinned=True,
        embedding_model="mini",
        content_hash="abc",
        create_time_us=1_700_000_000_000_000,
        update_time_us=1_700_000_000_000_001,
        expire_time_us=expire_time_us,
        last_retrieve_time_us=None,
        version=3,
        revision=42,
        key=7,
        embedding=np.arange(8, dtype=np.float32) / np.float32(8) if embedding else None,
    )


@pytest.fixture
def caches(backend: Cache) -> Caches:
    return Caches.over(backend)


# -- embeddings ----------------------------------------------------------------------


def test_embeddings_hit_on_repeats_and_miss_on_new_texts(backend: Cache) -> None:
    cache = EmbeddingCache(backend)
    vectors = np.random.default_rng(1).standard_normal((2, 16)).astype(np.float32)

    assert cache.get_many("mini", ["a", "b"], dimension=16) == [None, None]
    cache.put_many("mini", ["a", "b"], vectors)
    found = cache.get_many("mini", ["b", "c", "a", "b"], dimension=16)

    assert found[1] is None
    np.testing.assert_array_equal(np.stack([found[0], found[2], found[3]]), vectors[[1, 0, 1]])  # type: ignore[list-item]
    stats = cache.stats()
    assert (stats.name, stats.hits, stats.misses) == ("embedding", 3, 3)


def test_embeddings_are_keyed_by_model_and_optionally_tenant(backend: Cache) -> None:
    cache = EmbeddingCache(backend)
    cache.put_many("mini", ["a"], np.ones((1, 4), dtype=np.float32))
    cache.put_many("mini", ["b"], np.ones((1, 4), dtype=np.float32), tenant="t1")

    assert cache.get_many("other-model", ["a"], dimension=4) == [None]
    assert cache.get_many("mini", ["a"], dimension=8) == [None]  # another dimension: not ours
    assert cache.get_many("mini", ["b"], dimension=4) == [None]
    assert cache.get_many("mini", ["b"], dimension=4, tenant="t2") == [None]
    assert cache.get_many("mini", ["b"], dimension=4, tenant="t1")[0] is not None


def test_cached_vectors_are_read_only(backend: Cache) -> None:
    cache = EmbeddingCache(backend)
    cache.put_many("mini", ["a"], np.ones((1, 4), dtype=np.float32))

    vector = cache.get_many("mini", ["a"], dimension=4)[0]

    assert vector is not None and not vector.flags.writeable


# -- search results -------------------------------------------------------------------


def test_a_stored_search_result_is_served_until_a_write_in_scope(caches: Caches) -> None:
    [miss] = caches.search.lookup("t1", [(ALICE, FP)])
    assert miss.hits is None
    caches.search.store([(miss, HITS)])

    [hit] = caches.search.lookup("t1", [(ALICE, FP)])
    assert hit.hits == tuple(CachedHit(h.id, h.key, h.score) for h in HITS)

    caches.invalidate("t1", [("m9", Scope("alice", "bot", "run1"))])

    [after] = caches.search.lookup("t1", [(ALICE, FP)])
    assert after.hits is None


def test_a_write_invalidates_exactly_the_query_scopes_that_can_see_it(caches: Caches) -> None:
    written = Scope("alice", "bot", "run1")
    can_see = affected_scopes(written)
    cannot_see = {
        Scope("bob"),
        Scope("alice", "other-bot"),
        Scope("", "", "run2"),
        Scope("alice", "bot", "run2"),
        Scope("bob", "bot"),
    }
    everything = sorted(can_see | cannot_see, key=str)
    assert len(can_see) == 8
    lookups = caches.search.lookup("t1", [(s, FP) for s in everything])
    caches.search.store([(lookup, HITS) for lookup in lookups])

    caches.invalidate("t1", [("m9", written)])

    lookups = caches.search.lookup("t1", [(s, FP) for s in everything])
    found = {lk.scope: lk.hits is not None for lk in lookups}
    assert {s for s, hit in found.items() if not hit} == can_see


def test_writes_in_one_tenant_leave_other_tenants_cached(caches: Caches) -> None:
    for tenant in ("t1", "t2"):
        caches.search.store([(lk, HITS) for lk in caches.search.lookup(tenant, [(ALICE, FP)])])

    caches.invalidate("t1", [("m1", ALICE)])

    assert caches.search.lookup("t1", [(ALICE, FP)])[0].hits is None
    assert caches.search.lookup("t2", [(ALICE, FP)])[0].hits is not None


def test_a_result_computed_before_a_write_is_never_served_after_it(caches: Caches) -> None:
    """The race: a search reads generations, a write lands, then the search stores."""
    [slow_search] = caches.search.lookup("t1", [(ALICE, FP)])

    caches.invalidate("t1", [("m1", ALICE)])
    caches.search.store([(slow_search, HITS)])

    assert caches.search.lookup("t1", [(ALICE, FP)])[0].hits is None


def test_fingerprints_separate_requests() -> None:
    base = {"model_id": "m", "text": "q", "top_k": 10}
    variants = [
        search_fingerprint(**base),  # type: ignore[arg-type]
        search_fingerprint(**{**base, "text": "q2"}),  # type: ignore[arg-type]
        search_fingerprint(**{**base, "model_id": "m2"}),  # type: ignore[arg-type]
        search_fingerprint(**{**base, "top_k": 11}),  # type: ignore[arg-type]
        search_fingerprint(**base, min_score=0.0),  # type: ignore[arg-type]
        search_fingerprint(**base, filter='kind = "semantic"'),  # type: ignore[arg-type]
        search_fingerprint(model_id="m", vector=[0.1, 0.2], top_k=10),
    ]
    assert len(set(variants)) == len(variants)
    assert search_fingerprint(**base) == variants[0]  # type: ignore[arg-type]


def test_a_result_lives_no_longer_than_its_first_hit_to_expire(caches: Caches) -> None:
    now = now_us()
    soon = [CachedHit("m1", 1, 0.9, expire_time_us=now + 100_000), CachedHit("m2", 2, 0.8)]
    gone = [CachedHit("m1", 1, 0.9, expire_time_us=now - 1)]
    other = search_fingerprint(model_id="m", text="other", top_k=10)
    [a, b] = caches.search.lookup("t1", [(ALICE, FP), (ALICE, other)])

    caches.search.store([(a, soon), (b, gone)], now_us=now)

    assert caches.search.lookup("t1", [(ALICE, FP)])[0].hits is not None
    assert caches.search.lookup("t1", [(ALICE, other)])[0].hits is None
    time.sleep(0.2)
    assert caches.search.lookup("t1", [(ALICE, FP)])[0].hits is None


def test_many_requests_are_looked_up_together(caches: Caches) -> None:
    fps = [search_fingerprint(model_id="m", text=f"q{i}", top_k=5) for i in range(5)]
    requests = [(ALICE, f) for f in fps] + [(Scope("bob"), fps[0])]
    lookups = caches.search.lookup("t1", requests)
    caches.search.store([(lk, [CachedHit(f"id{i}", i, 0.5)]) for i, lk in enumerate(lookups)])

    again = caches.search.lookup("t1", requests)

    assert [lk.hits[0].id for lk in again] == [f"id{i}" for i in range(6)]  # type: ignore[index]


def test_revision_log_changes_of_several_tenants_invalidate_in_one_call(caches: Caches) -> None:
    for tenant in ("t1", "t2", "t3"):
        caches.search.store([(lk, HITS) for lk in caches.search.lookup(tenant, [(ALICE, FP)])])

    caches.invalidate_changes(
        [
            Change(5, "t1", "m1", 1, ChangeType.CREATE, Scope("alice", "bot"), 0),
            Change(6, "t2", "m2", 2, ChangeType.EXPIRE, ALICE, 0),
        ]
    )

    assert [caches.search.lookup(t, [(ALICE, FP)])[0].hits is None for t in ("t1", "t2", "t3")] == [
        True,
        True,
        False,
    ]


def test_invalidating_a_tenant_drops_its_results_and_records(caches: Caches) -> None:
    caches.search.store([(lk, HITS) for lk in caches.search.lookup("t1", [(ALICE, FP)])])
    caches.records.fill(caches.records.lookup("t1", ["m1"]), [memory()])

    caches.invalidate_tenants(["t1"])

    assert caches.search.lookup("t1", [(ALICE, FP)])[0].hits is None
    assert caches.records.lookup("t1", ["m1"]).missing == ("m1",)


# -- records ----------------------------------------------------------------------------


def test_a_filled_record_round_trips_every_field(caches: Caches) -> None:
    original = memory()
    first = caches.records.lookup("t1", ["m1"], with_embedding=True)
    assert first.missing == ("m1",)

    caches.records.fill(first, [original])
    found = caches.records.lookup("t1", ["m1"], with_embedding=True).found["m1"]

    assert found == original
    np.testing.assert_array_equal(found.embedding, original.embedding)


def test_records_without_embedding_do_not_serve_requests_for_one(caches: Caches) -> None:
    caches.records.fill(caches.records.lookup("t1", ["m1"]), [memory(embedding=False)])

    assert caches.records.lookup("t1", ["m1"]).found["m1"].embedding is None
    assert caches.records.lookup("t1", ["m1"], with_embedding=True).missing == ("m1",)


def test_embeddings_are_left_out_unless_asked_for(caches: Caches) -> None:
    caches.records.fill(caches.records.lookup("t1", ["m1"]), [memory()])

    assert caches.records.lookup("t1", ["m1"]).found["m1"].embedding is None


def test_a_write_to_a_record_invalidates_it(caches: Caches) -> None:
    caches.records.fill(caches.records.lookup("t1", ["m1", "m2"]), [memory("m1"), memory("m2")])

    caches.invalidate("t1", [("m1", ALICE)])

    lookup = caches.records.lookup("t1", ["m1", "m2"])
    assert lookup.missing == ("m1",)
    assert set(lookup.found) == {"m2"}


def test_a_record_read_before_a_write_is_never_served_after_it(caches: Caches) -> None:
    slow_reader = caches.records.lookup("t1", ["m1"])
    stale = memory("m1")

    caches.invalidate("t1", [("m1", ALICE)])
    caches.records.fill(slow_reader, [stale])

    assert caches.records.lookup("t1", ["m1"]).missing == ("m1",)


def test_records_are_per_tenant(caches: Caches) -> None:
    caches.records.fill(caches.records.lookup("t1", ["m1"]), [memory("m1")])

    assert caches.records.lookup("t2", ["m1"]).missing == ("m1",)
    # A memory of another tenant is never filled under this one.
    lookup = caches.records.lookup("t2", ["m1"])
    caches.records.fill(lookup, [memory("m1", tenant="t1")])
    assert caches.records.lookup("t2", ["m1"]).missing == ("m1",)


def test_a_record_is_not_cached_past_its_expire_time(caches: Caches) -> None:
    now = now_us()
    lookup = caches.records.lookup("t1", ["soon", "past"])
    caches.records.fill(
        lookup,
        [memory("soon", expire_time_us=now + 100_000), memory("past", expire_time_us=now - 1)],
        now_us=now,
    )

    assert caches.records.lookup("t1", ["soon", "past"]).missing == ("past",)
    time.sleep(0.2)
    assert caches.records.lookup("t1", ["soon"]).missing == ("soon",)


def test_stats_report_each_cache_in_the_getstats_shape(caches: Caches) -> None:
    caches.search.lookup("t1", [(ALICE, FP)])
    caches.records.lookup("t1", ["m1"])

    rows = caches.stats()

    assert [r.name for r in rows] == ["embedding", "search", "record"]
    assert (rows[1].misses, rows[1].hits, rows[1].state, rows[1].hit_rate) == (1, 0, "ok", 0.0)
    assert rows[1].latency.count == 1


def test_explain_is_part_of_the_key_and_plain_keys_are_unchanged() -> None:
    for mode, rrf_k in (("vector", 0), ("keyword", 0), ("hybrid", 60)):
        plain = search_fingerprint(model_id="m", text="q", top_k=10, mode=mode, rrf_k=rrf_k)
        assert plain == search_fingerprint(
            model_id="m", text="q", top_k=10, mode=mode, rrf_k=rrf_k, explain=False
        )
        assert plain != search_fingerprint(
            model_id="m", text="q", top_k=10, mode=mode, rrf_k=rrf_k, explain=True
        )
