"""The cost of JSON over HTTP (the Connect protocol) against gRPC, measured in one run.

Starts `python -m mnemo_server` with the HTTP side on (a temporary data dir,
auth off on loopback), loads memories with client-supplied 384-d vectors and
times, from one client at a time, alternating the two protocols call by call
so both see the same machine:

* the floor: gRPC Health/Check against HTTP GET /healthz;
* GetMemory by id;
* SearchMemories with a fresh vector (top_k 10) in a 1,000-memory scope;
* SearchMemories with a text query (embedded by the server; distinct texts).

The HTTP client is httpx with a kept-alive connection; the gRPC one a
grpcio channel. Every HTTP call crosses the process's private Unix socket
to its gRPC server, so the difference is the price of that hop plus JSON.

    .venv/bin/python bench/http_bench.py
    .venv/bin/python bench/http_bench.py --calls 500 --memories 5000
"""

from __future__ import annotations

import argparse
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from google.protobuf import json_format
from grpc_health.v1 import health_pb2

from _harness.process import ServerProcess, free_port
from _harness.report import pct
from mnemo.v1 import memory_pb2, memory_service_pb2

DIM = 384


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="timed calls per row and protocol")
    parser.add_argument("--memories", type=int, default=1000)
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="mnemo-http-bench-"))
    http_port = free_port()
    # The gRPC port is the server's pick; the JSON one must be given.
    server = ServerProcess(data, "--http-address", f"127.0.0.1:{http_port}", until="port")
    base = f"http://127.0.0.1:{http_port}"
    try:
        http = httpx.Client(base_url=base, timeout=60, headers={"content-type": "application/json"})
        deadline = time.monotonic() + 180
        while True:
            try:
                if http.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.popen.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.2)
        stub, health = server.memory, server.health

        rng = np.random.default_rng(7)
        vectors = unit(rng, args.memories)
        for lo in range(0, args.memories, 500):
            batch = memory_service_pb2.BatchWriteMemoriesRequest()
            for i in range(lo, min(args.memories, lo + 500)):
                memory = batch.operations.add().create.memory
                memory.id, memory.user_id = f"m{i}", "bench"
                memory.content = f"memory {i}: the user mentioned topic {i % 97} in passing"
                memory.embedding.extend(vectors[i].tolist())
            stub.BatchWriteMemories(batch, timeout=600)
        queries = unit(rng, 2 * (args.calls + 10))
        scope = memory_pb2.Scope(user_id="bench")

        def vector_search(i: int) -> memory_service_pb2.SearchMemoriesRequest:
            return memory_service_pb2.SearchMemoriesRequest(vector=queries[i].tolist(), scope=scope, top_k=10)

        def text_search(i: int) -> memory_service_pb2.SearchMemoriesRequest:
            return memory_service_pb2.SearchMemoriesRequest(
                query=f"what did the user say about subject {i} ({i * 7919 % 1000})", scope=scope, top_k=10
            )

        def get(i: int) -> memory_service_pb2.GetMemoryRequest:
            return memory_service_pb2.GetMemoryRequest(id=f"m{i % args.memories}")

        def over_http(rpc: str, make: Callable[[int], object]) -> Callable[[int], object]:
            def call(i: int) -> object:
                body = json_format.MessageToJson(make(i), indent=None)  # type: ignore[arg-type]
                response = http.post(f"/mnemo.v1.MemoryService/{rpc}", content=body)
                response.raise_for_status()
                return response.json()

            return call

        rows: list[tuple[str, Callable[[int], object], Callable[[int], object]]] = [
            (
                "floor (Health/Check vs GET /healthz)",
                lambda i: health.Check(health_pb2.HealthCheckRequest()),
                lambda i: http.get("/healthz").raise_for_status(),
            ),
            ("GetMemory", lambda i: stub.GetMemory(get(i)), over_http("GetMemory", get)),
            (
                "SearchMemories, vector, top_k 10",
                lambda i: stub.SearchMemories(vector_search(2 * i)),
                over_http("SearchMemories", lambda i: vector_search(2 * i + 1)),
            ),
            (
                "SearchMemories, text, top_k 10",
                lambda i: stub.SearchMemories(text_search(2 * i)),
                over_http("SearchMemories", lambda i: text_search(2 * i + 1)),
            ),
        ]
        print(f"{args.memories} memories in the scope, {args.calls} calls per protocol and row, one client\n")
        print("| call | gRPC p50 | gRPC p99 | HTTP JSON p50 | HTTP JSON p99 |")
        print("| --- | --- | --- | --- | --- |")
        for name, over_grpc, over_json in rows:
            times: dict[str, list[int]] = {"grpc": [], "http": []}
            for i in range(args.calls + 10):
                for label, call in (("grpc", over_grpc), ("http", over_json)):
                    started = time.perf_counter_ns()
                    call(i)
                    if i >= 10:
                        times[label].append(time.perf_counter_ns() - started)
            g, h = times["grpc"], times["http"]
            print(
                f"| {name} | {pct(g, 50):.2f} ms | {pct(g, 99):.2f} ms "
                f"| {pct(h, 50):.2f} ms | {pct(h, 99):.2f} ms |"
            )
        http.close()
    finally:
        server.kill(signal.SIGTERM)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
