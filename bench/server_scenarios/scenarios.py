"""The phases of one size against a running server, in the order they run.

Each phase takes the `Bench` of its size, measures, and appends its rows (and
notes) to the size's Section; later phases read what earlier ones left on the
Bench (the empty-call floor, the single-query requests, the fresh queries).
"""

from __future__ import annotations

import gc
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter, perf_counter_ns

import grpc
import numpy as np
import numpy.typing as npt
from grpc_health.v1 import health_pb2, health_pb2_grpc

from _harness.load import CpuMeter, Load, closed_loop, timed
from _harness.process import ServerProcess
from _harness.report import pct, per_s
from mnemo.v1 import memory_pb2, memory_service_pb2, memory_service_pb2_grpc

from .baselines import FaissBaseline, Model, query_text
from .dataset import Dataset, FreshQueries, disk_usage, numbers, recall, search_request, user_of
from .section import Row, Section
from .settings import BATCH_SEARCH, BATCH_WRITE, CHANNEL_OPTIONS, SMALL, WRITE_METHOD, K, Plan
from .visibility import VisibilityProbe


def start_server(data_dir: Path, flags: list[str], env: dict[str, str]) -> ServerProcess:
    """The server under test; returns once it has bound (wait_serving times the rest)."""
    return ServerProcess(
        data_dir, *flags, env=env, until="port", timeout=900, channel_options=CHANNEL_OPTIONS
    )


@dataclass
class Bench:
    """One size: its data, answers and baselines, the running server, and what
    the phases measured so far."""

    n: int
    plan: Plan
    data: Dataset
    truth: dict[str, list[set[int]]]
    raw: FaissBaseline
    section: Section
    server: ServerProcess
    channels: list[grpc.Channel] = field(default_factory=list)
    empty_p50: float = 0.0
    empty_rate: float = 0.0
    count: int = 0  # single queries per row
    requests: dict[str, list[memory_service_pb2.SearchMemoriesRequest]] = field(default_factory=dict)
    fresh: FreshQueries | None = None
    unary_rate: dict[str, float] = field(default_factory=dict)  # one call at a time, per scope

    def __post_init__(self) -> None:
        self.channels = self.server.channels(self.plan.channels)
        self.stubs = [memory_service_pb2_grpc.MemoryServiceStub(ch) for ch in self.channels]
        self.healths = [health_pb2_grpc.HealthStub(ch) for ch in self.channels]
        self.count = min(self.plan.queries, len(self.data.queries))
        self.fresh = FreshQueries(self.data.fresh)

    def add(
        self,
        operation: str,
        p50_ms: float | None,
        p99_ms: float | None,
        throughput: str,
        baseline: str,
        target: str = "",
        ok: bool | None = None,
    ) -> None:
        self.section.rows.append(Row(operation, p50_ms, p99_ms, throughput, baseline, target, ok))


def empty_calls(b: Bench) -> None:
    """1. the floor: an empty call on the same channel as every single-call row"""
    server, plan, check = b.server, b.plan, health_pb2.HealthCheckRequest()
    meter = CpuMeter(server)
    samples, rate = timed(lambda i: server.health.Check(check), plan.health_calls, warmup=50)
    b.empty_p50 = pct(samples, 50)
    b.add(
        "empty call (Health/Check), 1 in flight",
        b.empty_p50,
        pct(samples, 99),
        f"{per_s(rate, 'calls/s')} {meter.read()}",
        "this is the baseline",
    )
    load = closed_loop(
        lambda c, i: b.healths[c % len(b.healths)].Check(check),
        plan.load_clients,
        plan.seconds,
        server,
    )
    b.empty_rate = load.per_s
    b.add(
        f"empty call, {plan.load_clients} clients",
        pct(load.samples, 50),
        pct(load.samples, 99),
        f"{per_s(load.per_s, 'calls/s')} {load.cpu}",
        "this is the baseline",
    )


