"""Vector index benchmark: ShardedFaissIndex against raw FAISS, same run.

Prints a markdown table of p50/p99 latency (single queries), throughput
(batches) and recall@10 against exact search, for:

* raw faiss.IndexFlatIP over all N vectors (the baseline),
* ShardedFaissIndex in exact mode (no HNSW at all) and in default mode
  (HNSW shards above 20000 vectors): whole tenant, a 1,000-memory user,
  a 10% user, keys-restricted queries, batches of 64,
* bulk upsert rate and snapshot save/load time.

Data: one tenant of N seeded random unit vectors. `--data lowrank` (default)
draws them near a 32-dimensional subspace, like sentence embeddings, whose
neighbours are meaningful; `--data uniform` draws them uniformly on the
sphere, where every vector is nearly equidistant from every other and no ANN
index reaches useful recall (shown for honesty, not as a target). Queries
come from the same distribution. User u0 holds 1,000 memories with keys
spread over the whole key space (the worst case for key-range shards).

    python bench/index_bench.py --n 100000
    python bench/index_bench.py --n 1000000 --queries 200
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from _harness.load import timed
from _harness.report import pct
from mnemo_server.index.base import IndexEntry, IndexQuery
from mnemo_server.index.sharded import ShardedFaissIndex
from mnemo_server.models import Scope

Matrix = npt.NDArray[np.float32]
TENANT = "bench"


@dataclass
class Row:
    case: str
    plan: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    per_s: float | None = None
    unit: str = "queries/s"
    recall: float | None = None
    note: str = ""


def unit_rows(x: npt.NDArray[np.float32]) -> Matrix:
    out: Matrix = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def make_vectors(rng: np.random.Generator, n: int, d: int, kind: str) -> Matrix:
    if kind == "uniform":
        return unit_rows(rng.standard_normal((n, d), dtype=np.float32))
    rank = 32
    basis = np.random.default_rng(99).standard_normal((rank, d)).astype(np.float32)
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 100_000):  # chunks keep the float temporaries small
        m = min(n, start + 100_000) - start
        x = rng.standard_normal((m, rank), dtype=np.float32) @ basis
        x += 0.3 * np.sqrt(rank / d) * rng.standard_normal((m, d), dtype=np.float32)
        out[start : start + m] = unit_rows(x)
    return out


def latencies(fn: Callable[[int], object], count: int) -> tuple[float, float, float]:
    """p50 ms, p99 ms and calls/s of fn(i) for i in range(count) (after 3 warm-ups)."""
    samples, rate = timed(fn, count, warmup=3)
    return pct(samples, 50), pct(samples, 99), rate


def exact_truth(data: Matrix, rows: npt.NDArray[np.int64] | None, queries: Matrix) -> list[set[int]]:
    """Exact top-10 keys (key == row) of each query over `rows` (None: all)."""
    subset = data if rows is None else data[rows]
    scores = queries @ subset.T
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    return [set((top[i] if rows is None else rows[top[i]]).tolist()) for i in range(len(queries))]


def recall(results: list[list[int]], truth: list[set[int]]) -> float:
    return sum(len(set(r) & t) for r, t in zip(results, truth, strict=True)) / (10 * len(truth))


def build(data: Matrix, users: list[str], **options: int) -> tuple[ShardedFaissIndex, float]:
    index = ShardedFaissIndex(data.shape[1], **options)
    start = time.perf_counter()
    for lo in range(0, data.shape[0], 1000):
        hi = min(lo + 1000, data.shape[0])
        index.upsert([IndexEntry(k, TENANT, Scope(user_id=users[k]), data[k]) for k in range(lo, hi)])
    return index, data.shape[0] / (time.perf_counter() - start)


def bench_index(
    name: str,
    index: ShardedFaissIndex,
    data: Matrix,
    queries: Matrix,
    cases: dict[str, tuple[IndexQuery, npt.NDArray[np.int64] | None]],
    count: int,
    batch: int,
) -> list[Row]:
    rows = []
    for case, (query, members) in cases.items():
        plans = index.explain(query)
        plan = "+".join(sorted({p.method for p in plans if p.method != "skip"}))
        efs = sorted({p.ef_search for p in plans if p.ef_search})
        got: dict[int, list[int]] = {}

        def one(i: int, query: IndexQuery = query, got: dict[int, list[int]] = got) -> None:
            j = i % len(queries)
            result = index.search(queries[j].reshape(1, -1), [query], 10)[0]
            got[j] = [n.key for n in result]

        p50, p99, _ = latencies(one, count)
        answered = sorted(got)
        truth = exact_truth(data, members, queries[answered])
        note = f"{len(plans)} shards" + (f", efSearch {efs}" if efs else "")
        rows.append(
            Row(
                f"{name}: {case}",
                plan,
                p50,
                p99,
                recall=recall([got[j] for j in answered], truth),
                note=note,
            )
        )
    whole = cases["whole tenant"][0]
    blocks = [queries[i : i + batch] for i in range(0, len(queries) - batch + 1, batch)]

    def run_batch(i: int) -> None:
        index.search(blocks[i % len(blocks)], [whole] * batch, 10)

    _, _, calls = latencies(run_batch, max(3, count // batch))
    rows.append(Row(f"{name}: whole tenant, batch of {batch}", "batch", per_s=calls * batch))
    return rows


def baseline(data: Matrix, queries: Matrix, count: int, batch: int) -> list[Row]:
    """Raw FAISS brute force over all N: single queries, then batches with
    FAISS's default BLAS threshold and with it lowered to 1."""
    flat = faiss.IndexFlatIP(data.shape[1])
    flat.add(data)
    p50, p99, _ = latencies(lambda i: flat.search(queries[i % len(queries)][None], 10), count)
    rows = [Row("raw faiss IndexFlatIP: all N", "flat", p50, p99, recall=1.0)]
    blocks = [queries[i : i + batch] for i in range(0, len(queries) - batch + 1, batch)]
    default_threshold = faiss.cvar.distance_compute_blas_threshold
    try:
        for threshold in (default_threshold, 1):
            faiss.cvar.distance_compute_blas_threshold = threshold
            _, _, calls = latencies(lambda i: flat.search(blocks[i % len(blocks)], 10), 5)
            note = f"distance_compute_blas_threshold={threshold}"
            rows.append(
                Row(
                    f"raw faiss IndexFlatIP: batch of {batch}",
                    "batch",
                    per_s=calls * batch,
                    note=note,
                )
            )
    finally:
        faiss.cvar.distance_compute_blas_threshold = default_threshold
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="vectors (default 100000)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--data", choices=["lowrank", "uniform"], default="lowrank")
    parser.add_argument("--queries", type=int, default=300, help="single queries per case")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-exact-mode", action="store_true", help="saves memory at 1M")
    args = parser.parse_args()
    # One thread everywhere, as a server should run: FAISS's OpenMP (as the
    # index sets it per search) and NumPy's OpenBLAS, whose helper threads
    # stall small products whenever the other cores are busy.
    faiss.omp_set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        threadpool_limits(1)
    except ImportError:
        print("threadpoolctl missing: run with OPENBLAS_NUM_THREADS=1", file=sys.stderr)
    n, d = args.n, args.dim
    rng = np.random.default_rng(args.seed)
    data = make_vectors(rng, n, d, args.data)
    queries = make_vectors(rng, max(args.queries, 2 * args.batch), d, args.data)

    # u0: 1,000 memories spread over all keys; u1: 10%; the rest u2..u9.
    user_of = np.full(n, "", dtype=object)
    keys_all = rng.permutation(n)
    small, big = keys_all[:1000], keys_all[1000 : 1000 + n // 10]
    user_of[:] = [f"u{2 + i % 8}" for i in range(n)]
    user_of[small], user_of[big] = "u0", "u1"
    users = user_of.tolist()
    picked_1k = np.sort(rng.choice(n, 1000, replace=False))
    picked_big = np.sort(rng.choice(n, n // 5, replace=False))
    cases = {
        "whole tenant": (IndexQuery(TENANT), None),
        "user of 1,000": (IndexQuery(TENANT, Scope(user_id="u0")), np.sort(small)),
        f"user of {n // 10:,} (10%)": (IndexQuery(TENANT, Scope(user_id="u1")), np.sort(big)),
        "1,000 keys": (IndexQuery(TENANT, keys=frozenset(picked_1k.tolist())), picked_1k),
        f"{n // 5:,} keys (20%)": (
            IndexQuery(TENANT, keys=frozenset(picked_big.tolist())),
            picked_big,
        ),
    }
    rows: list[Row] = []

    rows += baseline(data, queries, args.queries, args.batch)
    gc.collect()

    if not args.skip_exact_mode:
        index, rate = build(data, users, ann_threshold=2**62)
        rows.append(Row("exact mode: upsert, batches of 1000", "flat", per_s=rate, unit="vectors/s"))
        rows += bench_index("exact mode", index, data, queries, cases, args.queries, args.batch)
        del index
        gc.collect()

    index, rate = build(data, users)
    rows.append(Row("default mode: upsert, batches of 1000", "hnsw", per_s=rate, unit="vectors/s"))
    rows += bench_index("default mode", index, data, queries, cases, args.queries, args.batch)
    snapshot_dir = Path(tempfile.mkdtemp(prefix="mnemo-index-bench-"))
    try:
        start = time.perf_counter()
        written = index.save(snapshot_dir, 1)
        saved = time.perf_counter() - start
        del index
        gc.collect()
        loaded = ShardedFaissIndex(d)
        start = time.perf_counter()
        revision = loaded.load(snapshot_dir)
        took = time.perf_counter() - start
        assert revision == 1 and loaded.count() == n
        note = f"one run, {written / 2**20:,.0f} MiB"
        rows.append(Row("default mode: snapshot save (ms in p50)", "", saved * 1e3, note=note))
        rows.append(Row("default mode: snapshot load (ms in p50)", "", took * 1e3, note=note))
    finally:
        shutil.rmtree(snapshot_dir, ignore_errors=True)

    print(f"\nN={n:,} d={d} data={args.data} queries={args.queries} (k=10, one thread)\n")
    print("| case | plan | p50 ms | p99 ms | throughput | recall@10 | note |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for r in rows:

        def f(x: float | None, fmt: str) -> str:
            return "" if x is None else format(x, fmt)

        through = "" if r.per_s is None else f"{r.per_s:,.0f} {r.unit}"
        print(
            f"| {r.case} | {r.plan} | {f(r.p50_ms, '.3f')} | {f(r.p99_ms, '.3f')} | {through} "
            f"| {f(r.recall, '.3f')} | {r.note} |"
        )


if __name__ == "__main__":
    main()
