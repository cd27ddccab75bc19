"""Ingest into the PostgreSQL store against the SQLite store, in the same run.

Starts a PostgreSQL of its own (server/tests/pg_server.py; fsync and
synchronous commit ON, as in production) and, in turn, a mnemo-server on
SQLite (the default, synchronous FULL) and one on that PostgreSQL
(`--store postgresql://...`), each on a fresh data dir, and sends the same
N memories (client-supplied 384-d vectors, BatchWriteMemories with 1,000
creates per call, from --clients threads) to each. Rounds alternate the
stores, so a busy machine penalises both alike; every row reports the
cores the server (and PostgreSQL) used.

    .venv/bin/python bench/store_bench.py --n 20000 --rounds 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from _harness.process import ServerProcess
from mnemo.v1 import memory_service_pb2
from server_scenarios.scenarios import ingest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from tests.pg_server import PgServer

DIM = 384
BATCH = 1000


def batches(n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for lo in range(0, n, BATCH):
        request = memory_service_pb2.BatchWriteMemoriesRequest()
        vectors = rng.standard_normal((min(BATCH, n - lo), DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for j, v in enumerate(vectors):
            i = lo + j
            memory = request.operations.add().create.memory
            memory.id = f"m{i}"
            memory.user_id = f"u{i % 100}"
            memory.content = f"memory {i}: the user mentioned topic {i % 997} in passing, order A-{i}"
            memory.embedding.extend(v.tolist())
        out.append(request.SerializeToString())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    pg = PgServer(durable=True).start()
    results: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    try:
        for r in range(args.rounds):
            for store in ("sqlite", "postgresql") if r % 2 == 0 else ("postgresql", "sqlite"):
                extra = ["--store", pg.create_database()] if store == "postgresql" else []
                with (
                    tempfile.TemporaryDirectory() as tmp,
                    ServerProcess(Path(tmp) / "data", *extra) as server,
                ):
                    sent = batches(args.n, seed=r)
                    _, elapsed, load = ingest(server, sent, args.clients)
                    rate = args.n / elapsed
                    results[store].append(rate)
                    print(f"round {r + 1} {store:10s} {rate:9,.0f} memories/s {load.cpu}", flush=True)
    finally:
        pg.stop()
    print(f"\ningest, N={args.n:,}, BatchWriteMemories {BATCH:,}/call, {args.clients} clients (median)")
    base = float(np.median(results["sqlite"]))
    for store, rates in results.items():
        median = float(np.median(rates))
        print(f"  {store:10s} {median:9,.0f} memories/s  ({median / base:.2f}x SQLite)")


if __name__ == "__main__":
    main()
