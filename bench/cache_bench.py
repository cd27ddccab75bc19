"""The cache layer end to end: repeated searches against a real server.

For each cache backend (a real local redis-server started here, and the
in-process cache) it starts `python -m mnemo_server`, loads a few thousand
memories for one user, and measures over one gRPC channel, in the same run:

* an empty call (grpc.health.v1 Health/Check): the floor;
* a vector search: the floor for a search that embeds nothing;
* a repeated text search served by the embedding cache (the same text with a
  different top_k each time, so the result cache misses);
* a repeated identical text search served by the result cache;
* a text search of a new text each time (the model runs): for scale.

    .venv/bin/python bench/cache_bench.py [--memories 5000] [--calls 400]

Targets (issue 5): embedding-cache hit p50 within 0.5 ms of the vector
search; result-cache hit p50 within 0.2 ms of the empty call.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from _harness import load
from _harness.process import ServerProcess, free_port
from _harness.report import pct
from mnemo.v1 import memory_pb2, memory_service_pb2, memory_service_pb2_grpc


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"redis://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def timed(call: Callable[[int], object], count: int) -> np.ndarray:
    return load.timed(call, count, warmup=20)[0]


def run(label: str, address: str, memories: int, calls: int) -> list[tuple[str, np.ndarray]]:
    channel = grpc.insecure_channel(address)
    stub = memory_service_pb2_grpc.MemoryServiceStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(memories, 384)).astype(np.float32)
    for start in range(0, memories, 1000):
        stub.BatchWriteMemories(
            memory_service_pb2.BatchWriteMemoriesRequest(
                operations=[
                    memory_service_pb2.WriteOperation(
                        create=memory_service_pb2.CreateMemoryRequest(
                            memory=memory_pb2.Memory(
                                user_id="bench", content=f"memory {i}", embedding=v.tolist()
                            )
                        )
                    )
                    for i, v in enumerate(vectors[start : start + 1000], start)
                ]
            )
        )
    scope = memory_pb2.Scope(user_id="bench")
    query_vector = rng.normal(size=384).astype(np.float32).tolist()
    rows = [
        ("empty call (Health/Check)", timed(lambda i: health.Check(health_pb2.HealthCheckRequest()), calls)),
        (
            "vector search (new vector each call)",
            timed(
                lambda i: stub.SearchMemories(
                    memory_service_pb2.SearchMemoriesRequest(
                        vector=(np.asarray(query_vector) + i * 1e-3).tolist(), scope=scope
                    )
                ),
                calls,
            ),
        ),
        (
            "text search, embedding cache hit",
            timed(
                lambda i: stub.SearchMemories(
                    memory_service_pb2.SearchMemoriesRequest(
                        # A new min_score each call: the result cache misses, the embedding hits.
                        query="what did the user say about lunch?",
                        scope=scope,
                        min_score=-1 + i * 1e-6,
                    )
                ),
                calls,
            ),
        ),
        (
            "text search, result cache hit",
            timed(
                lambda i: stub.SearchMemories(
                    memory_service_pb2.SearchMemoriesRequest(
                        query="what did the user say about dinner?", scope=scope
                    )
                ),
                calls,
            ),
        ),
        (
            "text search, new text (model runs)",
            timed(
                lambda i: stub.SearchMemories(
                    memory_service_pb2.SearchMemoriesRequest(query=f"a new question number {i}", scope=scope)
                ),
                max(50, calls // 8),
            ),
        ),
    ]
    channel.close()
    return [(f"{label}: {name}", samples) for name, samples in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memories", type=int, default=5000)
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("cache_bench: redis-server is required")
    results: list[tuple[str, np.ndarray]] = []
    with tempfile.TemporaryDirectory() as tmp:
        redis, url = start_redis(Path(tmp))
        try:
            for label, extra in (("redis", ("--redis-url", url)), ("in-process", ())):
                server = ServerProcess(Path(tmp) / label, *extra)
                try:
                    results += run(label, server.target, args.memories, args.calls)
                finally:
                    server.kill(signal.SIGTERM)
        finally:
            redis.terminate()
            redis.wait(10)
    print(f"{args.memories} memories of one user, {args.calls} calls each, one call in flight\n")
    print("| operation | p50 ms | p99 ms |")
    print("| --- | ---: | ---: |")
    for name, samples in results:
        print(f"| {name} | {pct(samples, 50):.3f} | {pct(samples, 99):.3f} |")
    by = {name: pct(s, 50) for name, s in results}
    print()
    for label in ("redis", "in-process"):
        empty, vector = (
            by[f"{label}: empty call (Health/Check)"],
            by[f"{label}: vector search (new vector each call)"],
        )
        embed_hit = by[f"{label}: text search, embedding cache hit"]
        result_hit = by[f"{label}: text search, result cache hit"]
        print(
            f"- {label}: embedding-cache hit is {embed_hit - vector:+.3f} ms from a vector search "
            f"(target <= 0.5): {'met' if embed_hit - vector <= 0.5 else 'missed'}; "
            f"result-cache hit is {result_hit - empty:+.3f} ms from an empty call "
            f"(target <= 0.2): {'met' if result_hit - empty <= 0.2 else 'missed'}"
        )


if __name__ == "__main__":
    main()
