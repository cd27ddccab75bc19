"""Noisy neighbours: what one abusive caller does to everyone else's latency.

Starts a fresh mnemo-server, measures another caller's small calls (a one-row
ListMemories and a vector search) on a quiet server (the baseline, same run),
then again while one client floods the server with:

* `big`: BatchSearchMemories requests just under the message limit, whose
  vectors have the wrong dimension (decoded, then refused);
* `stream`: one StreamSearchMemories stream of 2,000 queries sent without
  waiting for answers (a rate limit is not configured: the in-flight bounds
  alone keep the neighbour's latency in check).

    .venv/bin/python bench/neighbour_bench.py
"""

from __future__ import annotations

import contextlib
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np

from _harness.process import ServerProcess
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb
from server_scenarios.settings import CHANNEL_OPTIONS


def latencies(call: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def row(name: str, values: list[float]) -> str:
    values = sorted(values)
    p = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return f"| {name} | {statistics.median(values):.2f} | {p(0.95):.2f} | {p(0.99):.2f} | {values[-1]:.2f} |"


def main() -> None:
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp), until="port", timeout=900, channel_options=CHANNEL_OPTIONS)
        try:
            server.wait_serving()
            memory = server.memory
            ops = [
                pb.WriteOperation(
                    create=pb.CreateMemoryRequest(
                        memory=m.Memory(user_id="u", content=f"memory {i}", embedding=v.tolist())
                    )
                )
                for i, v in enumerate(rng.standard_normal((2000, 384)).astype(np.float32))
            ]
            for start in range(0, len(ops), 500):
                memory.BatchWriteMemories(pb.BatchWriteMemoriesRequest(operations=ops[start : start + 500]))
            probe_vector = rng.standard_normal(384).astype(np.float32).tolist()

            def listing() -> object:
                return memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": "u"}, page_size=1))

            def search() -> object:
                return memory.SearchMemories(
                    pb.SearchMemoriesRequest(vector=probe_vector, scope={"user_id": "u"}, top_k=10)
                )

            big = pb.BatchSearchMemoriesRequest(
                requests=[pb.SearchMemoriesRequest(vector=[0.1] * 3800, top_k=1) for _ in range(256)]
            )

            def flood_big(stop: threading.Event) -> None:
                while not stop.is_set():
                    with contextlib.suppress(grpc.RpcError):  # refused on purpose
                        memory.BatchSearchMemories(big)

            def queries() -> Iterator[pb.StreamSearchMemoriesRequest]:
                for i, v in enumerate(rng.standard_normal((2000, 384)).astype(np.float32)):
                    yield pb.StreamSearchMemoriesRequest(
                        query_id=str(i), search=pb.SearchMemoriesRequest(vector=v.tolist(), top_k=10)
                    )

            def flood_stream(stop: threading.Event) -> None:
                while not stop.is_set():
                    for _ in memory.StreamSearchMemories(queries()):
                        pass

            print(f"request of the `big` flood: {big.ByteSize() / 1e6:.1f} MB")
            print("| neighbour's call | p50 ms | p95 ms | p99 ms | max ms |")
            print("| --- | --- | --- | --- | --- |")
            latencies(listing, 50)
            print(row("ListMemories, quiet (baseline)", latencies(listing, 300)))
            print(row("SearchMemories, quiet (baseline)", latencies(search, 300)))
            for name, flood in (("big", flood_big), ("stream", flood_stream)):
                stop = threading.Event()
                thread = threading.Thread(target=flood, args=(stop,), daemon=True)
                thread.start()
                time.sleep(1.0)
                print(row(f"ListMemories, `{name}` flood", latencies(listing, 300)))
                print(row(f"SearchMemories, `{name}` flood", latencies(search, 300)))
                stop.set()
                thread.join(120)
        finally:
            server.kill(signal.SIGTERM)


if __name__ == "__main__":
    main()
