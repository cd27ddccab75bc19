"""The revision this process's index has applied, and who waits for it.

A read with a consistency token (`min_revision`) must not answer before the
index reflects that revision. On a replica behind another's writes the read
registers a waiter here (`when_reached`) and asks for a catch-up
(`Recovery.catch_up_to`); whoever raises the applied revision (a catch-up
or this process's own write, `effects.publish`) calls back every waiter it
satisfies. Nothing polls: a waiter is a callback, which the API layer turns
into an asyncio future resolved on its event loop (api/consistency.py).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable

log = logging.getLogger("mnemo.service")


class AppliedRevision:
    """The latest revision the index has applied, with callbacks on its advance."""

    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()
        self._order = itertools.count()
        #: (revision, order, callback): the lowest revision first.
        self._waiters: list[tuple[int, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()

    @property
    def value(self) -> int:
        return self._value

    def set(self, revision: int) -> None:
        """Records `revision` as applied; calls back (on this thread, outside
        the lock) every waiter it satisfies when it is an advance."""
        with self._lock:
            advanced = revision > self._value
            self._value = revision
            ready: list[Callable[[], None]] = []
            while advanced and self._waiters and self._waiters[0][0] <= revision:
                _, order, callback = heapq.heappop(self._waiters)
                if order in self._cancelled:
                    self._cancelled.discard(order)
                else:
                    ready.append(callback)
        for callback in ready:
            try:
                callback()
            except Exception:
                log.exception("a revision waiter's callback failed")

    def when_reached(self, revision: int, callback: Callable[[], None]) -> Callable[[], None]:
        """Calls `callback` once the applied revision is at least `revision`
        (at once, on this thread, when it already is); returns a cancel."""
        with self._lock:
            if self._value < revision:
                order = next(self._order)
                heapq.heappush(self._waiters, (revision, order, callback))
                return lambda: self._cancel(order)
        callback()
        return lambda: None

    def _cancel(self, order: int) -> None:
        with self._lock:
            if any(o == order for _, o, _ in self._waiters):
                self._cancelled.add(order)
                if len(self._cancelled) > len(self._waiters) // 2:
                    self._waiters = [w for w in self._waiters if w[1] not in self._cancelled]
                    heapq.heapify(self._waiters)
                    self._cancelled.clear()

    def waiting(self) -> int:
        """How many waiters are registered and not cancelled."""
        with self._lock:
            return len(self._waiters) - len(self._cancelled)
