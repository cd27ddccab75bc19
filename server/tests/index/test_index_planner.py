"""The planner: which shards a query touches and how, by cardinality."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mnemo_server.index.base import IndexEntry, IndexQuery
from mnemo_server.index.sharded import EXACT, HNSW, SKIP, ShardedFaissIndex, ef_for
from mnemo_server.models import Scope

from .index_helpers import embedding_like

D = 32


@pytest.fixture(scope="module")
def index() -> ShardedFaissIndex:
    """Tenant "t": shard 0 holds 20000 vectors (HNSW), shard 1 holds 300 (flat).
    In shard 0 user "big" has 10000 (50%), "mid" 6000 (30%), "tiny" 50."""
    index = ShardedFaissIndex(D, shard_capacity=30000, ann_threshold=1000, exact_threshold=500)
    vectors = embedding_like(np.random.default_rng(0), 20300, D)
    users = ["big"] * 10000 + ["mid"] * 6000 + ["tiny"] * 50 + ["rest"] * 3950
    entries = [IndexEntry(k, "t", Scope(user_id=users[k], agent_id="a"), vectors[k]) for k in range(20000)]
    entries += [IndexEntry(30000 + i, "t", Scope(user_id="big"), vectors[20000 + i]) for i in range(300)]
    entries.append(IndexEntry(60000, "other", Scope(user_id="big"), vectors[0]))
    index.upsert(entries)
    return index


def methods(index: ShardedFaissIndex, query: IndexQuery, k: int = 10) -> list[tuple[str, str, int]]:
    return [(p.shard_id, p.method, p.candidates) for p in index.explain(query, k)]


def test_whole_tenant(index: ShardedFaissIndex) -> None:
    plans = index.explain(IndexQuery("t"))
    assert [(p.shard_id, p.method, p.candidates) for p in plans] == [
        ("t/0", HNSW, 20000),
        ("t/1", EXACT, 300),
    ]
    assert plans[0].ef_search == 64  # nothing filtered: the configured ef
    assert plans[1].reason == "flat shard (300 vectors)"
    assert methods(index, IndexQuery("nobody")) == []


def test_scopes_by_cardinality(index: ShardedFaissIndex) -> None:
    assert methods(index, IndexQuery("t", Scope(user_id="tiny"))) == [
        ("t/0", EXACT, 50),
        ("t/1", SKIP, 0),
    ]
    big = index.explain(IndexQuery("t", Scope(user_id="big")))
    mid = index.explain(IndexQuery("t", Scope(user_id="mid", agent_id="a")))
    assert (big[0].method, big[0].candidates) == (HNSW, 10000)
    assert (mid[0].method, mid[0].candidates) == (HNSW, 6000)
    # Sparser candidates need a longer HNSW candidate list.
    assert big[0].ef_search == math.ceil(ef_for(64, 10, 0.5))
    assert mid[0].ef_search == math.ceil(ef_for(64, 10, 0.3))
    assert 64 < big[0].ef_search < mid[0].ef_search
    assert methods(index, IndexQuery("t", Scope(user_id="big", agent_id="zzz"))) == [
        ("t/0", SKIP, 0),
        ("t/1", SKIP, 0),
    ]


def test_sparse_candidates_are_scanned(index: ShardedFaissIndex) -> None:
    # 3000 of 20000 (15%): above exact_threshold, but filtered HNSW would walk
    # ~efSearch / 0.15 nodes, which costs more than reading 3000 rows.
    query = IndexQuery("t", Scope(user_id="mid"), keys=frozenset(range(10000, 16000, 2)))
    plan = index.explain(query)[0]
    assert (plan.method, plan.candidates) == (EXACT, 3000)
    assert "cheaper" in plan.reason


def test_keys_and_exclude_count_as_candidates(index: ShardedFaissIndex) -> None:
    keys = frozenset(range(0, 20000, 2)) | {30001, 60000, 99999}  # 10000 in shard 0
    assert methods(index, IndexQuery("t", keys=keys)) == [("t/0", HNSW, 10000), ("t/1", EXACT, 1)]
    # Only shards holding some of the keys are visited at all.
    assert methods(index, IndexQuery("t", keys=frozenset({5, 7}))) == [("t/0", EXACT, 2)]
    assert methods(index, IndexQuery("t", Scope(user_id="tiny"), keys=keys)) == [
        ("t/0", EXACT, 25),
        ("t/1", SKIP, 0),
    ]
    excluded = IndexQuery("t", exclude=frozenset(range(19800)) | {30000})
    assert methods(index, excluded) == [("t/0", EXACT, 200), ("t/1", EXACT, 299)]
    big_but = IndexQuery("t", Scope(user_id="big"), exclude=frozenset(range(1500)))
    assert methods(index, big_but)[0] == ("t/0", HNSW, 8500)


def test_large_k_prefers_exact(index: ShardedFaissIndex) -> None:
    query = IndexQuery("t", Scope(user_id="mid"))
    assert "cheaper" in index.explain(query, k=400)[0].reason
    assert index.explain(query, k=400)[0].method == EXACT
    too_big = index.explain(query, k=2000)[0]
    assert (too_big.method, too_big.reason.endswith("above max_ef_search")) == (EXACT, True)


def test_search_follows_the_plan(index: ShardedFaissIndex) -> None:
    before = index.plan_counts()
    stored = embedding_like(np.random.default_rng(0), 20300, D)  # the fixture's vectors
    queries = [IndexQuery("t", Scope(user_id="big"))] * 3
    queries += [IndexQuery("t", Scope(user_id="tiny")), IndexQuery("t")]
    vectors = stored[[10, 20, 30, 16010, 123]]  # 16010 is one of the tiny user's
    results = index.search(vectors, queries, 10)
    after = index.plan_counts()
    # The three equal queries form one group: one HNSW batch call for shard 0
    # and one exact scan of the flat shard 1. The tiny scope: one exact scan.
    # The whole tenant: HNSW without a selector in shard 0, exact in shard 1.
    assert after.get(HNSW, 0) - before.get(HNSW, 0) == 2
    assert after.get(EXACT, 0) - before.get(EXACT, 0) == 3
    assert [r[0].key for r in results] == [10, 20, 30, 16010, 123]
    assert all(len(r) == 10 for r in results)
    assert all(n.key != 60000 for r in results for n in r)
