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
from types import TracebackType


class RWLock:
    """Shared (read) / exclusive (write) lock; not reentrant.

    `with lock.read:` / `with lock.write:` - the guards are plain objects
    rather than @contextmanager generators, which cost ~2 us more per use on
    a search path that takes one read lock per shard.
    """

    __slots__ = ("_cond", "_readers", "_waiting_writers", "_writer", "read", "write")

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0
        self.read = _ReadGuard(self)
        self.write = _WriteGuard(self)

    def acquire_read(self) -> None:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1

    def release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    def acquire_write(self) -> None:
        with self._cond:
            self._waiting_writers += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._waiting_writers -= 1
            self._writer = True

    def release_write(self) -> None:
        with self._cond:
            self._writer = False
            self._cond.notify_all()


class _ReadGuard:
    __slots__ = ("_lock",)

    def __init__(self, lock: RWLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire_read()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release_read()


class _WriteGuard:
    __slots__ = ("_lock",)

    def __init__(self, lock: RWLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire_write()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release_write()
