"""A small readers-writer lock.

Searches on a shard run concurrently with each other (FAISS and NumPy release
the GIL while they work), but FAISS HNSW cannot be searched while it is being
added to, and a shard's arrays are mutated in place. Writers hold the lock
only for short in-place mutations: anything slow (building a new HNSW graph,
compacting) is prepared outside it and swapped in.

Writers are preferred: once a writer waits, new readers queue behind it, so a
steady stream of searches cannot starve index updates.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class RWLock:
    """Shared (read) / exclusive (write) lock; not reentrant."""

    __slots__ = ("_cond", "_readers", "_waiting_writers", "_writer")

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