def ingest(
    server: ServerProcess, batches: list[bytes], clients: int
) -> tuple[npt.NDArray[np.int64], float, Load]:
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
            t = perf_counter_ns()
            response = calls[c](batches[b], timeout=600)
            took = perf_counter_ns() - t
            bad = [r.status for r in response.results if r.status.code != 0]
            with lock:
                latencies.append(took)
                failures.extend(f"{s.code} {s.message}" for s in bad[:3])

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    started, meter = perf_counter(), CpuMeter(server)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = perf_counter() - started
    for ch in channels:
        ch.close()
    if failures:
        raise RuntimeError(f"ingest failed: {failures[:5]}")
    samples = np.array(latencies, dtype=np.int64)
    cpu = meter.read()
    return samples, elapsed, Load(samples, len(batches) * BATCH_WRITE / elapsed, cpu)


def ingest_rows(b: Bench, batches: list[bytes]) -> None:
    """2. ingest"""
    print(f"[N={b.n:,}] ingest", flush=True)
    probe = VisibilityProbe(b.server)
    probe.start()
    try:
        samples, elapsed, load = ingest(b.server, batches, b.plan.ingest_clients)
    finally:
        probe.stop()
    probe.delete_probes()
    rate = b.n / elapsed
    b.add(
        f"ingest: BatchWriteMemories, {BATCH_WRITE:,} creates/call, "
        f"{b.plan.ingest_clients} clients (p50/p99 per call)",
        pct(samples, 50),
        pct(samples, 99),
        f"{per_s(rate, 'memories/s')} {load.cpu}",
        f"FAISS HNSW add {b.raw.hnsw_build_per_s:,.0f}/s (2 threads)",
        ">= 10,000 memories/s",
        rate >= 10_000,
    )
    if probe.errors:
        raise RuntimeError(f"visibility probe failed: {probe.errors}")
    delays = (np.array(probe.delays_ms) * 1e6).astype(np.int64)  # pct() takes ns
    b.add(
        f"a write found by a search after its ack, during the ingest ({len(delays)} probes)",
        pct(delays, 50) if len(delays) else None,
        pct(delays, 99) if len(delays) else None,
        f"{probe.first_try}/{len(delays)} found by the first search",
        "ack -> first search that finds it (includes that search)",
        "<= 50 ms",
        bool(len(delays)) and pct(delays, 100) <= 50,
    )
    batches.clear()
    gc.collect()
    settle = b.server.wait_idle()
    b.section.notes.append(
        f"After ingest the server needed {settle:.1f} s to go idle; RSS {b.server.rss_mib():,.0f} MiB."
    )


def vector_rows(b: Bench) -> None:
    """3. single vector searches, one scope after another; the same queries
    again (result cache); concurrent searches against the empty-call rate"""
    server, raw, queries, count = b.server, b.raw, b.data.queries, b.count
    sizes = {s: len(r) for s, r in b.data.scopes.items()}
    b.requests = {s: [search_request(queries[i], user_of(s)) for i in range(count)] for s in b.data.scopes}
    empty_p50 = b.empty_p50
    for scope in ("big", "small", "all"):
        found: dict[int, list[int]] = {}

        def one(i: int, scope: str = scope, found: dict[int, list[int]] = found) -> None:
            found[i] = numbers(server.memory.SearchMemories(b.requests[scope][i]))

        meter = CpuMeter(server)
        samples, rate = timed(one, count)
        cpu = meter.read()
        r = recall(found, b.truth[scope])
        p50 = pct(samples, 50)
        label = {
            "big": f"user 'big' ({sizes['big']:,})",
            "small": f"user 'small' ({SMALL:,})",
            "all": f"whole tenant ({b.n:,}, no scope)",
        }[scope]
        target: str
        ok: bool | None
        if scope == "big":
            baseline = (
                f"FAISS HNSW {raw.hnsw_p50_ms:.3f} ms (recall {raw.hnsw_recall:.3f}); "
                f"flat {raw.flat_ms['big']:.2f} ms; empty call {empty_p50:.3f} ms"
            )
            bound = empty_p50 + raw.hnsw_p50_ms + 0.3
            target = f"p50 <= empty + FAISS + 0.3 = {bound:.2f} ms, recall >= 0.95"
            ok = p50 <= bound and r >= 0.95
        elif scope == "small":
            baseline = f"FAISS flat {raw.flat_ms['small']:.3f} ms; empty call {empty_p50:.3f} ms"
            bound = empty_p50 + 0.3
            target, ok = f"p50 <= empty + 0.3 = {bound:.2f} ms", p50 <= bound
        else:
            baseline = f"FAISS flat {raw.flat_ms['all']:.2f} ms; empty call {empty_p50:.3f} ms"
            target, ok = "", None
        b.unary_rate[scope] = rate
        b.add(
            f"vector search, {label}, recall@10 {r:.3f}",
            p50,
            pct(samples, 99),
            f"{per_s(rate, 'queries/s')} {cpu}",
            baseline,
            target,
            ok,
        )

    # the same queries again: answered from the result cache
    meter = CpuMeter(server)
    samples, rate = timed(lambda i: server.memory.SearchMemories(b.requests["big"][i]), count)
    b.add(
        "vector search, user 'big', repeated queries (result cache hits)",
        pct(samples, 50),
        pct(samples, 99),
        f"{per_s(rate, 'queries/s')} {meter.read()}",
        f"empty call {empty_p50:.3f} ms",
    )

    # concurrent vector searches: what the server sustains, vs empty calls
    fresh = b.fresh
    assert fresh is not None
    for scope in ("big", "small"):

        def many(c: int, i: int, scope: str = scope) -> object:
            request = search_request(fresh.take(1)[0], scope)
            return b.stubs[c % len(b.stubs)].SearchMemories(request)

        load = closed_loop(many, b.plan.load_clients, b.plan.seconds, server)
        p50, p99 = pct(load.samples, 50), pct(load.samples, 99)
        b.add(
            f"vector search, user '{scope}', {b.plan.load_clients} clients",
            p50,
            p99,
            f"{per_s(load.per_s, 'queries/s')} {load.cpu}",
            f"empty calls {b.empty_rate:,.0f}/s",
            "p99 <= 3x p50",
            p99 <= 3 * p50,
        )


