"""The production vector index: per-tenant FAISS shards and a per-query planner.

Each tenant's vectors are split into shards by key range (key //
shard_capacity), so a key always lands in the same shard and a query only
ever touches its own tenant's shards: isolation is structural, not a filter.

For every (query, shard) the planner looks at the number of candidates n -
the live positions of the scope's posting, of `keys`, minus `exclude`:

* n == 0                      -> skip the shard;
* flat shard, or n <= exact_threshold
                              -> exact scan of just those rows (kernels.py),
                                 cost proportional to the scope, not to the
                                 shard;
* otherwise                   -> HNSW restricted to the candidates by a bitmap
                                 selector, efSearch raised as the candidates
                                 get sparser (see `ef_for`), unless the cost
                                 model says the exact scan is cheaper (sparse
                                 candidates make filtered HNSW walk ~ef /
                                 selectivity nodes) or ef would pass
                                 max_ef_search.

Per-shard results are merged into one top-k (score descending, ties by lower
key). A batch is grouped by identical IndexQuery; each group costs one scan
(one matrix product from kernels.SMALL_BATCH queries) or one FAISS batch call
per shard.

Threads: FAISS's OpenMP thread count is per OS thread, so search() sets it
on the calling thread every time (cached per thread): 1 for fewer than
BATCH_OMP_MIN queries - a single HNSW query does not use OpenMP anyway, and
in a server the parallelism comes from concurrent requests - and
`batch_threads` for larger batches, where FAISS parallelizes over queries.
Writes use `build_threads` for graph construction; given a GraphBuilder
(the server always gives one), graphs are built and extended behind the
writes on the builder's thread, and rows not yet in a graph are searched
exactly as the shard's tail (faiss_shard.py, graph_builder.py). Both default to 1: on the
2-core development machine, with the embedder and other processes busy,
OpenMP's spinning barriers made 2 threads 1.5-5x *slower* than 1 (HNSW add
of 20k 384-d vectors 2.9 s -> 4.3 s; a 64-query HNSW batch 5 ms -> 18 ms).
Raise them only on dedicated cores, after measuring.

Exact scans use FAISS's single-threaded SIMD kernels for small batches and a
NumPy (OpenBLAS) matrix product for large ones (see kernels.py), never
FAISS's brute-force search, so `faiss.cvar.distance_compute_blas_threshold`
does not apply to this index and is left alone (it is process-global); the
benchmark sets it for its raw-FAISS baseline, where it makes batches ~7x
faster. NumPy's OpenBLAS should run with one thread in a server
(OPENBLAS_NUM_THREADS=1): see kernels.py.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mnemo_server.index import snapshot
from mnemo_server.index.base import (
    IndexEntry,
    IndexQuery,
    Neighbor,
    ShardInfo,
    VectorIndex,
)
from mnemo_server.index.faiss_shard import FaissShard, Matrix, Selection
from mnemo_server.index.graph_builder import GraphBuilder
from mnemo_server.index.kernels import set_omp_threads
from mnemo_server.index.topk import Keys, Partial, merge
from mnemo_server.models import Scope, Vector

log = logging.getLogger(__name__)
#: Scope() as a default argument, built once (Scope is frozen).
ANY_SCOPE = Scope()

FORMAT = "mnemo.index.sharded-faiss/1"
#: From this many queries in one search() call, FAISS may use batch_threads.
BATCH_OMP_MIN = 8
EXACT = "exact"
HNSW = "hnsw"
SKIP = "skip"


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """What the planner chose for one shard of one query, and why."""

    shard_id: str
    method: str  # EXACT, HNSW or SKIP
    candidates: int
    ef_search: int  # 0 unless method is HNSW
    reason: str


@dataclass(frozen=True, slots=True)
class PlannerCosts:
    """The cost of one HNSW search, in rows of exact scan, for the planner.

    HNSW is planned only when a shard's candidates outnumber
    `base_rows + rows_per_visit * efSearch / selectivity`: a filtered search
    expands about efSearch / selectivity nodes. Defaults measured on 100k
    384-d vectors, one thread: an exact scan reads ~6,000 rows/ms; HNSW
    costs ~0.65 ms plus ~0.2 us per expanded node (at selectivity 0.05 and
    ef 287, HNSW took 1.9 ms and scanning the 5,000 candidates 0.8 ms).
    Recalibrate on other hardware; PlannerCosts(0, 0) plans HNSW whenever
    exact_threshold allows (tests use it on small data).
    """

    base_rows: float = 4000
    rows_per_visit: float = 1.5


def ef_for(ef_search: int, k: int, selectivity: float) -> float:
    """The efSearch a filtered HNSW search needs for recall@k >= ~0.95.

    With a selector only a `selectivity` share of the nodes the search walks
    can enter the result, so its candidate list must be longer: about
    k / selectivity to meet k selected nodes at all, and ef_search /
    sqrt(selectivity), measured on 384-d embedding-like data (at selectivity
    0.1, recall@10 was 0.91 at ef 64, 0.98 at 128 and 0.998 at 256).
    """
    return max(float(ef_search), 2.0 * k, k / selectivity, ef_search / math.sqrt(selectivity))


class ShardedFaissIndex(VectorIndex):
    """Per-tenant, key-range shards; exact or HNSW per query by cardinality."""

    def __init__(
        self,
        dimension: int,
        *,
        shard_capacity: int = 262144,
        ann_threshold: int = 20000,
        exact_threshold: int = 20000,
        hnsw_m: int = 32,
        ef_construction: int = 40,
        ef_search: int = 64,
        max_ef_search: int = 4096,
        compact_ratio: float = 0.3,
        batch_threads: int = 1,
        build_threads: int = 1,
        costs: PlannerCosts = PlannerCosts(),
        builder: GraphBuilder | None = None,
        max_tail: int = 20_000,
    ) -> None:
        """Creates an empty index.

        Args:
            dimension: vector length.
            shard_capacity: keys per shard range; a tenant's key k lives in
                shard k // shard_capacity. Part of the snapshot format: a
                snapshot saved with another value does not load.
            ann_threshold: a shard builds its HNSW graph once it holds more
                live vectors than this (and drops it at a compaction below).
            exact_threshold: a query scans exactly when a shard has at most
                this many candidates for it.
            hnsw_m, ef_construction: HNSW graph parameters.
            ef_search: efSearch of an unfiltered HNSW search; filtered ones
                use more (see ef_for), up to max_ef_search.
            compact_ratio: a shard rebuilds itself when tombstones exceed
                this share of its positions.
            batch_threads: FAISS OpenMP threads for searches of BATCH_OMP_MIN
                or more queries (fewer always use 1).
            build_threads: FAISS OpenMP threads for building graphs.
            costs: the planner's HNSW cost model.
            builder: builds graphs behind the writes; None builds them in
                upsert (a write returns once its rows are in the graph).
            max_tail: with a builder, a shard's rows not yet in its graph
                (searched exactly) are kept to at most about this many: past
                it, the writer adds the excess itself. Every search of the
                shard scans its tail, holding the shard's read lock, which
                holds up the next write too: with 100,000 the bench's probe
                searches during ingest took 0.3-0.5 s under load and ingest
                fell below the synchronous build's rate; 20,000 rows is ~30 MB
                at 384 dimensions, a few ms.
        """
        if dimension <= 0 or shard_capacity <= 0:
            raise ValueError("dimension and shard_capacity must be positive")
        self._d = dimension
        self._capacity = shard_capacity
        self._ann_threshold = ann_threshold
        self._exact_threshold = exact_threshold
        self._hnsw_m = hnsw_m
        self._ef_construction = ef_construction
        self._ef_search = ef_search
        self._max_ef = max_ef_search
        self._compact_ratio = compact_ratio
        self._batch_threads = batch_threads
        self._build_threads = build_threads
        self._costs = costs
        self._builder = builder
        self._max_tail = max_tail
        # tenant -> {range -> shard}. The outer dict is updated in place (one
        # atomic store under the GIL); each inner dict is replaced, never
        # mutated once published, so readers can iterate it lock-free.
        self._tenants: dict[str, dict[int, FaissShard]] = {}
        self._key_tenant: dict[int, str] = {}
        self._writer = threading.Lock()
        # Unlocked increments: exact single-threaded, approximate under
        # concurrent searches (it is a statistic).
        self._plans: Counter[str] = Counter()

    @property
    def dimension(self) -> int:
        return self._d

    # ----------------------------------------------------------------- writes

    def upsert(self, entries: Sequence[IndexEntry]) -> None:
        if not entries:
            return
        last = {e.key: i for i, e in enumerate(entries)}
        if len(last) != len(entries):  # the last entry for a key wins
            entries = [entries[i] for i in sorted(last.values())]
        n = len(entries)
        keys = np.fromiter((e.key for e in entries), dtype=np.int64, count=n)
        vectors = np.stack([e.vector for e in entries]).astype(np.float32, copy=False)
        if vectors.shape != (n, self._d):
            raise ValueError(f"vectors of shape {vectors.shape[1:]}, index dimension {self._d}")
        tenants = [e.tenant for e in entries]
        with self._writer:
            get = self._key_tenant.get
            moved = [e.key for e in entries if get(e.key, e.tenant) != e.tenant]
            if moved:
                self._remove_locked(moved)
            for tenant, rows in _group_by_tenant(tenants):
                for key_range, sub in _split_by_range(keys[rows], self._capacity):
                    chosen = rows[sub]
                    shard = self._shard(tenant, key_range)
                    scopes = [entries[i].scope for i in chosen.tolist()]
                    shard.upsert(keys[chosen], vectors[chosen], scopes)
            self._key_tenant.update(zip(keys.tolist(), tenants, strict=True))

    def remove(self, keys: Iterable[int]) -> None:
        with self._writer:
            self._remove_locked(keys)

    def _remove_locked(self, keys: Iterable[int]) -> None:
        by_shard: dict[tuple[str, int], list[int]] = {}
        pop = self._key_tenant.pop
        for key in keys:
            tenant = pop(key, None)
            if tenant is not None:
                by_shard.setdefault((tenant, key // self._capacity), []).append(key)
        for (tenant, key_range), shard_keys in by_shard.items():
            shard = self._tenants[tenant][key_range]
            shard.remove(shard_keys)
            if shard.live == 0:
                self._drop(tenant, key_range)

    def _shard(self, tenant: str, key_range: int) -> FaissShard:
        shards = self._tenants.get(tenant, {})
        shard = shards.get(key_range)
        if shard is None:
            shard = self._new_shard(tenant, key_range)
            self._tenants[tenant] = dict(sorted({**shards, key_range: shard}.items()))
        return shard

    def _new_shard(self, tenant: str, key_range: int) -> FaissShard:
        return FaissShard(
            self._d,
            shard_id=f"{tenant}/{key_range}",
            ann_threshold=self._ann_threshold,
            hnsw_m=self._hnsw_m,
            ef_construction=self._ef_construction,
            compact_ratio=self._compact_ratio,
            build_threads=self._build_threads,
            builder=self._builder,
            max_tail=self._max_tail,
        )

    def _drop(self, tenant: str, key_range: int) -> None:
        shards = {r: s for r, s in self._tenants[tenant].items() if r != key_range}
        if shards:
            self._tenants[tenant] = shards
        else:
            del self._tenants[tenant]

    # ------------------------------------------------------------------ reads

    def search(self, vectors: np.ndarray, queries: Sequence[IndexQuery], k: int) -> list[list[Neighbor]]:
        """See VectorIndex.search. Send a whole BatchSearch in one call:
        queries that are equal (same tenant, scope, keys, exclude) share one
        matrix product or one FAISS batch call per shard."""
        matrix = self._query_matrix(vectors, len(queries))
        results: list[list[Neighbor]] = [[] for _ in queries]
        if k <= 0 or not queries:
            return results
        set_omp_threads(1 if len(queries) < BATCH_OMP_MIN else self._batch_threads)
        groups: dict[IndexQuery, list[int]] = {}
        for i, query in enumerate(queries):
            groups.setdefault(query, []).append(i)
        for query, rows in groups.items():
            block = matrix if len(rows) == len(queries) else matrix[rows]
            for row, neighbors in zip(rows, self._search_group(query, block, k), strict=True):
                results[row] = neighbors
        return results

    def explain(self, query: IndexQuery, k: int = 10) -> list[ShardPlan]:
        """The plan search() would follow for `query`, per shard of its tenant."""
        plans = []
        for shard, keys, exclude in self._targets(query):
            with shard.reading():
                plans.append(self._plan(shard, shard.select(query.scope, keys, exclude), k))
        return plans

    def plan_counts(self) -> dict[str, int]:
        """How many (query group, shard) pairs each method served, since start."""
        return dict(self._plans)

    def _search_group(self, query: IndexQuery, block: Matrix, k: int) -> list[list[Neighbor]]:
        parts: list[list[Partial]] = [[] for _ in range(block.shape[0])]
        for shard, keys, exclude in self._targets(query):
            with shard.reading():
                selection = shard.select(query.scope, keys, exclude)
                plan = self._plan(shard, selection, k)
                if plan.method == SKIP:
                    continue
                if plan.method == EXACT:
                    partials = shard.exact(selection, block, k)
                else:
                    partials = shard.ann(selection, block, k, plan.ef_search)
            self._plans[plan.method] += 1
            for part, partial in zip(parts, partials, strict=True):
                if partial[0].shape[0]:
                    part.append(partial)
        return [merge(part, k) for part in parts]

    def _targets(self, query: IndexQuery) -> Iterator[tuple[FaissShard, Keys | None, Keys | None]]:
        """The query's tenant's shards, each with its share of keys and exclude."""
        shards = self._tenants.get(query.tenant)
        if not shards:
            return
        keys_by_range: dict[int, Keys] | None = None
        if query.keys is not None:
            keys = np.fromiter(query.keys, dtype=np.int64, count=len(query.keys))
            keys_by_range = {r: keys[i] for r, i in _split_by_range(keys, self._capacity)}
        exclude_by_range: dict[int, Keys] = {}
        if query.exclude:
            exclude = np.fromiter(query.exclude, dtype=np.int64, count=len(query.exclude))
            exclude_by_range = {r: exclude[i] for r, i in _split_by_range(exclude, self._capacity)}
        for key_range, shard in shards.items():
            shard_keys = None
            if keys_by_range is not None:
                shard_keys = keys_by_range.get(key_range)
                if shard_keys is None:
                    continue
            yield shard, shard_keys, exclude_by_range.get(key_range)

    def _plan(self, shard: FaissShard, selection: Selection, k: int) -> ShardPlan:
        n = selection.count
        sid = shard.shard_id
        if n == 0:
            return ShardPlan(sid, SKIP, 0, 0, "no candidates")
        n_graph = shard.hnsw_size
        if n_graph == 0:
            return ShardPlan(sid, EXACT, n, 0, f"flat shard ({shard.live} vectors)")
        if n <= self._exact_threshold:
            return ShardPlan(sid, EXACT, n, 0, f"{n} candidates <= {self._exact_threshold}")
        selectivity = min(1.0, n / n_graph)
        ef = ef_for(self._ef_search, k, selectivity)
        detail = f"selectivity {selectivity:.3f}, efSearch {ef:.0f}"
        if ef > self._max_ef:
            return ShardPlan(sid, EXACT, n, 0, f"{detail} above max_ef_search")
        if n <= self._costs.base_rows + self._costs.rows_per_visit * ef / selectivity:
            return ShardPlan(sid, EXACT, n, 0, f"{detail}: scanning {n} rows is cheaper")
        return ShardPlan(sid, HNSW, n, math.ceil(ef), f"{n} of {n_graph} positions, {detail}")

    def _query_matrix(self, vectors: np.ndarray, n: int) -> Matrix:
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        if matrix.ndim == 1 and n == 1:
            matrix = matrix.reshape(1, -1)
        if matrix.shape != (n, self._d):
            raise ValueError(f"{n} queries need vectors of shape ({n}, {self._d}), got {matrix.shape}")
        return matrix

    def count(self, tenant: str | None = None, scope: Scope = ANY_SCOPE) -> int:
        return sum(shard.count(scope) for shard in self._shards_of(tenant))

    def keys(self) -> set[int]:
        out: set[int] = set()
        for shard in self._shards_of(None):
            out.update(shard.keys())
        return out

    def get_vector(self, key: int) -> Vector | None:
        tenant = self._key_tenant.get(key)
        if tenant is None:
            return None
        shard = self._tenants.get(tenant, {}).get(key // self._capacity)
        return None if shard is None else shard.get_vector(key)

    def shards(self, tenant: str | None = None) -> list[ShardInfo]:
        return [shard.info() for shard in self._shards_of(tenant)]

    def drain_builds(self, timeout: float | None = None) -> bool:
        """Waits until every graph has caught up with the writes (True), or
        `timeout` passed (False). Nothing to wait for without a builder."""
        return True if self._builder is None else self._builder.drain(timeout)

    def close(self) -> None:
        if self._builder is not None:
            self._builder.close()

    def _shards_of(self, tenant: str | None) -> list[FaissShard]:
        if tenant is not None:
            return list(self._tenants.get(tenant, {}).values())
        return [s for shards in list(self._tenants.values()) for s in shards.values()]

    # -------------------------------------------------------------- snapshots

    def save(self, directory: Path, revision: int) -> int:
        with self._writer:
            shards = [
                (tenant, key_range, shard)
                for tenant, by_range in sorted(self._tenants.items())
                for key_range, shard in by_range.items()
            ]

            def fill(tmp: Path) -> dict[str, Any]:
                records = []
                for i, (tenant, key_range, shard) in enumerate(shards):
                    record = shard.save(tmp, f"shard-{i:05d}")
                    record.update(tenant=tenant, range=key_range)
                    records.append(record)
                return {
                    "format": FORMAT,
                    "revision": revision,
                    "dimension": self._d,
                    "shard_capacity": self._capacity,
                    "shards": records,
                }

            written = snapshot.write(directory, revision, fill)
            for _, _, shard in shards:
                shard.snapshot_revision = revision
            return written

    def load(self, directory: Path) -> int | None:
        with self._writer:
            self._tenants = {}
            self._key_tenant = {}
            try:
                revision, tenants, key_tenant = self._read(directory)
            except Exception as exc:
                # The index is derived data: whatever is wrong with a snapshot
                # (torn file, bit flip, FAISS refusing it), the answer is the
                # same - start empty and let the caller rebuild from the store.
                # A first start has no snapshot yet: that is news, not a problem.
                first_start = not Path(directory).exists() or not any(Path(directory).iterdir())
                (log.info if first_start else log.warning)(
                    "index snapshot in %s not usable: %s", directory, exc
                )
                return None
            self._tenants, self._key_tenant = tenants, key_tenant
            for shard in self._shards_of(None):
                shard.schedule_build()  # saved while its graph was behind
            return revision

    def _read(self, directory: Path) -> tuple[int, dict[str, dict[int, FaissShard]], dict[int, str]]:
        path, manifest = snapshot.read_manifest(directory)
        if manifest.get("format") != FORMAT:
            raise snapshot.SnapshotError(f"format {manifest.get('format')!r}, expected {FORMAT}")
        if manifest.get("dimension") != self._d:
            raise snapshot.SnapshotError(f"dimension {manifest.get('dimension')}, index {self._d}")
        if manifest.get("shard_capacity") != self._capacity:
            raise snapshot.SnapshotError("saved with another shard_capacity")
        revision = int(manifest["revision"])
        tenants: dict[str, dict[int, FaissShard]] = {}
        key_tenant: dict[int, str] = {}
        total = 0
        for record in manifest["shards"]:
            tenant, key_range = str(record["tenant"]), int(record["range"])
            if key_range in tenants.get(tenant, {}):
                raise snapshot.SnapshotError(f"shard {tenant}/{key_range} appears twice")
            shard = self._new_shard(tenant, key_range)
            live_keys = shard.load(path, record)
            if live_keys.shape[0] and ((live_keys // self._capacity) != key_range).any():
                raise snapshot.SnapshotError(f"shard {shard.shard_id} holds keys of other ranges")
            shard.snapshot_revision = revision
            tenants.setdefault(tenant, {})[key_range] = shard
            key_tenant.update(dict.fromkeys(live_keys.tolist(), tenant))
            total += live_keys.shape[0]
        if len(key_tenant) != total:
            raise snapshot.SnapshotError("a key is held by two tenants")
        return revision, {t: dict(sorted(s.items())) for t, s in tenants.items()}, key_tenant


def _group_by_tenant(tenants: list[str]) -> Iterator[tuple[str, npt.NDArray[np.intp]]]:
    """Row indices per tenant, in first-seen order."""
    first = tenants[0]
    if all(t == first for t in tenants):
        yield first, np.arange(len(tenants))
        return
    rows: dict[str, list[int]] = {}
    for i, tenant in enumerate(tenants):
        rows.setdefault(tenant, []).append(i)
    for tenant, indices in rows.items():
        yield tenant, np.asarray(indices, dtype=np.intp)


def _split_by_range(keys: Keys, capacity: int) -> Iterator[tuple[int, npt.NDArray[np.intp]]]:
    """Indices into `keys` per key range (key // capacity)."""
    if keys.shape[0] == 0:
        return
    ranges = keys // capacity
    first = int(ranges[0])
    if (ranges == first).all():
        yield first, np.arange(keys.shape[0])
        return
    order = np.argsort(ranges, kind="stable")
    sorted_ranges = ranges[order]
    starts = np.flatnonzero(np.diff(sorted_ranges, prepend=sorted_ranges[0] - 1))
    ends = np.append(starts[1:], sorted_ranges.shape[0])
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        yield int(sorted_ranges[start]), order[start:end]
