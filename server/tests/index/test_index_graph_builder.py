"""Graphs built behind the writes: rows not yet in a shard's HNSW graph (its
tail) are found, updated and deleted like any other, snapshots taken while a
graph is behind load and catch up, and the writer takes over past max_tail.

Most tests use GraphBuilder(threaded=False), which does nothing until
drain(), so the graph is exactly as far behind as the test says."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from mnemo_server.index.base import IndexEntry, IndexKind, IndexQuery
from mnemo_server.index.flat import NumpyFlatIndex
from mnemo_server.index.graph_builder import GraphBuilder
from mnemo_server.index.sharded import HNSW, PlannerCosts, ShardedFaissIndex
from mnemo_server.models import Scope

from .index_helpers import embedding_like

D = 32
SCOPE = Scope(user_id="u")


def make(builder: GraphBuilder | None, **kwargs: int) -> ShardedFaissIndex:
    # PlannerCosts(0, 0): HNSW whenever a shard has a graph and more than
    # exact_threshold candidates, so these small shards use their graphs.
    options = {"shard_capacity": 10**6, "ann_threshold": 500, "exact_threshold": 50, **kwargs}
    return ShardedFaissIndex(D, costs=PlannerCosts(0, 0), builder=builder, **options)


def entries(keys: range, vectors: np.ndarray) -> list[IndexEntry]:
    return [IndexEntry(k, "t", SCOPE, v) for k, v in zip(keys, vectors, strict=True)]


def top1(index: ShardedFaissIndex, vectors: np.ndarray) -> list[int]:
    results = index.search(vectors, [IndexQuery("t")] * vectors.shape[0], 1)
    return [r[0].key if r else -1 for r in results]


def only_shard(index: ShardedFaissIndex):  # type: ignore[no-untyped-def]
    (shard,) = index._shards_of("t")
    return shard


def test_rows_not_yet_in_the_graph_are_found() -> None:
    rng = np.random.default_rng(0)
    builder = GraphBuilder(threaded=False)
    index = make(builder)
    first = embedding_like(rng, 2000, D)
    index.upsert(entries(range(2000), first))
    shard = only_shard(index)
    # Past ann_threshold, but the builder has not run: exact, every row found.
    assert shard.kind == IndexKind.FLAT and builder.pending() == 1
    assert "while its graph is built" in shard.kind_reason()
    assert top1(index, first[:200]) == list(range(200))
    assert builder.drain()
    assert shard.kind == IndexKind.HNSW and shard.hnsw_size == 2000 and shard.tail == 0

    fresh = embedding_like(rng, 300, D)
    index.upsert(entries(range(2000, 2300), fresh))
    assert shard.hnsw_size == 2000 and shard.tail == 300
    assert "300 not yet in the graph" in shard.kind_reason()
    before = index.plan_counts().get(HNSW, 0)
    # Read-your-writes: each new row is its own nearest neighbour, found
    # through the exact tail while the whole-tenant query is planned HNSW.
    assert top1(index, fresh) == list(range(2000, 2300))
    assert index.plan_counts()[HNSW] > before
    assert index.count("t") == 2300
    builder.drain()
    assert shard.hnsw_size == 2300 and shard.tail == 0
    assert top1(index, fresh) == list(range(2000, 2300))


def test_exact_mode_matches_the_oracle_while_graphs_are_behind() -> None:
    # exact_threshold above every count: answers must equal brute force at
    # every stage, whatever the graph covers.
    rng = np.random.default_rng(1)
    builder = GraphBuilder(threaded=False)
    index = make(builder, exact_threshold=10**9, ann_threshold=300)
    oracle = NumpyFlatIndex(D)
    queries = embedding_like(rng, 40, D)
    key = 0
    for step in range(6):
        batch = entries(range(key, key + 250), embedding_like(rng, 250, D))
        key += 250
        for target in (index, oracle):
            target.upsert(batch)
            target.remove(range(step * 37, step * 37 + 20))
        if step % 2:
            builder.drain()
        mine = index.search(queries, [IndexQuery("t")] * 40, 10)
        theirs = oracle.search(queries, [IndexQuery("t")] * 40, 10)
        assert [[n.key for n in r] for r in mine] == [[n.key for n in r] for r in theirs]


def test_update_and_delete_of_a_tail_row() -> None:
    rng = np.random.default_rng(2)
    builder = GraphBuilder(threaded=False)
    index = make(builder)
    index.upsert(entries(range(1000), embedding_like(rng, 1000, D)))
    builder.drain()
    old, new = embedding_like(rng, 2, D)
    index.upsert(entries(range(5000, 5001), old[None]))
    shard = only_shard(index)
    assert shard.tail == 1
    assert top1(index, old[None]) == [5000]
    index.upsert(entries(range(5000, 5001), new[None]))  # replaced while still in the tail
    assert shard.tail == 2  # the old row is a tombstone
    vector = index.get_vector(5000)
    assert vector is not None and np.allclose(vector, new)
    assert top1(index, new[None]) == [5000]
    hits = index.search(old[None], [IndexQuery("t")], 1001)[0]
    assert [n.score for n in hits if n.key == 5000] == pytest.approx([float(old @ new)], abs=1e-5)
    builder.drain()
    assert shard.tail == 0
    index.remove([5000])
    assert 5000 not in {n.key for n in index.search(new[None], [IndexQuery("t")], 1000)[0]}
    # Deleted while in the tail: never found, before or after the graph catches up.
    index.upsert(entries(range(6000, 6001), old[None]))
    index.remove([6000])
    for _ in range(2):
        assert 6000 not in {n.key for n in index.search(old[None], [IndexQuery("t")], 1000)[0]}
        builder.drain()
    assert index.count("t") == 1000


@pytest.mark.parametrize("behind", ["no-graph-yet", "tail"])
def test_a_snapshot_taken_while_the_graph_is_behind_loads_and_catches_up(tmp_path: Path, behind: str) -> None:
    rng = np.random.default_rng(3)
    builder = GraphBuilder(threaded=False)
    index = make(builder)
    vectors = embedding_like(rng, 1500, D)
    index.upsert(entries(range(1000), vectors[:1000]))
    if behind == "tail":
        builder.drain()
        index.upsert(entries(range(1000, 1500), vectors[1000:]))
        assert only_shard(index).tail == 500
    else:
        index.upsert(entries(range(1000, 1500), vectors[1000:]))
        assert only_shard(index).kind == IndexKind.FLAT
    index.save(tmp_path, 7)  # as a crash would find it: the build unfinished

    later = GraphBuilder(threaded=False)
    loaded = make(later)
    assert loaded.load(tmp_path) == 7
    assert later.pending() == 1  # the load handed the shard to the builder
    assert top1(loaded, vectors) == list(range(1500))
    later.drain()
    shard = only_shard(loaded)
    assert shard.kind == IndexKind.HNSW and shard.hnsw_size == 1500 and shard.tail == 0
    assert top1(loaded, vectors) == list(range(1500))


def test_the_writer_adds_to_the_graph_past_max_tail() -> None:
    rng = np.random.default_rng(4)
    builder = GraphBuilder(threaded=False)  # a builder that never keeps up
    index = make(builder, max_tail=200)
    index.upsert(entries(range(600), embedding_like(rng, 600, D)))
    builder.drain()
    shard = only_shard(index)
    for start in range(600, 2000, 350):
        index.upsert(entries(range(start, start + 350), embedding_like(rng, 350, D)))
        assert shard.tail <= 200
    # A flat shard that far past ann_threshold is built in the writer too.
    fresh = make(GraphBuilder(threaded=False), max_tail=200)
    fresh.upsert(entries(range(800), embedding_like(rng, 800, D)))
    assert only_shard(fresh).kind == IndexKind.HNSW


def test_a_compaction_during_a_first_build_discards_the_stale_graph() -> None:
    rng = np.random.default_rng(5)
    builder = GraphBuilder(threaded=False)
    index = make(builder, ann_threshold=550)
    vectors = embedding_like(rng, 1000, D)
    index.upsert(entries(range(1000), vectors))
    shard = only_shard(index)
    new_graph = shard._new_graph

    def graph_then_compaction():  # type: ignore[no-untyped-def]
        # Runs inside the builder's step, after it read the rows and before
        # it installs the graph: as if a delete had compacted meanwhile.
        graph = new_graph()
        index.remove(range(0, 1000, 2))  # compacts (and goes flat: 500 < 550)
        index.upsert(entries(range(2000, 2100), embedding_like(rng, 100, D)))
        return graph

    shard._new_graph = graph_then_compaction
    assert shard.build_step() is True  # stale: not installed, to be redone
    shard._new_graph = new_graph
    assert shard.kind == IndexKind.FLAT and shard.live == 600
    builder.drain()
    assert shard.kind == IndexKind.HNSW and shard.hnsw_size == 600 and shard.tail == 0
    assert top1(index, vectors[1::2]) == list(range(1, 1000, 2))


def test_the_builder_thread_catches_up_and_stops() -> None:
    rng = np.random.default_rng(6)
    builder = GraphBuilder()
    index = make(builder)
    vectors = embedding_like(rng, 3000, D)
    for start in range(0, 3000, 500):
        index.upsert(entries(range(start, start + 500), vectors[start : start + 500]))
        assert top1(index, vectors[start : start + 500]) == list(range(start, start + 500))
    assert index.drain_builds(timeout=60)
    shard = only_shard(index)
    assert shard.hnsw_size == 3000 and shard.tail == 0 and builder.pending() == 0
    index.close()
    index.upsert(entries(range(3000, 3010), embedding_like(rng, 10, D)))
    assert shard.tail == 10  # closed: nothing builds, the tail is still searched
    assert top1(index, vectors[:5]) == list(range(5))


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread priorities are Linux's")
def test_the_builder_thread_runs_at_a_lower_priority() -> None:
    seen: list[int] = []

    class Probe:
        def build_step(self) -> bool:
            seen.append(os.getpriority(os.PRIO_PROCESS, 0))  # 0: the calling thread
            return False

    mine = os.getpriority(os.PRIO_PROCESS, 0)
    builder = GraphBuilder(nice=5)
    builder.schedule(Probe())
    assert builder.drain(timeout=30)
    assert seen == [min(19, mine + 5)]
    assert os.getpriority(os.PRIO_PROCESS, 0) == mine  # this thread untouched
