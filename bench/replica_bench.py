"""Cross-replica visibility: ack on replica A -> searchable on replica B, under a steady write load.

Starts a PostgreSQL of its own (server/tests/pg_server.py, durable: fsync on)
and two `mnemo-server --store postgresql://...` replicas with separate data
directories. A background thread writes `--load` memories/s to A (another
user). Each sample creates one memory on A and, from the moment A
acknowledged it, searches B in a tight loop until a hit returns it: that
delay is the cross-replica visibility. The baseline, in the same run and
under the same load, is read-your-write on A itself (the same search on the
replica that acknowledged). Prints p50/p99 of both, in milliseconds.

    .venv/bin/python bench/replica_bench.py --samples 200 --load 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from _harness.process import ServerProcess
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from tests.pg_server import PgServer


def visible_after(writer: ServerProcess, reader: ServerProcess, i: int, side: str) -> float:
    """Seconds from writer's ack of a new memory to reader's first search that returns it."""
    user = f"sample-{side}-{i}"
    created = writer.memory.CreateMemory(
        pb.CreateMemoryRequest(
            memory=m.Memory(user_id=user, content=f"sample {i}: the kettle is in cupboard {i}")
        )
    ).memory
    acked = time.perf_counter()
    request = pb.SearchMemoriesRequest(query="where is the kettle", scope=m.Scope(user_id=user), top_k=1)
    while True:
        hits = reader.memory.SearchMemories(request, timeout=30).hits
        if hits and hits[0].memory.id == created.id:
            return time.perf_counter() - acked
        if time.perf_counter() - acked > 30:
            raise RuntimeError(f"sample {i} not visible within 30 s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--load", type=float, default=20.0, help="background writes/s to replica A")
    args = parser.parse_args()
    pg = PgServer(durable=True).start()
    root = Path(tempfile.mkdtemp(prefix="mnemo-replica-bench-"))
    stop = threading.Event()
    loaded = [0]
    try:
        url = pg.create_database()
        a = ServerProcess(root / "a", "--store", url)
        b = ServerProcess(root / "b", "--store", url)

        def load() -> None:
            while not stop.is_set():
                a.memory.CreateMemory(
                    pb.CreateMemoryRequest(memory=m.Memory(user_id="load", content=f"load {loaded[0]}"))
                )
                loaded[0] += 1
                stop.wait(1 / args.load)

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        for i in range(10):  # warm-up: models, connections, caches
            visible_after(a, b, i, "warm")
        cross: list[float] = []
        own: list[float] = []
        started = time.perf_counter()
        for i in range(args.samples):  # alternating: a change in load hits both
            cross.append(visible_after(a, b, i, "cross"))
            own.append(visible_after(a, a, i, "own"))
        elapsed = time.perf_counter() - started
        stop.set()
        loader.join(10)
        print(f"{args.samples} samples each, background load {loaded[0] / elapsed:.1f} writes/s to A")
        for name, values in (
            ("read-your-write on A (baseline)", own),
            ("ack on A -> searchable on B", cross),
        ):
            print(
                f"{name:34s} p50 {1e3 * statistics.median(values):7.2f} ms"
                f"  p99 {1e3 * percentile(values, 0.99):7.2f} ms  max {1e3 * max(values):7.2f} ms"
            )
        a.stop()
        b.stop()
    finally:
        stop.set()
        pg.stop()


if __name__ == "__main__":
    main()
