"""Embedding throughput: the raw model, and concurrent callers with and without
micro-batching. Prints a markdown table.

    .venv/bin/python bench/embed_bench.py [--seconds 2] [--rounds 3] [--callers 1 8 32 64]

The baseline (raw batched throughput, 32 texts per call) is measured in the
same run; every row shows its throughput as a fraction of it. All scenarios
run once per round, interleaved, and the table shows the median round, so
that load from other processes skews the rows alike rather than one row.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch

from mnemo_server.embed.batching import MicroBatchingEmbedder
from mnemo_server.embed.local import SentenceTransformerEmbedder


@dataclass
class Result:
    """One scenario's samples over all rounds."""

    scenario: str
    callers: int
    texts_per_s: list[float] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    batch_sizes: list[float] = field(default_factory=list)


#: One run of a scenario: (texts per second, per-call latencies, mean batch size).
Measurement = tuple[float, list[float], float]


def text(i: int) -> str:
    # Distinct, memory-like texts of ~20 tokens.
    return f"memory {i}: the user prefers short answers and works on project number {i % 97}"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def sequential(model: SentenceTransformerEmbedder, batch: int, seconds: float) -> Measurement:
    """One caller, `batch` texts per call, straight to the model, from a
    thread other than the main one, as in the server. (Under CPU contention
    torch calls from the main thread measured several times slower.)"""
    outcome: list[Measurement] = []
    thread = threading.Thread(target=lambda: outcome.append(_sequential(model, batch, seconds)))
    thread.start()
    thread.join()
    return outcome[0]


def _sequential(model: SentenceTransformerEmbedder, batch: int, seconds: float) -> Measurement:
    samples = []
    deadline = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < deadline:
        texts = [text(i + j) for j in range(batch)]
        started = time.perf_counter()
        model.embed(texts)
        samples.append(time.perf_counter() - started)
        i += batch
    return batch * len(samples) / sum(samples), samples, float(batch)


def concurrent(embed: Callable[[list[str]], object], callers: int, seconds: float) -> Measurement:
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
    return len(samples) / elapsed, samples, 1.0


def batched(model: SentenceTransformerEmbedder, wait_ms: float, callers: int, seconds: float) -> Measurement:
    batcher = MicroBatchingEmbedder(model, max_batch=32, max_wait_ms=wait_ms)
    rate, samples, _ = concurrent(batcher.embed, callers, seconds)
    mean_batch = batcher.stats().mean_batch_size
    batcher.close()  # leaves the shared model open: its close() is a no-op
    return rate, samples, mean_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per scenario and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--callers", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    model = SentenceTransformerEmbedder(threads=args.threads)
    seconds = args.seconds
    # The model's own lock serializes direct callers: what a server without
    # a batcher would get.
    scenarios: list[tuple[str, int, Callable[[], Measurement]]] = [
        ("raw model, 1 text per call", 1, partial(sequential, model, 1, seconds)),
        ("raw model, 32 texts per call (baseline)", 1, partial(sequential, model, 32, seconds)),
    ]
    for n in args.callers:
        scenarios += [
            (
                "direct, serialized by the model's lock",
                n,
                partial(concurrent, model.embed, n, seconds),
            ),
            ("MicroBatchingEmbedder, max_wait 2 ms", n, partial(batched, model, 2.0, n, seconds)),
            ("MicroBatchingEmbedder, max_wait 0 ms", n, partial(batched, model, 0.0, n, seconds)),
        ]
    results = [Result(name, callers) for name, callers, _ in scenarios]
    for _ in range(args.rounds):
        for result, (_, _, run) in zip(results, scenarios, strict=True):
            rate, samples, mean_batch = run()
            result.texts_per_s.append(rate)
            result.latencies_s += samples
            result.batch_sizes.append(mean_batch)

    baseline = statistics.median(results[1].texts_per_s)
    # Other processes on the machine skew every row; the load shows how much.
    print(
        f"\nall-MiniLM-L6-v2, CPU ({os.cpu_count()} cores), torch threads "
        f"{torch.get_num_threads()}, {args.rounds} rounds x {seconds:g} s per scenario, "
        f"1-min load average {load_before:.2f} before / {os.getloadavg()[0]:.2f} after\n"
    )
    print("| scenario | callers | texts/s (median) | vs baseline | p50 ms | p99 ms | mean batch |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        rate = statistics.median(r.texts_per_s)
        print(
            f"| {r.scenario} | {r.callers} | {rate:.0f} | {rate / baseline:.2f}x "
            f"| {percentile(r.latencies_s, 0.5) * 1e3:.1f} "
            f"| {percentile(r.latencies_s, 0.99) * 1e3:.1f} "
            f"| {statistics.mean(r.batch_sizes):.1f} |"
        )


if __name__ == "__main__":
    main()
