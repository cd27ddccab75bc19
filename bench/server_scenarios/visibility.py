"""Read-your-writes during ingest: how long after its acknowledgement a write
is found by a search, while the ingest keeps the server (and its graph
builder) busy.

A probe thread writes one memory at a time (user "probe", a fresh random
unit vector), and as soon as CreateMemory returns searches the whole tenant
with that vector (top 1; at N=100,000 an HNSW search of the whole shard plus
its exact tail), again and again until the memory comes back. The time from
the acknowledgement to the first search that found it is the visibility
delay. The probes are deleted after the ingest, in batches (a delete scans
the tenant for links to it: one per probe would slow the ingest measured),
so later rows (recall, truth) never see them.
"""

from __future__ import annotations

import threading
from time import perf_counter_ns

import numpy as np
import numpy.typing as npt

from _harness.process import ServerProcess
from mnemo.v1 import memory_pb2, memory_service_pb2, memory_service_pb2_grpc

from .settings import DIM


class VisibilityProbe:
    """Runs probes from start() until stop(); delays_ms and first_try after."""

    def __init__(self, server: ServerProcess, *, pause_s: float = 0.05, seed: int = 99) -> None:
        (self._channel,) = server.channels(1)
        self._stub = memory_service_pb2_grpc.MemoryServiceStub(self._channel)
        self._rng = np.random.default_rng(seed)
        self._pause_s = pause_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="visibility-probe", daemon=True)
        self.delays_ms: list[float] = []
        self.first_try = 0  # probes found by the first search after the ack
        self.errors: list[str] = []
        self._written: list[str] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)

    def delete_probes(self) -> None:
        for lo in range(0, len(self._written), 500):
            request = memory_service_pb2.BatchWriteMemoriesRequest()
            for memory_id in self._written[lo : lo + 500]:
                request.operations.add().delete.id = memory_id
            self._stub.BatchWriteMemories(request, timeout=600)
        self._channel.close()

    def _run(self) -> None:
        j = 0
        while not self._stop.is_set():
            try:
                self._probe(f"probe{j}")
            except Exception as exc:  # reported, never silently dropped
                self.errors.append(repr(exc)[:200])
                return
            j += 1
            self._stop.wait(self._pause_s)

    def _probe(self, memory_id: str) -> None:
        vector: npt.NDArray[np.float32] = self._rng.standard_normal(DIM).astype(np.float32)
        vector /= np.linalg.norm(vector)
        values = vector.tolist()
        memory = memory_pb2.Memory(id=memory_id, user_id="probe", content=memory_id, embedding=values)
        self._stub.CreateMemory(memory_service_pb2.CreateMemoryRequest(memory=memory), timeout=60)
        acked = perf_counter_ns()
        self._written.append(memory_id)
        search = memory_service_pb2.SearchMemoriesRequest(vector=values, top_k=1)
        tries = 0
        while True:
            tries += 1
            hits = self._stub.SearchMemories(search, timeout=60).hits
            if hits and hits[0].memory.id == memory_id:
                break
            if perf_counter_ns() - acked > 30e9:
                raise RuntimeError(f"{memory_id} not found 30 s after its ack")
        self.delays_ms.append((perf_counter_ns() - acked) / 1e6)
        self.first_try += tries == 1
