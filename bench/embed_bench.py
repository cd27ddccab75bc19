"""Embedding throughput: the raw model, and concurrent callers with and without
micro-batching. Prints a markdown table.

    .venv/bin/python bench/embed_bench.py [--seconds 3] [--callers 1 8 32 64]

The baseline (raw batched throughput, 32 texts per call) is measured in the
same run; every other row shows its throughput as a fraction of it.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from mnemo_server.embed.base import Embedder
from mnemo_server.embed.batching import MicroBatchingEmbedder
from mnemo_server.embed.local import SentenceTransformerEmbedder


@dataclass
class Row:
    scenario: str
    callers: int
    texts_per_s: float
    p50_ms: float
    p99_ms: float
    mean_batch: str = "-"


def text(i: int) -> str:
    # Distinct, memory-like texts of ~15 tokens.
    return f"memory {i}: the user prefers short answers and works on project number {i % 97}"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def single_latency(model: Embedder, calls: int) -> Row:
    samples = []
    for i in range(calls):
        started = time.perf_counter()
        model.embed([text(i)])
        samples.append(time.perf_counter() - started)
    return Row(
        "raw model, 1 text per call",
        1,
        len(samples) / sum(samples),
        percentile(samples, 0.5) * 1e3,
        percentile(samples, 0.99) * 1e3,
        "1",
    )


def batched_throughput(model: Embedder, seconds: float, batch: int = 32) -> Row:
    samples = []
    deadline = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < deadline:
        texts = [text(i + j) for j in range(batch)]
        started = time.perf_counter()
        model.embed(texts)
        samples.append(time.perf_counter() - started)
        i += batch
    return Row(
        f"raw model, {batch} texts per call (baseline)",
        1,
        batch * len(samples) / sum(samples),
        percentile(samples, 0.5) * 1e3,
        percentile(samples, 0.99) * 1e3,
        str(batch),
    )


def concurrent_callers(
    scenario: str, embed: Callable[[list[str]], object], callers: int, seconds: float
) -> Row:
    """`callers` threads each embed one text per call for `seconds`."""
    latencies: list[list[float]] = [[] for _ in range(callers)]
    barrier = threading.Barrier(callers + 1)
    stop = threading.Event()

    def caller(index: int) -> None:
        mine = latencies[index]
        barrier.wait()
        i = index * 1_000_000
        while not stop.is_set():
            started = time.perf_counter()
            embed([text(i)])
            mine.append(time.perf_counter() - started)
            i += 1

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(callers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    samples = [s for mine in latencies for s in mine]
    return Row(
        scenario,
        callers,
        len(samples) / elapsed,
        percentile(samples, 0.5) * 1e3,
        percentile(samples, 0.99) * 1e3,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per scenario")
    parser.add_argument("--callers", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--single-calls", type=int, default=300)
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    model = SentenceTransformerEmbedder(threads=args.threads)
    # The model's own lock serializes direct callers: that is the baseline
    # a server without a batcher would get.
    rows = [
        single_latency(model, args.single_calls),
        batched_throughput(model, args.seconds),
    ]
    for callers in args.callers:
        rows.append(
            concurrent_callers("direct (serialized by a lock)", model.embed, callers, args.seconds)
        )
        for wait_ms in (2.0, 0.0):
            batcher = MicroBatchingEmbedder(model, max_batch=32, max_wait_ms=wait_ms)
            row = concurrent_callers(
                f"MicroBatchingEmbedder, max_wait {wait_ms:g} ms",
                batcher.embed,
                callers,
                args.seconds,
            )
            stats = batcher.stats()
            row.mean_batch = f"{stats.mean_batch_size:.1f}"
            batcher.close()  # leaves the shared model open: its close() is a no-op
            rows.append(row)

    baseline = rows[1].texts_per_s
    # Other processes on the machine skew every row; the load shows how much.
    print(
        f"\nall-MiniLM-L6-v2, CPU ({os.cpu_count()} cores), torch threads "
        f"{torch.get_num_threads()}, {args.seconds:g} s per scenario, 1-min load average "
        f"{load_before:.2f} before / {os.getloadavg()[0]:.2f} after\n"
    )
    print("| scenario | callers | texts/s | vs baseline | p50 ms | p99 ms | mean batch |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row.scenario} | {row.callers} | {row.texts_per_s:.0f} "
            f"| {row.texts_per_s / baseline:.2f}x | {row.p50_ms:.1f} | {row.p99_ms:.1f} "
            f"| {row.mean_batch} |"
        )


if __name__ == "__main__":
    main()
