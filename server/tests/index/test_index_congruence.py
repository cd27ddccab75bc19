"""Congruence: the sharded FAISS index against the NumPy oracle.

Exact plans must return exactly the oracle's top-k (up to swaps of neighbours
whose scores tie within float rounding); HNSW plans must reach recall@10 of
0.95 for whole tenants, scopes of several selectivities and key sets.
"""

from __future__ import annotations

import numpy as np

from mnemo_server.index.base import IndexEntry, IndexQuery, VectorIndex
from mnemo_server.index.flat import NumpyFlatIndex
from mnemo_server.index.sharded import EXACT, HNSW, ShardedFaissIndex
from mnemo_server.models import Scope

from .index_helpers import Workload, assert_same_ranking, embedding_like


def churn(workload: Workload, rounds: int, per_round: int) -> None:
    """Adds, updates, moves between tenants and deletes, interleaved."""
    for _ in range(rounds):
        workload.add(per_round)
        workload.update(per_round // 5)
        workload.update(per_round // 20, move_tenant=True)
        workload.delete(per_round // 4)


def assert_congruent(
    oracle: NumpyFlatIndex,
    index: VectorIndex,
    workload: Workload,
    queries: list[IndexQuery],
    k: int,
) -> None:
    vectors = embedding_like(workload.rng, len(queries), workload.d)
    want = oracle.search(vectors, queries, k)
    everything = oracle.search(vectors, queries, len(workload.live) + 1)
    batch = index.search(vectors, queries, k)
    for i, query in enumerate(queries):
        allowed = {n.key: n.score for n in everything[i]}
        assert_same_ranking(batch[i], want[i], allowed)
        if i % 7 == 0:  # single-query calls take the same path as batches
            assert_same_ranking(index.search(vectors[i : i + 1], [query], k)[0], want[i], allowed)


def test_exact_mode_equals_oracle() -> None:
    d = 32
    oracle = NumpyFlatIndex(d)
    index = ShardedFaissIndex(d, shard_capacity=700, ann_threshold=10**9)
    workload = Workload(d=d, indexes=[oracle, index], rng=np.random.default_rng(1))
    churn(workload, rounds=6, per_round=1000)
    assert len(workload.live) > 3000
    assert index.keys() == oracle.keys() == set(workload.live)
    for tenant in workload.tenants:
        assert index.count(tenant) == oracle.count(tenant)
        for user in workload.users:
            scope = Scope(user_id=user, run_id="r1")
            assert index.count(tenant, scope) == oracle.count(tenant, scope)
    queries = workload.queries(300)
    # Repeats make the batch group equal queries, as a BatchSearch would.
    queries += queries[:20]
    for k in (1, 10, 50):
        assert_congruent(oracle, index, workload, queries, k)
    assert index.plan_counts().get(HNSW, 0) == 0


def test_exact_plans_in_hnsw_shards_equal_oracle() -> None:
    """Shards are HNSW, but scopes below exact_threshold are scanned exactly
    (and must then be exact, tombstones and all)."""
    d = 32
    oracle = NumpyFlatIndex(d)
    index = ShardedFaissIndex(d, shard_capacity=4096, ann_threshold=500, exact_threshold=10**9)
    workload = Workload(d=d, indexes=[oracle, index], rng=np.random.default_rng(2))
    churn(workload, rounds=4, per_round=1000)
    assert any(s.kind_reason.startswith("hnsw") for s in index.shards())
    assert_congruent(oracle, index, workload, workload.queries(120), 10)
    assert index.plan_counts().get(HNSW, 0) == 0


def recall(got: list[list[int]], want: list[list[int]]) -> float:
    hits = sum(len(set(g) & set(w)) for g, w in zip(got, want, strict=True))
    return hits / max(1, sum(len(w) for w in want))


def test_ann_mode_recall() -> None:
    d, n = 64, 50000
    oracle = NumpyFlatIndex(d)
    index = ShardedFaissIndex(d, shard_capacity=25000, ann_threshold=2000, exact_threshold=300)
    rng = np.random.default_rng(3)
    # One tenant in two HNSW shards; users holding 55%, 30% and 4% of it.
    users = rng.choice(["big", "mid", "small", "rest"], size=n, p=[0.55, 0.3, 0.04, 0.11])
    other = embedding_like(rng, 500, d)
    for start in range(0, n, 1000):
        vectors = embedding_like(rng, 1000, d)
        batch = [
            IndexEntry(start + i, "acme", Scope(user_id=str(users[start + i])), vectors[i])
            for i in range(1000)
        ]
        oracle.upsert(batch)
        index.upsert(batch)
    # Another tenant whose vectors sit right on the queries must never leak in.
    intruders = [IndexEntry(n + i, "evil", Scope(user_id="big"), other[i]) for i in range(500)]
    for target in (oracle, index):
        target.upsert(intruders)
    # Tombstones (deletes and updates) that the selectors must hide.
    gone = rng.choice(n, size=3000, replace=False).tolist()
    moved = rng.choice(sorted(set(range(n)) - set(gone)), size=2000, replace=False).tolist()
    fresh = embedding_like(rng, len(moved), d)
    updates = [IndexEntry(k, "acme", Scope(user_id=str(users[k])), fresh[i]) for i, k in enumerate(moved)]
    for target in (oracle, index):
        target.remove(gone)
        target.upsert(updates)
    assert [s.kind_reason.startswith("hnsw") for s in index.shards()] == [True, True, False]

    live = sorted(set(range(n)) - set(gone))
    keys = frozenset(rng.choice(live, size=15000, replace=False).tolist())
    big = [k for k in live if users[k] == "big"]
    cases = {
        "whole tenant": (IndexQuery("acme"), HNSW),
        "user big (55%)": (IndexQuery("acme", Scope(user_id="big")), HNSW),
        "user mid (30%)": (IndexQuery("acme", Scope(user_id="mid")), HNSW),
        # Sparse: the planner scans it (test_index_shard covers filtered HNSW
        # recall down to 1% selectivity).
        "user small (4%)": (IndexQuery("acme", Scope(user_id="small")), EXACT),
        "keys (15000)": (IndexQuery("acme", keys=keys), HNSW),
        "user big, half excluded": (
            IndexQuery("acme", Scope(user_id="big"), exclude=frozenset(big[::2])),
            HNSW,
        ),
    }
    for name, (query, method) in cases.items():
        assert [p.method for p in index.explain(query)] == [method, method], name
        queries = np.concatenate((embedding_like(rng, 50, d), other[:20]))
        want = oracle.search(queries, [query] * len(queries), 10)
        got = index.search(queries, [query] * len(queries), 10)
        value = recall([[x.key for x in r] for r in got], [[x.key for x in r] for r in want])
        assert value >= 0.95, f"{name}: recall@10 {value:.3f}"
        # Never another tenant's, an out-of-scope, excluded or deleted key.
        allowed = {x.key for x in oracle.search(queries[:1], [query], n)[0]}
        assert all(x.key in allowed for r in got for x in r), name
        assert all(len(r) == 10 for r in got), name
    assert index.plan_counts()[HNSW] >= 10
