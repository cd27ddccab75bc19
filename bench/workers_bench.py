"""Concurrent vector searches against `--workers 1` and `--workers N`, same data, same run.

One data directory is filled once (client-supplied 384-d vectors, BatchWriteMemories);
then, for each round, a server is started on it with `--workers 1` and with
`--workers N` in turn (alternating, so a change in the machine's load hits both),
warmed up, and driven by `--procs` client processes of `--threads` threads each
(16 clients by default: one Python client process is itself bound by its GIL)
sending SearchMemories with a fresh random vector each time (never a
result-cache hit), top_k 10, over the whole tenant. Each row gives searches/s,
latency percentiles and the cores used by the server's processes (the
supervisor and its workers), the clients and everything else: the machine may
be shared (others: every other process, such as other jobs on the machine).
The last line is the throughput ratio of the medians.

    .venv/bin/python bench/workers_bench.py --quick
    .venv/bin/python bench/workers_bench.py --memories 50000 --rounds 3 --workers 2
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness.load import Cpu, _machine_busy_s
from _harness.process import ServerProcess
from _harness.report import ms, table
from mnemo.v1 import memory_service_pb2, memory_service_pb2_grpc

DIM = 384
BATCH = 1000


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid` and every descendant still running."""
    total = 0.0
    pending = [pid]
    while pending:
        p = pending.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{p}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def fill(target: str, memories: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with grpc.insecure_channel(target) as channel:
        stub = memory_service_pb2_grpc.MemoryServiceStub(channel)
        for lo in range(0, memories, BATCH):
            request = memory_service_pb2.BatchWriteMemoriesRequest()
            vectors = rng.standard_normal((min(BATCH, memories - lo), DIM)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            for i, vector in enumerate(vectors):
                memory = request.operations.add().create.memory
                memory.id = f"m{lo + i}"
                memory.user_id = f"user{(lo + i) % 50}"
                memory.content = f"memory {lo + i} about topic {(lo + i) % 997}"
                memory.embedding.extend(vector.tolist())
            stub.BatchWriteMemories(request, timeout=300)


def client(target: str, threads: int, start_at: float, seconds: float, seed: int, out: Any) -> None:
    """One client process: `threads` threads searching back to back from `start_at`."""
    import threading

    latencies: list[int] = []
    lock = threading.Lock()
    errors: list[str] = []

    def run(t: int) -> None:
        rng = np.random.default_rng(seed * 1000 + t)
        options = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(target, options=options) as channel:
            stub = memory_service_pb2_grpc.MemoryServiceStub(channel)
            mine: list[int] = []
            vectors = rng.standard_normal((4096, DIM)).astype(np.float32)
            requests = [
                memory_service_pb2.SearchMemoriesRequest(vector=v.tolist(), top_k=10) for v in vectors
            ]
            stub.SearchMemories(requests[-1], timeout=60)  # connected before the clock
            while time.time() < start_at:
                time.sleep(0.001)
            i = 0
            while time.time() < start_at + seconds:
                began = time.perf_counter_ns()
                try:
                    stub.SearchMemories(requests[i % len(requests)], timeout=60)
                except grpc.RpcError as exc:
                    errors.append(str(exc.code()))
                    continue
                mine.append(time.perf_counter_ns() - began)
                i += 1
            with lock:
                latencies.extend(mine)

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    while time.time() < start_at:
        time.sleep(0.001)
    began = os.times()
    for w in workers:
        w.join()
    ended = os.times()
    out.put((latencies, errors, ended.user + ended.system - began.user - began.system))


def measure(target: str, pid: int, procs: int, threads: int, seconds: float, seed: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    start_at = time.time() + 8  # every client process started and connected
    children = [
        context.Process(target=client, args=(target, threads, start_at, seconds, seed + p, queue))
        for p in range(procs)
    ]
    for c in children:
        c.start()
    while time.time() < start_at:
        time.sleep(0.01)
    before = (time.perf_counter(), _machine_busy_s(), tree_cpu_seconds(pid), os.getloadavg()[0])
    results = [queue.get(timeout=seconds + 120) for _ in children]
    after = (time.perf_counter(), _machine_busy_s(), tree_cpu_seconds(pid))
    for c in children:
        c.join(60)
    elapsed = min(after[0] - before[0], seconds) or seconds
    latencies = np.array([x for r in results for x in r[0]], dtype=np.int64)
    errors = [e for r in results for e in r[1]]
    wall = after[0] - before[0]
    server = (after[2] - before[2]) / wall
    clients = sum(r[2] for r in results) / wall
    busy = (after[1] - before[1]) / wall
    cpu = Cpu(server, clients, max(0.0, busy - server - clients))
    return {
        "per_s": len(latencies) / elapsed,
        "p50": float(np.percentile(latencies, 50) / 1e6),
        "p99": float(np.percentile(latencies, 99) / 1e6),
        "errors": len(errors),
        "cpu": cpu,
        "load": before[3],
    }


def start(data_dir: Path, workers: int) -> ServerProcess:
    proc = ServerProcess(data_dir, "--workers", str(workers), "--shutdown-drain-s", "0")
    if workers > 1:
        deadline = time.monotonic() + 600
        while not any(re.search(rf"all {workers} workers serving", line) for line in list(proc.log)):
            if time.monotonic() > deadline or proc.popen.poll() is not None:
                raise RuntimeError("the fleet did not start:\n" + "".join(proc.log[-30:]))
            time.sleep(0.2)
    proc.wait_idle(120)
    return proc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--memories", type=int, default=20_000)
    p.add_argument("--workers", type=int, default=2, help="the fleet's size, against 1")
    p.add_argument("--procs", type=int, default=4, help="client processes")
    p.add_argument("--threads", type=int, default=4, help="threads per client process")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="5,000 memories, 8 s, 1 round")
    p.add_argument("--data-dir", type=Path, help="reuse (or fill) this data directory")
    args = p.parse_args()
    if args.quick:
        args.memories, args.seconds, args.rounds = 5_000, 8.0, 1
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="mnemo-workers-bench-")) / "data"
    if not (data_dir / "mnemo.db").exists():
        proc = start(data_dir, 1)
        began = time.perf_counter()
        fill(proc.target, args.memories, seed=7)
        print(f"filled {args.memories:,} memories in {time.perf_counter() - began:.1f} s", flush=True)
        proc.stop()
    rows = []
    by_workers: dict[int, list[float]] = {1: [], args.workers: []}
    for round_ in range(args.rounds):
        for workers in (1, args.workers):
            proc = start(data_dir, workers)
            try:
                result = measure(
                    proc.target, proc.popen.pid, args.procs, args.threads, args.seconds, seed=100 * round_
                )
            finally:
                proc.stop()
            by_workers[workers].append(result["per_s"])
            cpu = result["cpu"]
            rows.append(
                (
                    round_ + 1,
                    workers,
                    f"{result['per_s']:,.0f}",
                    ms(result["p50"]),
                    ms(result["p99"]),
                    result["errors"],
                    f"{cpu.server:.2f}",
                    f"{cpu.client:.2f}",
                    f"{cpu.others:.2f}",
                    f"{result['load']:.1f}",
                )
            )
            print(rows[-1], flush=True)
    clients = args.procs * args.threads
    print()
    print(
        f"{clients} clients ({args.procs} processes x {args.threads} threads), {args.memories:,} memories, "
        f"{args.seconds:.0f} s per row, {os.cpu_count()} cores"
    )
    header = ["round", "workers", "searches/s", "p50 ms", "p99 ms", "errors", "server cores", "client cores"]
    for line in table([*header, "other cores", "load avg (1 min)"], ["---:"] * 10, rows):
        print(line)
    one, many = statistics.median(by_workers[1]), statistics.median(by_workers[args.workers])
    print(f"\n--workers {args.workers} / --workers 1 throughput (medians): {many / one:.2f}x")


if __name__ == "__main__":
    main()
