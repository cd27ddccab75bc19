"""A FaissShard's snapshot files: what FaissShard.save writes and load reads.

Rows in the graph are stored once, inside the FAISS file; the tail (rows not
yet in the graph, see faiss_shard.py) as an array of its own, so a snapshot
taken while the graph builder is behind loads as a shard with the same tail,
which the builder then catches up.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from mnemo_server.index import snapshot
from mnemo_server.index.postings import ScopePostings
from mnemo_server.index.snapshot import SnapshotError

if TYPE_CHECKING:
    from mnemo_server.index.faiss_shard import FaissShard
    from mnemo_server.index.topk import Keys


def save(shard: FaissShard, directory: Path, prefix: str) -> dict[str, Any]:
    """Writes this shard's files; returns its manifest record."""
    with shard._writer, shard._graph_lock:
        size = shard._size
        n_graph = shard.hnsw_size
        record: dict[str, Any] = {
            "shard_id": shard.shard_id,
            "size": size,
            "live": shard._live,
            "graph_size": n_graph,
            "strings": shard._postings.strings(),
            "keys": snapshot.save_array(directory, f"{prefix}.keys.npy", shard._pos_key[:size]),
            "alive": snapshot.save_array(directory, f"{prefix}.alive.npy", shard._alive[:size]),
            "codes": snapshot.save_array(directory, f"{prefix}.codes.npy", shard._codes[:size]),
            # Rows in the graph are stored once, inside the FAISS file.
            "tail": snapshot.save_array(directory, f"{prefix}.tail.npy", shard._vectors[n_graph:size]),
        }
        if shard._hnsw is not None:
            path = directory / f"{prefix}.hnsw"
            faiss.write_index(shard._hnsw, str(path))
            record["hnsw"] = {"file": path.name, "crc32": snapshot.file_checksum(path)}
        return record


def load(shard: FaissShard, directory: Path, record: dict[str, Any]) -> Keys:
    """Replaces the contents with a saved shard; returns its live keys.

    Raises:
        SnapshotError: the files are missing, damaged or inconsistent.
    """
    try:
        size, live, n_graph = (
            int(record["size"]),
            int(record["live"]),
            int(record["graph_size"]),
        )
        strings = [[str(s) for s in field] for field in record["strings"]]
        if len(strings) != 3 or not 0 <= n_graph <= size or not 0 <= live <= size:
            raise ValueError("bad counts or string tables")
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"shard {shard.shard_id}: bad record: {exc}") from exc
    read = snapshot.load_array
    pos_key = read(directory, record["keys"], dtype=np.int64, shape=(size,))
    alive = read(directory, record["alive"], dtype=np.bool_, shape=(size,))
    codes = read(directory, record["codes"], dtype=np.int32, shape=(size, 3))
    tail = read(directory, record["tail"], dtype=np.float32, shape=(size - n_graph, shard._d))
    if int(np.count_nonzero(alive)) != live:
        raise SnapshotError(f"shard {shard.shard_id}: live count mismatch")
    if size and (codes.min() < 0 or (codes.max(axis=0) > [len(s) for s in strings]).any()):
        raise SnapshotError(f"shard {shard.shard_id}: scope code out of range")
    capacity = max(size + size // 8, 64)
    vectors = np.empty((capacity, shard._d), dtype=np.float32)
    hnsw = None
    if "hnsw" in record:
        hnsw = _read_graph(shard, directory, record["hnsw"], n_graph)
        storage: Any = faiss.downcast_index(hnsw.storage)
        graph_rows = faiss.rev_swig_ptr(storage.get_xb(), n_graph * shard._d)
        vectors[:n_graph] = np.asarray(graph_rows).reshape(n_graph, shard._d)
    elif n_graph:
        raise SnapshotError(f"shard {shard.shard_id}: graph file missing")
    vectors[n_graph:size] = tail
    live_positions = np.flatnonzero(alive)
    live_keys = pos_key[live_positions]
    if np.unique(live_keys).shape[0] != live:
        raise SnapshotError(f"shard {shard.shard_id}: duplicate live keys")
    grown_keys = np.empty(capacity, dtype=np.int64)
    grown_keys[:size] = pos_key
    grown_codes = np.empty((capacity, 3), dtype=np.int32)
    grown_codes[:size] = codes
    grown_alive = np.zeros(capacity, dtype=np.bool_)
    grown_alive[:size] = alive
    postings = ScopePostings(strings, codes)
    key_pos = dict(zip(live_keys.tolist(), live_positions.tolist(), strict=True))
    with shard._writer, shard._graph_lock, shard._lock.write:
        shard._vectors, shard._pos_key, shard._codes = vectors, grown_keys, grown_codes
        shard._alive, shard._postings, shard._key_pos = grown_alive, postings, key_pos
        shard._hnsw, shard._size, shard._live = hnsw, size, live
        shard._version += 1
        shard._generation += 1
    return live_keys


def _read_graph(shard: FaissShard, directory: Path, record: Any, n_graph: int) -> Any:
    try:
        path = directory / str(record["file"])
        expected = int(record["crc32"])
        # Checked before FAISS parses it: a damaged graph could hold
        # out-of-range neighbour ids and crash the process later.
        if snapshot.file_checksum(path) != expected:
            raise SnapshotError(f"shard {shard.shard_id}: graph checksum mismatch")
        index = faiss.read_index(str(path))
    except (OSError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise SnapshotError(f"shard {shard.shard_id}: graph unreadable: {exc}") from exc
    # read_index returns the concrete class and owns it; a downcast_index
    # proxy would not, and the index would be freed under us.
    if (
        not isinstance(index, faiss.IndexHNSWFlat)
        or index.d != shard._d
        or index.ntotal != n_graph
        or index.metric_type != faiss.METRIC_INNER_PRODUCT
    ):
        raise SnapshotError(f"shard {shard.shard_id}: graph does not match")
    return index
