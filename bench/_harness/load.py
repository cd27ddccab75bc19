"""Timers and load generators, and the CPU cores used while they ran.

`timed` runs calls one at a time; `closed_loop` runs `clients` threads back to
back for a fixed time. Both return latencies in nanoseconds. `CpuMeter` splits
the cores used over a stretch of time between the server process, this
process and everything else: the machine may be shared.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.int64]


class Measured(Protocol):
    """A process whose CPU time can be read (a `ServerProcess`)."""

    def cpu_seconds(self) -> float: ...


def timed(call: Callable[[int], object], count: int, warmup: int = 5) -> tuple[Samples, float]:
    """Latencies (ns) of call(i) for i < count, one at a time, and calls/s."""
    for i in range(min(warmup, count)):
        call(i)
    samples = np.empty(count, dtype=np.int64)
    start = time.perf_counter()
    for i in range(count):
        t = time.perf_counter_ns()
        call(i)
        samples[i] = time.perf_counter_ns() - t
    return samples, count / (time.perf_counter() - start)


@dataclass(frozen=True)
class Cpu:
    """Cores used on average over a stretch of time."""

    server: float
    client: float
    others: float  # every other process: the machine is shared

    def __str__(self) -> str:
        return f"(CPU: server {self.server:.1f}, client {self.client:.1f}, others {self.others:.1f} cores)"


def _machine_busy_s() -> float:
    # user + nice + system: interrupt time is charged to no process, and the
    # bench's own loopback traffic would show up as "others".
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:4]]
    return sum(ticks) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Measures Cpu from construction to read(). Without a server, servers
    that were started and reaped in between count as ours (os.times)."""

    def __init__(self, server: Measured | None = None) -> None:
        self.server = server
        self.start = self._now()

    def _now(self) -> tuple[float, float, float, float, float]:
        t = os.times()
        server = self.server.cpu_seconds() if self.server is not None else 0.0
        return (
            time.perf_counter(),
            _machine_busy_s(),
            t.user + t.system,
            t.children_user + t.children_system,
            server,
        )

    def read(self) -> Cpu:
        d = [b - a for a, b in zip(self.start, self._now(), strict=True)]
        elapsed, busy, own, children, server = d
        others = busy - own - children - server
        return Cpu(server / elapsed, own / elapsed, max(0.0, others / elapsed))


@dataclass
class Load:
    samples: Samples
    per_s: float
    cpu: Cpu


def closed_loop(call: Callable[[int, int], object], clients: int, seconds: float, server: Measured) -> Load:
    """`clients` threads each run call(client, i) back to back for `seconds`."""
    latencies: list[list[int]] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    stop = threading.Event()
    errors: list[BaseException] = []

    def worker(c: int) -> None:
        mine = latencies[c]
        barrier.wait()
        i = 0
        try:
            while not stop.is_set():
                t = time.perf_counter_ns()
                call(c, i)
                mine.append(time.perf_counter_ns() - t)
                i += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started, meter = time.perf_counter(), CpuMeter(server)
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    samples = np.array([s for mine in latencies for s in mine], dtype=np.int64)
    return Load(samples, len(samples) / elapsed, meter.read())
