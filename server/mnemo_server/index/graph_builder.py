"""Builds and extends shards' HNSW graphs behind the writes.

A write appends its rows to a shard and returns; the rows are searchable at
once as the shard's exact "tail" (faiss_shard.py), and this builder adds them
to the graph afterwards, on its own thread. FAISS releases the GIL while it
adds, so on a machine with two cores the graph gets the core the write path
(one Python thread, the GIL) does not use, and ingest is no longer bounded by
HNSW construction.

The thread runs at a lower CPU priority (`nice`, Linux: per thread) than the
rest of the server: when the cores are busy, the writes and searches go first
and the graph takes what is left; `max_tail` (faiss_shard.py) bounds how far
behind it can fall.

One thread for the whole index: shards waiting for their graph are served in
turn, one chunk (`FaissShard.build_step`) at a time, so a big load into one
tenant does not starve another tenant's graph. The thread starts when work
arrives and ends when there is none, so an idle index (or one of the many a
test suite creates) holds no thread. `threaded=False` runs nothing until
`drain()`: tests use it to look at a shard whose graph is behind.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from typing import Protocol

log = logging.getLogger(__name__)


class Buildable(Protocol):
    def build_step(self) -> bool:
        """Does one bounded piece of graph work; True while more remains."""
        ...


class GraphBuilder:
    """A queue of shards whose graphs are behind, worked off by one thread."""

    def __init__(self, *, threaded: bool = True, nice: int = 10) -> None:
        """`nice`: how much lower the thread's CPU priority is than its creator's."""
        self._threaded = threaded
        self._nice = nice
        self._cond = threading.Condition()
        self._queue: deque[Buildable] = deque()
        self._queued: set[int] = set()
        self._thread: threading.Thread | None = None
        self._busy = False
        self._closed = False
        #: Build steps that raised (logged; the shard keeps its tail, which is
        #: searched exactly, and is retried on its next write).
        self.failures = 0

    def schedule(self, shard: Buildable) -> None:
        """Queues `shard` for graph work (once, however often it is called)."""
        with self._cond:
            if id(shard) in self._queued:
                return
            self._queued.add(id(shard))
            self._queue.append(shard)
            if self._threaded and not self._closed and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mnemo-graph-builder", daemon=True)
                self._thread.start()

    def pending(self) -> int:
        """Shards queued or being worked on."""
        with self._cond:
            return len(self._queue) + int(self._busy)

    def drain(self, timeout: float | None = None) -> bool:
        """Until every queued shard's graph has caught up: waits for the thread,
        or (threaded=False) does the work in the calling thread. False on
        timeout."""
        if not self._threaded:
            while (shard := self._next()) is not None:
                self._step(shard)
            return True
        with self._cond:
            return self._cond.wait_for(lambda: self._closed or (not self._queue and not self._busy), timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Stops after the current step; graphs left behind stay tails (a
        snapshot saves them, the next start catches up)."""
        with self._cond:
            self._closed = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)

    def _next(self) -> Buildable | None:
        with self._cond:
            if not self._queue or self._closed:
                return None
            shard = self._queue.popleft()
            self._queued.discard(id(shard))
            self._busy = True
            return shard

    def _step(self, shard: Buildable) -> None:
        more = False
        try:
            more = shard.build_step()
        except Exception:
            self.failures += 1
            log.exception("graph build step failed; the shard's tail stays exact")
        with self._cond:
            self._busy = False
            if more and id(shard) not in self._queued:
                self._queued.add(id(shard))
                self._queue.append(shard)
            self._cond.notify_all()

    def _run(self) -> None:
        if self._nice and hasattr(os, "setpriority"):
            try:
                # On Linux PRIO_PROCESS with a thread id applies to that thread only.
                tid = threading.get_native_id()
                os.setpriority(
                    os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + self._nice)
                )
            except OSError:
                log.debug("could not lower the graph builder's priority", exc_info=True)
        while True:
            shard = self._next()
            if shard is None:
                with self._cond:
                    # Re-checked under the lock: schedule() starts a new
                    # thread only once this one is marked gone.
                    if self._queue and not self._closed:
                        continue
                    self._thread = None
                    self._cond.notify_all()
                    return
            self._step(shard)
