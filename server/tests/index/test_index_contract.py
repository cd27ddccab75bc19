"""The VectorIndex contract, run against every implementation."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mnemo_server.index.base import IndexEntry, IndexKind, IndexQuery, VectorIndex
from mnemo_server.index.flat import NumpyFlatIndex
from mnemo_server.index.sharded import PlannerCosts, ShardedFaissIndex
from mnemo_server.models import Scope

from .index_helpers import embedding_like

D = 16
ANY = Scope()

FACTORIES: dict[str, Callable[[int], VectorIndex]] = {
    "numpy-flat": NumpyFlatIndex,
    # Tiny shards so that every test crosses shard boundaries.
    "sharded": lambda d: ShardedFaissIndex(d, shard_capacity=8),
    # Shards turn HNSW at 16 vectors, and every query with more than two
    # candidates in a shard is planned as HNSW (no cost model).
    "sharded-hnsw": lambda d: ShardedFaissIndex(
        d, shard_capacity=64, ann_threshold=16, exact_threshold=2, costs=PlannerCosts(0, 0)
    ),
}


@pytest.fixture(params=sorted(FACTORIES))
def make_index(request: pytest.FixtureRequest) -> Callable[[int], VectorIndex]:
    return FACTORIES[request.param]


@pytest.fixture
def index(make_index: Callable[[int], VectorIndex]) -> VectorIndex:
    return make_index(D)


def unit(seed: int) -> np.ndarray:
    vector: np.ndarray = embedding_like(np.random.default_rng(seed), 1, D)[0]
    return vector


def entry(key: int, tenant: str = "t", scope: Scope = ANY, seed: int | None = None) -> IndexEntry:
    return IndexEntry(key, tenant, scope, unit(key if seed is None else seed))


def found(index: VectorIndex, query: IndexQuery, vector: np.ndarray, k: int = 100) -> list[int]:
    return [n.key for n in index.search(vector.reshape(1, -1), [query], k)[0]]


def test_empty_index(index: VectorIndex) -> None:
    assert index.dimension == D
    assert index.count() == 0
    assert index.keys() == set()
    assert index.get_vector(1) is None
    assert index.search(unit(0).reshape(1, -1), [IndexQuery("t")], 5) == [[]]
    assert index.search(np.zeros((0, D), np.float32), [], 5) == []


def test_upsert_get_count_keys(index: VectorIndex) -> None:
    index.upsert([entry(k, scope=Scope(user_id=f"u{k % 2}")) for k in range(40)])
    assert index.count() == 40
    assert index.count("t") == 40
    assert index.count("t", Scope(user_id="u1")) == 20
    assert index.count("other") == 0
    assert index.keys() == set(range(40))
    got = index.get_vector(7)
    assert got is not None
    np.testing.assert_array_equal(got, unit(7))


def test_replace_moves_vector_and_scope(index: VectorIndex) -> None:
    index.upsert([entry(k, scope=Scope(user_id="a")) for k in range(30)])
    index.upsert([entry(5, scope=Scope(user_id="b"), seed=999)])
    assert index.count() == 30
    assert index.count("t", Scope(user_id="a")) == 29
    assert index.count("t", Scope(user_id="b")) == 1
    np.testing.assert_array_equal(index.get_vector(5), unit(999))
    assert 5 not in found(index, IndexQuery("t", Scope(user_id="a")), unit(999))
    assert found(index, IndexQuery("t", Scope(user_id="b")), unit(999)) == [5]
    assert found(index, IndexQuery("t"), unit(999), k=1) == [5]


def test_replace_across_tenants(index: VectorIndex) -> None:
    index.upsert([entry(k, tenant="x") for k in range(20)])
    index.upsert([entry(3, tenant="y")])
    assert index.count("x") == 19
    assert index.count("y") == 1
    assert 3 not in found(index, IndexQuery("x"), unit(3))
    assert found(index, IndexQuery("y"), unit(3)) == [3]


def test_last_duplicate_in_a_batch_wins(index: VectorIndex) -> None:
    index.upsert([entry(1, seed=10), entry(2), entry(1, scope=Scope(run_id="r"), seed=11)])
    assert index.count() == 2
    np.testing.assert_array_equal(index.get_vector(1), unit(11))
    assert index.count("t", Scope(run_id="r")) == 1


def test_remove(index: VectorIndex) -> None:
    index.upsert([entry(k) for k in range(50)])
    index.remove([3, 4, 4, 12345])  # duplicates and unknown keys are ignored
    index.remove([])
    assert index.count() == 48
    assert index.keys() == set(range(50)) - {3, 4}
    assert index.get_vector(3) is None
    assert 3 not in found(index, IndexQuery("t"), unit(3))
    index.remove(range(50))
    assert index.count() == 0
    assert found(index, IndexQuery("t"), unit(3)) == []


def test_order_is_score_then_lower_key(index: VectorIndex) -> None:
    same = unit(1)
    index.upsert([IndexEntry(k, "t", Scope(), same) for k in (9, 3, 5)])
    index.upsert([entry(k, seed=100 + k) for k in (20, 21)])
    result = index.search(same.reshape(1, -1), [IndexQuery("t")], 3)[0]
    assert [n.key for n in result] == [3, 5, 9]
    assert all(abs(n.score - 1.0) < 1e-5 for n in result)
    everything = index.search(same.reshape(1, -1), [IndexQuery("t")], 10)[0]
    assert len(everything) == 5
    assert [n.score for n in everything] == sorted((n.score for n in everything), reverse=True)
    assert index.search(same.reshape(1, -1), [IndexQuery("t")], 0) == [[]]


def test_scope_keys_and_exclude(index: VectorIndex) -> None:
    scopes = [Scope("u1", "a1", "r1"), Scope("u1", "a2", "r2"), Scope("u2", "a1", "r1")]
    index.upsert([entry(k, scope=scopes[k % 3]) for k in range(60)])
    q = unit(0)
    assert set(found(index, IndexQuery("t", Scope(user_id="u1")), q)) == {k for k in range(60) if k % 3 != 2}
    assert set(found(index, IndexQuery("t", Scope(agent_id="a1", run_id="r1")), q)) == {
        k for k in range(60) if k % 3 != 1
    }
    assert found(index, IndexQuery("t", Scope(user_id="nobody")), q) == []
    assert found(index, IndexQuery("t", Scope(user_id="u2", agent_id="a2")), q) == []
    keys = frozenset({0, 1, 2, 3, 999})
    assert set(found(index, IndexQuery("t", keys=keys), q)) == {0, 1, 2, 3}
    assert set(found(index, IndexQuery("t", Scope(user_id="u2"), keys=keys), q)) == {2}
    assert found(index, IndexQuery("t", keys=frozenset()), q) == []
    excluded = IndexQuery("t", Scope(user_id="u2"), exclude=frozenset(range(0, 30)))
    assert set(found(index, excluded, q)) == {k for k in range(30, 60) if k % 3 == 2}
    whole_but = IndexQuery("t", exclude=frozenset(range(1, 60)))
    assert found(index, whole_but, q) == [0]


def test_tenant_isolation_with_identical_vectors(index: VectorIndex) -> None:
    same = unit(42)
    index.upsert([IndexEntry(k, "a" if k % 2 else "b", Scope("u"), same) for k in range(64)])
    b_keys = {k for k in range(64) if k % 2 == 0}
    queries = [
        IndexQuery("a"),
        IndexQuery("a", Scope("u")),
        IndexQuery("a", keys=frozenset(range(64))),  # B's keys offered explicitly
        IndexQuery("a", keys=frozenset(b_keys)),
    ]
    results = index.search(np.stack([same] * len(queries)), queries, 64)
    assert {n.key for n in results[0]} == set(range(64)) - b_keys
    assert {n.key for n in results[1]} == set(range(64)) - b_keys
    assert {n.key for n in results[2]} == set(range(64)) - b_keys
    assert results[3] == []
    assert found(index, IndexQuery("c"), same) == []


def test_batch_equals_single_queries(index: VectorIndex) -> None:
    index.upsert([entry(k, scope=Scope(user_id=f"u{k % 3}")) for k in range(90)])
    queries = [IndexQuery("t"), IndexQuery("t", Scope(user_id="u1")), IndexQuery("t")] * 4
    vectors = embedding_like(np.random.default_rng(5), len(queries), D)
    batch = index.search(vectors, queries, 7)
    singles = [index.search(vectors[i : i + 1], [q], 7)[0] for i, q in enumerate(queries)]
    assert [[n.key for n in r] for r in batch] == [[n.key for n in r] for r in singles]


def test_wrong_dimension_is_rejected(index: VectorIndex) -> None:
    with pytest.raises(ValueError):
        index.upsert([IndexEntry(1, "t", Scope(), np.ones(D + 1, np.float32))])
    with pytest.raises(ValueError):
        index.search(np.ones((1, D + 1), np.float32), [IndexQuery("t")], 3)


def test_save_load_round_trip(
    make_index: Callable[[int], VectorIndex], index: VectorIndex, tmp_path: Path
) -> None:
    scopes = [Scope("u1", "a", "r1"), Scope("u2", "", "r2"), Scope("", "a", "")]
    index.upsert([entry(k, f"t{k % 2}", scopes[k % 3]) for k in range(100)])
    index.remove(range(0, 100, 7))
    index.upsert([entry(k, "t0", scopes[0], seed=500 + k) for k in range(1, 20, 3)])
    written = index.save(tmp_path / "snap", 41)
    assert written > 0
    queries = [
        IndexQuery("t0"),
        IndexQuery("t1", Scope(user_id="u2")),
        IndexQuery("t0", keys=frozenset(range(50))),
    ]
    vectors = embedding_like(np.random.default_rng(9), 3, D)
    before = index.search(vectors, queries, 10)

    loaded = make_index(D)
    loaded.upsert([entry(1000)])  # replaced by the snapshot
    assert loaded.load(tmp_path / "snap") == 41
    assert loaded.keys() == index.keys()
    assert loaded.count("t0", Scope(user_id="u1")) == index.count("t0", Scope(user_id="u1"))
    for key in sorted(index.keys()):
        np.testing.assert_array_equal(loaded.get_vector(key), index.get_vector(key))
    assert loaded.search(vectors, queries, 10) == before
    assert {s.snapshot_revision for s in loaded.shards()} == {41}
    # Still writable after a load.
    loaded.upsert([entry(2000, "t0")])
    loaded.remove([1])
    assert loaded.count() == index.count()


def test_second_save_replaces_the_first(
    index: VectorIndex, make_index: Callable[[int], VectorIndex], tmp_path: Path
) -> None:
    index.upsert([entry(k) for k in range(10)])
    index.save(tmp_path, 1)
    index.upsert([entry(k) for k in range(10, 20)])
    index.save(tmp_path, 2)
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1
    loaded = make_index(D)
    assert loaded.load(tmp_path) == 2
    assert loaded.count() == 20


def test_interrupted_save_keeps_previous_snapshot(
    index: VectorIndex, make_index: Callable[[int], VectorIndex], tmp_path: Path
) -> None:
    index.upsert([entry(k) for k in range(10)])
    index.save(tmp_path, 1)
    # What a crash leaves: a half-written temp dir and an unreferenced snapshot.
    (tmp_path / ".tmp-snapshot-000000000002-dead").mkdir()
    (tmp_path / ".tmp-snapshot-000000000002-dead" / "shard-00000.keys.npy").write_bytes(b"\x93NUMPY")
    (tmp_path / "snapshot-000000000002-beef").mkdir()
    loaded = make_index(D)
    assert loaded.load(tmp_path) == 1
    assert loaded.count() == 10


def test_missing_snapshot_loads_nothing(index: VectorIndex, tmp_path: Path) -> None:
    index.upsert([entry(1)])
    assert index.load(tmp_path / "nowhere") is None
    assert index.count() == 0
    assert index.load(tmp_path) is None


def _corrupt_manifest(path: Path) -> None:
    path.write_text("{not json")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_corrupt_manifest, _truncate, _flip_middle_byte])
def test_corrupt_snapshot_loads_nothing(
    make_index: Callable[[int], VectorIndex], tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    index = make_index(D)
    index.upsert([entry(k, scope=Scope(user_id="u")) for k in range(40)])
    index.save(tmp_path / "good", 3)
    snap_name = next(p.name for p in (tmp_path / "good").iterdir() if p.name.startswith("snapshot-"))
    names = sorted(p.name for p in (tmp_path / "good" / snap_name).iterdir())
    assert "manifest.json" in names and len(names) > 1
    for name in names:  # each file damaged on its own
        copy = tmp_path / name
        shutil.copytree(tmp_path / "good", copy)
        damage(copy / snap_name / name)
        loaded = make_index(D)
        loaded.upsert([entry(1000)])
        assert loaded.load(copy) is None, name
        assert loaded.count() == 0
        assert loaded.keys() == set()
    assert make_index(D).load(tmp_path / "good") == 3


def test_other_dimension_loads_nothing(make_index: Callable[[int], VectorIndex], tmp_path: Path) -> None:
    index = make_index(D)
    index.upsert([entry(1)])
    index.save(tmp_path, 5)
    other = make_index(D * 2)
    assert other.load(tmp_path) is None
    assert other.count() == 0


def test_manifest_of_another_implementation_is_refused(
    make_index: Callable[[int], VectorIndex], tmp_path: Path
) -> None:
    index = make_index(D)
    index.upsert([entry(1)])
    index.save(tmp_path, 5)
    snap = next(p for p in tmp_path.iterdir() if p.name.startswith("snapshot-"))
    manifest = json.loads((snap / "manifest.json").read_text())
    manifest["format"] = "something-else/1"
    (snap / "manifest.json").write_text(json.dumps(manifest))
    assert make_index(D).load(tmp_path) is None


def test_shard_info(index: VectorIndex) -> None:
    index.upsert([entry(k) for k in range(40)])
    infos = index.shards()
    assert sum(s.vector_count for s in infos) == 40
    for info in infos:
        assert info.dimension == D
        assert info.memory_bytes > 0
        assert info.kind in (IndexKind.FLAT, IndexKind.HNSW)
        assert info.kind_reason
