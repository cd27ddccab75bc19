"""Searches running while writes grow, extend, compact and snapshot shards."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mnemo_server.index.base import IndexEntry, IndexQuery
from mnemo_server.index.graph_builder import GraphBuilder
from mnemo_server.index.sharded import HNSW, ShardedFaissIndex
from mnemo_server.models import Scope

from .index_helpers import embedding_like

D = 32


def entry(key: int, vector: np.ndarray) -> IndexEntry:
    # Tenant and user are functions of the key, so any result can be checked.
    return IndexEntry(key, f"t{key % 2}", Scope(user_id=f"u{key % 5}"), vector)


@pytest.mark.parametrize("background", [False, True], ids=["graphs-in-upsert", "graph-builder-thread"])
def test_searches_during_writes(tmp_path: Path, background: bool) -> None:
    # Shards big enough that whole-tenant queries are planned as HNSW, which
    # must not run while a graph is being added to (by the writer, or by the
    # builder thread behind it).
    builder = GraphBuilder() if background else None
    index = ShardedFaissIndex(
        D, shard_capacity=12000, ann_threshold=400, exact_threshold=60, builder=builder, max_tail=2000
    )
    rng = np.random.default_rng(0)
    index.upsert([entry(k, v) for k, v in enumerate(embedding_like(rng, 12000, D))])
    stop = threading.Event()
    errors: list[BaseException] = []
    searches = [0]

    def reader(seed: int) -> None:
        local = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                tenant = int(local.integers(2))
                user = int(local.integers(5))
                kind = int(local.integers(3))
                if kind == 0:
                    query = IndexQuery(f"t{tenant}")
                elif kind == 1:
                    query = IndexQuery(f"t{tenant}", Scope(user_id=f"u{user}"))
                else:
                    keys = frozenset(local.integers(0, 20000, 3000).tolist())
                    query = IndexQuery(f"t{tenant}", keys=keys)
                n = 1 if local.random() < 0.5 else 16
                results = index.search(embedding_like(local, n, D), [query] * n, 10)
                for result in results:
                    keys_found = [x.key for x in result]
                    assert len(set(keys_found)) == len(keys_found)
                    assert all(k % 2 == tenant for k in keys_found)
                    if kind == 1:
                        assert all(k % 5 == user for k in keys_found)
                    if kind == 2:
                        assert all(k in query.keys for k in keys_found)  # type: ignore[operator]
                    scores = [x.score for x in result]
                    assert scores == sorted(scores, reverse=True)
                searches[0] += 1
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    try:
        next_key = 12000
        deadline = time.monotonic() + 4
        rounds = 0
        # At least 8 rounds however slow the machine: enough tombstones for
        # a compaction in some shard.
        while (time.monotonic() < deadline or rounds < 8) and not stop.is_set():
            rounds += 1
            fresh = embedding_like(rng, 300, D)
            index.upsert([entry(next_key + i, fresh[i]) for i in range(300)])
            next_key += 300
            live = np.array(sorted(index.keys()))
            changed = rng.choice(live, 200, replace=False).tolist()
            index.upsert([entry(k, v) for k, v in zip(changed, embedding_like(rng, 200, D), strict=True)])
            index.remove(rng.choice(live, 250, replace=False).tolist())
            assert index.count() == len(index.keys())
            index.shards()
        index.save(tmp_path, 1)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        index.close()
    assert not errors, errors[0]
    assert searches[0] > 20
    assert index.plan_counts().get(HNSW, 0) > 0
    # First graph build, then at least one compaction, in some shard.
    assert max(s.rebuilds for s in index._shards_of(None)) >= 2
    loaded = ShardedFaissIndex(D, shard_capacity=12000, ann_threshold=400, exact_threshold=60)
    assert loaded.load(tmp_path) == 1
    assert loaded.keys() == index.keys()
