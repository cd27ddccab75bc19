"""One shard of the production index: the vectors of one tenant in one key range.

Vectors live in *positions* 0..size-1 of a contiguous float32 matrix, so an
exact scan of any subset reads just those rows (kernels.py). Positions are
append-only: an update appends the new vector and tombstones the old
position, a delete only tombstones. That is forced by FAISS HNSW, which
cannot remove, and it keeps every row below `size` immutable, which lets slow
work (growing the arrays, building a graph, compacting) run outside the
exclusive lock while searches continue on the current state.

Once the live count passes `ann_threshold`, an IndexHNSWFlat (inner product)
covers positions 0..hnsw.ntotal-1 with id == position. Rows appended since
(the "tail") are scanned exactly, so a write is searchable as soon as
upsert returns. With a GraphBuilder (graph_builder.py) the graph is built
and extended behind the writes, on the builder's thread, and the tail can be
up to `max_tail` rows long (the writer adds the excess itself: backpressure
when the builder falls that far behind); without one, upsert extends the
graph before it returns, as before. Tombstoned and out-of-scope positions are kept
out of HNSW results by an IDSelectorBitmap, never by post-filtering, so a
filtered search cannot silently come back short (and if HNSW still returns
fewer than asked, the query is answered exactly). Always a bitmap, never an
IDSelectorBatch: HNSW is only planned for thousands of candidates, where a
size/8-byte bitmap is cheaper to build and to probe than a hash set. When tombstones pass
`compact_ratio` of the positions the shard rebuilds itself (this shard only).

Concurrency: mutators are serialized by `_writer` (the owning index also
serializes them); readers take the RW lock shared, in-place mutations take
it exclusive and are kept short. Adding to a live graph takes the graph's
own RW lock exclusive (ann() holds it shared), in chunks of _ADD_CHUNK rows,
so it blocks HNSW searches of this shard but not the writer's appends.
Whoever changes the graph (builder step, compaction, save, load) holds
`_graph_lock`; lock order is _writer -> _graph_lock -> the RW lock, and a
reader takes the graph's lock inside the RW lock. The
builder's first graph of a shard is built with no lock held, from rows that
never change, and installed only if no compaction or load (`_generation`)
happened meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from mnemo_server.index import kernels, shard_files
from mnemo_server.index.base import IndexKind, ShardInfo
from mnemo_server.index.graph_builder import GraphBuilder
from mnemo_server.index.kernels import set_omp_threads
from mnemo_server.index.postings import Positions, ScopePostings, prune_strings
from mnemo_server.index.rwlock import RWLock
from mnemo_server.index.topk import Keys, Partial, partials, top_k
from mnemo_server.models import Scope, Vector

Matrix = npt.NDArray[np.float32]

#: Rows added to a live HNSW graph per exclusive-lock hold: ~40 ms of
#: searches blocked at 384 dimensions on two cores, instead of seconds for a
#: large batch.
_ADD_CHUNK = 256
#: The same for the builder thread, which is not in a hurry: shorter holds.
_BUILD_CHUNK = 64
#: A gather copies each row, a full scan only streams it: above this share of
#: the shard's positions, scanning everything and picking the rows is cheaper.
_DENSE_SHARE = 1 / 3
_EMPTY: Positions = np.zeros(0, dtype=np.int64)
_SCOPES_CACHED, _SCOPE_CACHED_FROM = 16, 4096  # whole-scope selections kept, from this size


@dataclass(frozen=True, slots=True)
class Selection:
    """Where in a shard one query may look.

    positions: the live candidate positions, ascending; None means every live
        position except `excluded` (the whole tenant, not materialized so a
        whole-tenant HNSW search costs nothing per vector to set up).
    excluded: live positions to drop (only used when positions is None).
    count: how many candidates there are.
    """

    positions: Positions | None
    excluded: Positions
    count: int
    bitmaps: dict[int, npt.NDArray[np.uint8]] | None = None  # by graph size, if select reuses it


class FaissShard:
    """Vectors of one tenant in one key range, searchable exactly or by HNSW."""

    def __init__(
        self,
        dimension: int,
        *,
        shard_id: str,
        ann_threshold: int = 20000,
        hnsw_m: int = 32,
        ef_construction: int = 40,
        compact_ratio: float = 0.3,
        build_threads: int = 1,
        builder: GraphBuilder | None = None,
        max_tail: int = 20_000,
    ) -> None:
        self.shard_id = shard_id
        self.snapshot_revision = 0
        #: Searches that HNSW returned short (fewer than min(k, candidates)
        #: results), which were then answered exactly instead.
        self.fallbacks = 0
        #: Compactions and kind changes (flat -> HNSW) so far.
        self.rebuilds = 0
        self._d = dimension
        self._ann_threshold = ann_threshold
        self._hnsw_m = hnsw_m
        self._ef_construction = ef_construction
        self._compact_ratio = compact_ratio
        self._build_threads = build_threads
        self._builder = builder
        self._max_tail = max_tail
        self._generation = 0
        self._graph_lock = threading.Lock()
        self._graph_rw = RWLock()
        self._writer = threading.Lock()
        self._lock = RWLock()
        self._vectors: Matrix = np.empty((0, dimension), dtype=np.float32)
        self._pos_key: Keys = np.empty(0, dtype=np.int64)
        self._alive: npt.NDArray[np.bool_] = np.empty(0, dtype=np.bool_)
        self._codes: npt.NDArray[np.int32] = np.empty((0, 3), dtype=np.int32)
        self._size = 0
        self._live = 0
        self._key_pos: dict[int, int] = {}
        self._postings = ScopePostings.empty()
        self._hnsw: Any = None
        self._version = 0
        self._bitmap_cache: tuple[tuple[int, int], npt.NDArray[np.uint8] | None] | None = None
        self._scope_cache: dict[Scope, tuple[int, Selection]] = {}  # by version

    # ------------------------------------------------------------------ state

    @property
    def live(self) -> int:
        return self._live

    @property
    def size(self) -> int:
        """Positions in use, tombstones included."""
        return self._size

    @property
    def hnsw_size(self) -> int:
        """Positions covered by the HNSW graph (0 for a flat shard)."""
        return 0 if self._hnsw is None else int(self._hnsw.ntotal)

    @property
    def kind(self) -> IndexKind:
        return IndexKind.FLAT if self._hnsw is None else IndexKind.HNSW

    @property
    def tail(self) -> int:
        """Positions not (yet) in the graph, scanned exactly; 0 for a flat shard."""
        return 0 if self._hnsw is None else self._size - int(self._hnsw.ntotal)

    def kind_reason(self) -> str:
        if self._hnsw is None:
            if self._live > self._ann_threshold:
                return f"exact while its graph is built ({self._live} vectors)"
            return f"exact below {self._ann_threshold} vectors"
        tail = self.tail
        behind = f", {tail} not yet in the graph (scanned exactly)" if tail else ""
        return f"hnsw: {self._live} vectors{behind}"

    def reading(self) -> AbstractContextManager[None]:
        """Hold while calling select/exact/ann (shared with other readers)."""
        return self._lock.read

    def info(self) -> ShardInfo:
        with self._lock.read:
            return ShardInfo(
                shard_id=self.shard_id,
                kind=self.kind,
                vector_count=self._live,
                dimension=self._d,
                memory_bytes=self._memory_bytes(),
                snapshot_revision=self.snapshot_revision,
                kind_reason=self.kind_reason(),
            )

    def keys(self) -> list[int]:
        with self._lock.read:
            return list(self._key_pos)

    def get_vector(self, key: int) -> Vector | None:
        with self._lock.read:
            pos = self._key_pos.get(key)
            return None if pos is None else self._vectors[pos].copy()

    def count(self, scope: Scope) -> int:
        with self._lock.read:
            return self.select(scope, None, None).count

    def _memory_bytes(self) -> int:
        arrays = (self._vectors, self._pos_key, self._alive, self._codes)
        total = sum(a.nbytes for a in arrays)
        # ~100 bytes per dict entry (hash slot, entry, two int objects).
        total += 100 * len(self._key_pos)
        if self._hnsw is not None:
            # Its own copy of the vectors plus 2*M level-0 links per vector
            # (upper levels add ~1/M of that).
            total += int(self._hnsw.ntotal) * (4 * self._d + 4 * 2 * self._hnsw_m * 33 // 32)
        return total

    # ------------------------------------------------------------------ reads
    # Callers hold reading().

    def select(self, scope: Scope, keys: Keys | None, exclude: Keys | None) -> Selection:
        """The live candidates of a query in this shard.

        Cost is proportional to the scope's posting (or to len(keys)), not to
        the shard, except for a whole-tenant query, which is not materialized.
        """
        alive = self._alive
        codes = self._codes
        query_codes = self._postings.query_codes(scope)
        if query_codes is None:
            return Selection(_EMPTY, _EMPTY, 0)
        if keys is not None:
            positions = self._positions_of(keys)
            positions = positions[alive[positions]]
            for field, code in query_codes:
                positions = positions[codes[positions, field] == code]
            positions.sort()
        else:
            narrowest = self._postings.narrowest(scope)
            if narrowest is None:
                excluded = _EMPTY
                if exclude is not None and exclude.shape[0]:
                    excluded = self._positions_of(exclude)
                    excluded = np.unique(excluded[alive[excluded]])
                return Selection(None, excluded, self._live - excluded.shape[0])
            # A big scope's candidates and bitmaps, kept per version (races store equals).
            whole, version = exclude is None or not exclude.shape[0], self._version
            cached = self._scope_cache.get(scope) if whole else None
            if cached is not None and cached[0] == version:
                return cached[1]
            first, posting = narrowest
            positions = posting[alive[posting]]
            for field, code in query_codes:
                if field != first:
                    positions = positions[codes[positions, field] == code]
            if whole and positions.shape[0] >= _SCOPE_CACHED_FROM:
                if len(self._scope_cache) >= _SCOPES_CACHED:
                    self._scope_cache.clear()
                selection = Selection(positions, _EMPTY, positions.shape[0], {})
                self._scope_cache[scope] = (version, selection)
                return selection
        if exclude is not None and exclude.shape[0] and positions.shape[0]:
            excluded = self._positions_of(exclude)
            if excluded.shape[0]:
                positions = positions[~np.isin(positions, excluded, assume_unique=True)]
        return Selection(positions, _EMPTY, positions.shape[0])

    def exact(self, selection: Selection, queries: Matrix, k: int) -> list[Partial]:
        """Exact top-k of each query row over the selection."""
        size = self._size
        positions = selection.positions
        if positions is None:
            keep = self._alive[:size].copy()
            keep[selection.excluded] = False
            positions = np.flatnonzero(keep)
            if positions.shape[0] == size:
                scores = kernels.scores_prefix(self._vectors, size, queries)
                return partials(self._pos_key[:size], scores, k)
        if positions.shape[0] >= _DENSE_SHARE * size:
            scores = kernels.scores_prefix(self._vectors, size, queries)[:, positions]
        else:
            scores = kernels.scores_at(self._vectors, positions, queries)
        return partials(self._pos_key[positions], scores, k)

    def ann(self, selection: Selection, queries: Matrix, k: int, ef_search: int) -> list[Partial]:
        """Approximate top-k by HNSW, restricted to the selection by a bitmap;
        exact for the tail not yet in the graph."""
        # The graph's own lock: it cannot grow (ntotal, the bitmap's size)
        # while it is searched, and growing it does not block the writer.
        with self._graph_rw.read:
            return self._ann(selection, queries, k, ef_search)

    def _ann(self, selection: Selection, queries: Matrix, k: int, ef_search: int) -> list[Partial]:
        hnsw = self._hnsw
        n_graph = int(hnsw.ntotal)
        if selection.positions is None:
            in_graph_count = int(np.count_nonzero(self._alive[:n_graph])) - int(
                np.count_nonzero(selection.excluded < n_graph)
            )
            bitmap = self._whole_bitmap(n_graph, selection.excluded)
            tail = np.flatnonzero(self._alive[n_graph : self._size]) + n_graph
            if selection.excluded.shape[0]:
                tail = tail[~np.isin(tail, selection.excluded)]
            graph_positions: Positions | None = None
        else:
            split = int(np.searchsorted(selection.positions, n_graph))
            graph_positions = selection.positions[:split]
            tail = selection.positions[split:]
            in_graph_count = graph_positions.shape[0]
            memo = selection.bitmaps if selection.bitmaps is not None else {}
            if (bitmap := memo.get(n_graph)) is None:
                mask = np.zeros(n_graph, dtype=np.bool_)
                mask[graph_positions] = True
                memo.clear()  # only the latest graph size is asked again
                bitmap = memo[n_graph] = np.packbits(mask, bitorder="little")

        results: list[Partial] = [(_EMPTY, np.zeros(0, np.float32))] * queries.shape[0]
        want = min(k, in_graph_count)
        if want > 0:
            # The selector reads the bitmap through a raw pointer: `bitmap`
            # must stay referenced until search returns (it is a local here).
            selector = None
            if bitmap is not None:
                selector = faiss.IDSelectorBitmap(bitmap.shape[0], faiss.swig_ptr(bitmap))
            # (faiss has no stubs; mypy sees only part of its SWIG module)
            params = faiss.SearchParametersHNSW(  # type: ignore[attr-defined]
                sel=selector, efSearch=max(ef_search, want)
            )
            distances, labels = hnsw.search(queries, want, params=params)
            short = []
            for j in range(queries.shape[0]):
                found = labels[j] >= 0
                if int(np.count_nonzero(found)) < want:
                    short.append(j)
                    continue
                results[j] = top_k(self._pos_key[labels[j]], distances[j], k)
            if short:
                # Filtered HNSW can strand the search in a region with too
                # few selected nodes; an exact answer beats a short one.
                self.fallbacks += len(short)
                if graph_positions is None:
                    keep = self._alive[:n_graph].copy()
                    keep[selection.excluded[selection.excluded < n_graph]] = False
                    graph_positions = np.flatnonzero(keep)
                exact = self.exact(Selection(graph_positions, _EMPTY, 0), queries[short], k)
                for j, partial in zip(short, exact, strict=True):
                    results[j] = partial
        if tail.shape[0]:
            tails = self.exact(Selection(tail, _EMPTY, tail.shape[0]), queries, k)
            results = [
                top_k(np.concatenate((a[0], b[0])), np.concatenate((a[1], b[1])), k)
                for a, b in zip(results, tails, strict=True)
            ]
        return results

    def _whole_bitmap(self, n_graph: int, excluded: Positions) -> npt.NDArray[np.uint8] | None:
        """The selector bitmap for "every live position": None when nothing in
        the graph is dead, cached per shard version otherwise."""
        # Keyed by graph size too: adding graph chunks changes no version.
        state = (self._version, n_graph)
        cached = self._bitmap_cache
        if cached is not None and cached[0] == state and not excluded.shape[0]:
            return cached[1]
        alive = self._alive[:n_graph]
        if excluded.shape[0]:
            alive = alive.copy()
            alive[excluded[excluded < n_graph]] = False
            return np.packbits(alive, bitorder="little")
        bitmap = None if alive.all() else np.packbits(alive, bitorder="little")
        # Benign race: concurrent readers compute the same value.
        self._bitmap_cache = (state, bitmap)
        return bitmap

    def _positions_of(self, keys: Keys) -> Positions:
        """Positions of the keys this shard holds (unknown keys dropped)."""
        # map() with a default argument keeps the per-key loop in C.
        found = np.fromiter(
            map(self._key_pos.get, keys.tolist(), repeat(-1)), dtype=np.int64, count=keys.shape[0]
        )
        return found[found >= 0]

    # ----------------------------------------------------------------- writes

    def upsert(self, keys: Keys, vectors: Matrix, scopes: Sequence[Scope]) -> None:
        """Adds or replaces entries; `keys` must be unique within the call."""
        if keys.shape[0] == 0:
            return
        with self._writer:
            self._append(keys, vectors, scopes)
            self._maintain()

    def _append(self, keys: Keys, vectors: Matrix, scopes: Sequence[Scope]) -> None:
        """Appends the rows and tombstones replaced ones, visible atomically;
        the HNSW graph catches up in _maintain (until then they are tail)."""
        n = keys.shape[0]
        codes = self._postings.encode(scopes)
        keys_list = keys.tolist()
        old = [p for p in map(self._key_pos.get, keys_list) if p is not None]
        start = self._size
        end = start + n
        self._reserve(end)
        with self._lock.write:
            self._vectors[start:end] = vectors
            self._pos_key[start:end] = keys
            self._alive[start:end] = True
            self._codes[start:end] = codes
            if old:
                self._alive[old] = False
            self._key_pos.update(zip(keys_list, range(start, end), strict=True))
            self._postings.append(np.arange(start, end, dtype=np.int64), codes)
            self._size = end
            self._live += n - len(old)
            self._version += 1

    def remove(self, keys: Iterable[int]) -> int:
        """Tombstones the keys this shard holds; returns how many it held."""
        with self._writer:
            keys = [k for k in dict.fromkeys(keys) if k in self._key_pos]
            if not keys:
                return 0
            with self._lock.write:
                self._alive[[self._key_pos.pop(k) for k in keys]] = False
                self._live -= len(keys)
                self._version += 1
            self._maintain()
            return len(keys)

    def compact(self) -> None:
        """Rebuilds the shard from its live positions (tests and maintenance)."""
        with self._writer:
            self._rebuild()

    def _maintain(self) -> None:
        dead = self._size - self._live
        builder = self._builder
        if dead > self._compact_ratio * self._size:
            self._rebuild()
        elif self._hnsw is None:
            if self._live > self._ann_threshold:
                # Too far behind (or no builder): build it here and now.
                if builder is None or self._live > self._ann_threshold + self._max_tail:
                    self._rebuild()
                else:
                    builder.schedule(self)
        elif self._hnsw.ntotal < self._size:
            if builder is None:
                self._extend_graph(self._size)
            else:
                if self._size - self._hnsw.ntotal > self._max_tail:
                    self._extend_graph(self._size - self._max_tail)
                builder.schedule(self)

    def build_step(self) -> bool:
        """One piece of graph work for the builder thread: the shard's first
        graph, or one chunk of the tail added to it. True while more remains."""
        if self._hnsw is None:
            return self._build_first_graph()
        with self._graph_lock:
            hnsw = self._hnsw
            if hnsw is None:
                return True
            with self._lock.read:
                start, size, vectors = int(hnsw.ntotal), self._size, self._vectors
            if start >= size:
                return False
            end = min(start + _BUILD_CHUNK, size)
            set_omp_threads(self._build_threads)
            with self._graph_rw.write:
                hnsw.add(vectors[start:end])
            return end < size

    def _build_first_graph(self) -> bool:
        with self._lock.read:
            generation, size, live, vectors = self._generation, self._size, self._live, self._vectors
        if self._hnsw is not None or live <= self._ann_threshold:
            return False
        # Rows below `size` never change (a compaction or load swaps whole
        # arrays and bumps the generation), so no lock is needed while adding.
        # Positions stay as they are, tombstones included: the selector
        # bitmap keeps dead rows out, and a compaction drops them later.
        set_omp_threads(self._build_threads)
        graph = self._new_graph()
        graph.add(vectors[:size])
        with self._graph_lock:
            if self._generation != generation or self._hnsw is not None:
                return self._hnsw is None  # stale: start over on the new rows
            with self._lock.write:
                self._hnsw = graph
                self._version += 1
            self.rebuilds += 1
            return size < self._size

    def schedule_build(self) -> None:
        """Hands a shard whose graph is behind to the builder (after a load)."""
        if self._builder is not None and (
            self.tail or (self._hnsw is None and self._live > self._ann_threshold)
        ):
            self._builder.schedule(self)

    def _reserve(self, rows: int) -> None:
        """Grows the arrays to hold `rows` positions. Copies outside the
        exclusive lock: rows below size never change and only the writer
        (this thread) appends."""
        capacity = self._vectors.shape[0]
        if rows <= capacity:
            return
        # Doubling: total copying stays below the final size (x1.5 cost twice
        # as much in copies and first-touch page faults in bulk loads).
        capacity = max(rows, 2 * capacity, 64)
        size = self._size
        vectors = np.empty((capacity, self._d), dtype=np.float32)
        vectors[:size] = self._vectors[:size]
        pos_key = np.empty(capacity, dtype=np.int64)
        pos_key[:size] = self._pos_key[:size]
        codes = np.empty((capacity, 3), dtype=np.int32)
        codes[:size] = self._codes[:size]
        alive = np.zeros(capacity, dtype=np.bool_)
        with self._lock.write:
            alive[:size] = self._alive[:size]  # tombstones change under this lock
            self._vectors, self._pos_key, self._codes, self._alive = vectors, pos_key, codes, alive

    def _new_graph(self) -> Any:
        index = faiss.IndexHNSWFlat(self._d, self._hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self._ef_construction
        return index

    def _extend_graph(self, until: int) -> None:
        """Adds rows up to position `until` to the graph, in the writer."""
        set_omp_threads(self._build_threads)
        with self._graph_lock:
            hnsw = self._hnsw
            for start in range(int(hnsw.ntotal), until, _ADD_CHUNK):
                rows = self._vectors[start : min(start + _ADD_CHUNK, until)]
                with self._graph_rw.write:
                    hnsw.add(rows)

    def _rebuild(self) -> None:
        """Compacts to the live positions and picks the kind for the live
        count. Everything is built aside; searches see the old state until
        the swap."""
        with self._graph_lock:
            self._rebuild_locked()

    def _rebuild_locked(self) -> None:
        live = np.flatnonzero(self._alive[: self._size])
        n = live.shape[0]
        capacity = max(n + n // 8, 64)
        vectors = np.empty((capacity, self._d), dtype=np.float32)
        np.take(self._vectors, live, axis=0, out=vectors[:n])
        pos_key = np.empty(capacity, dtype=np.int64)
        pos_key[:n] = self._pos_key[live]
        codes = np.empty((capacity, 3), dtype=np.int32)
        strings = prune_strings(self._postings.strings(), self._codes[live], codes[:n])
        alive = np.zeros(capacity, dtype=np.bool_)
        alive[:n] = True
        hnsw = None
        if n > self._ann_threshold:
            set_omp_threads(self._build_threads)
            hnsw = self._new_graph()
            hnsw.add(vectors[:n])
        postings = ScopePostings(strings, codes[:n])
        key_pos = dict(zip(pos_key[:n].tolist(), range(n), strict=True))
        with self._lock.write:
            self._vectors, self._pos_key, self._codes, self._alive = vectors, pos_key, codes, alive
            self._postings, self._key_pos, self._hnsw = postings, key_pos, hnsw
            self._size = self._live = n
            self._version += 1
            self._generation += 1
        self.rebuilds += 1

    # -------------------------------------------------------------- snapshots
    # Called with the owning index's writer lock held (shard_files.py).

    def save(self, directory: Path, prefix: str) -> dict[str, Any]:
        """Writes this shard's files; returns its manifest record."""
        return shard_files.save(self, directory, prefix)

    def load(self, directory: Path, record: dict[str, Any]) -> Keys:
        """Replaces the contents with a saved shard; returns its live keys.

        Raises:
            snapshot.SnapshotError: the files are missing, damaged or inconsistent.
        """
        return shard_files.load(self, directory, record)