def stream_rows(b: Bench) -> None:
    """4. StreamSearchMemories: plan.stream_queries fresh queries on one
    stream, sent without waiting for answers, against one unary call at a
    time in the same scope (vector_rows)"""
    fresh = b.fresh
    assert fresh is not None
    for scope in ("big", "small"):
        vectors = fresh.take(b.plan.stream_queries)
        requests = [
            memory_service_pb2.StreamSearchMemoriesRequest(query_id=str(i), search=search_request(v, scope))
            for i, v in enumerate(vectors)
        ]
        meter = CpuMeter(b.server)
        t0 = perf_counter()
        answers = list(b.stubs[0].StreamSearchMemories(iter(requests)))
        elapsed = perf_counter() - t0
        cpu = meter.read()
        errors = sum(1 for a in answers if a.HasField("error"))
        assert len(answers) == len(requests) and errors == 0, (len(answers), errors)
        rate = len(requests) / elapsed
        unary = b.unary_rate[scope]
        b.add(
            f"StreamSearchMemories, {len(requests):,} queries on one stream, user '{scope}', "
            "client not waiting (p50 = whole stream)",
            elapsed * 1e3,
            None,
            f"{per_s(rate, 'queries/s')} = {rate / unary:.1f}x unary {cpu}",
            f"unary one at a time {unary:,.0f} queries/s",
            ">= 5x unary",
            rate >= 5 * unary,
        )


def batch_rows(b: Bench) -> None:
    """5. BatchSearchMemories, 64 vectors per call, big scope: each row first
    sends plan.batch_calls blocks with known answers, then fresh ones"""
    plan, queries, raw, fresh = b.plan, b.data.queries, b.raw, b.fresh
    assert fresh is not None
    for clients in (1, 2):
        found: dict[int, list[int]] = {}
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
            vectors = queries[start : start + BATCH_SEARCH] if start is not None else fresh.take(BATCH_SEARCH)
            response = b.stubs[c % len(b.stubs)].BatchSearchMemories(
                memory_service_pb2.BatchSearchMemoriesRequest(
                    requests=[search_request(v, "big") for v in vectors]
                )
            )
            if start is not None:
                for j, result in enumerate(response.results):
                    found[start + j] = numbers(result)

        load = closed_loop(batch, clients, plan.seconds, b.server)
        rate = load.per_s * BATCH_SEARCH
        r = recall(found, b.truth["big"])
        share = rate / raw.hnsw_batch_per_s
        b.add(
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


def text_rows(b: Bench, model_runner: Model) -> None:
    """6. text search, one at a time: distinct texts, so no cache hits. The
    model baseline is measured right before, while the server is idle, so
    that both see the same machine (other sessions come and go).
    7. concurrent text searches."""
    server, plan = b.server, b.plan
    server.wait_idle()
    print(f"[N={b.n:,}] model baseline (server idle)", flush=True)
    model = b.section.model = model_runner.measure(plan)
    text_base = b.n * 10  # every size uses texts of its own

    def text_one(i: int) -> None:
        server.memory.SearchMemories(
            memory_service_pb2.SearchMemoriesRequest(
                query=query_text(text_base + i),
                scope=memory_pb2.Scope(user_id="small"),
                top_k=K,
            )
        )

    meter = CpuMeter(server)
    samples, rate = timed(text_one, plan.text_queries)
    cpu = meter.read()
    text_p50 = pct(samples, 50)
    b.add(
        "text search, user 'small', 1 in flight",
        text_p50,
        pct(samples, 99),
        f"{per_s(rate, 'queries/s')} {cpu}",
        f"model alone {model.p50_ms:.2f} ms (p99 {model.p99_ms:.2f})",
        "p50 <= model + 1 ms",
        text_p50 <= model.p50_ms + 1.0,
    )

    def text_many(c: int, i: int) -> None:
        b.stubs[c % len(b.stubs)].SearchMemories(
            memory_service_pb2.SearchMemoriesRequest(
                query=query_text(text_base + 100_000 + c * 1_000_000 + i),
                scope=memory_pb2.Scope(user_id="small"),
                top_k=K,
            )
        )

    load = closed_loop(text_many, plan.text_clients, plan.text_seconds, server)
    share = load.per_s / model.batched_per_s
    b.add(
        f"text search, user 'small', {plan.text_clients} clients",
        pct(load.samples, 50),
        pct(load.samples, 99),
        f"{per_s(load.per_s, 'queries/s')} = {share:.0%} of model {load.cpu}",
        f"model {model.batched_per_s:,.0f} texts/s (32 per call)",
        ">= 80% of model",
        share >= 0.8,
    )
    assert b.fresh is not None
    if b.fresh.wrapped:
        b.section.notes.append("**The fresh query vectors ran out and were reused: raise Plan.fresh.**")
    batching = server.logged(r"batch")
    if batching:
        b.section.notes.append(f"Server log on batching: `{batching}`")


def restart_rows(
    b: Bench,
    data_dir: Path,
    empty_start: float,
    flags: list[str],
    env: dict[str, str],
    running: list[ServerProcess],
) -> None:
    """8. restart on the same data dir; `running` tracks the servers still up."""
    print(f"[N={b.n:,}] restart", flush=True)
    for ch in b.channels:
        ch.close()
    stop_s = b.server.stop()
    running.remove(b.server)
    store_b, index_b = disk_usage(data_dir)
    server = b.server = start_server(data_dir, flags, env)
    running.append(server)
    ready_s = server.wait_serving()
    loaded = server.logged(r"ready: ")
    requests = b.requests["big"]
    samples, _ = timed(lambda i: server.memory.SearchMemories(requests[i]), 1, warmup=0)
    first_ms = pct(samples, 50)
    found = {i: numbers(server.memory.SearchMemories(requests[i])) for i in range(min(b.count, 50))}
    r_after = recall(found, b.truth["big"])
    b.add(
        f"restart: process start to health SERVING (one run); first big-scope "
        f"search {first_ms:.1f} ms, recall@10 after restart {r_after:.3f}",
        ready_s * 1e3,
        None,
        "",
        f"empty data dir {empty_start:.1f} s",
        "<= 15 s (1M)",
        ready_s <= 15.0,
    )
    b.section.notes.append(
        f"On disk after SIGTERM: store {store_b / 2**20:,.0f} MiB, index snapshot "
        f"{index_b / 2**20:,.0f} MiB ({(store_b + index_b) / b.n:,.0f} bytes per memory). "
        f"SIGTERM to exit took {stop_s:.1f} s (drain plus final snapshot)."
    )
    if loaded:
        b.section.notes.append(f"Restart log: `{re.sub(r'^.*?ready', 'ready', loaded)}`")
    server.stop()
    running.remove(server)
