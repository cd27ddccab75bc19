"""Shared counters in the data directory: what other workers committed.

A file of a few 8-byte slots, mapped into every worker's memory:

- `REVISION`: the latest revision any worker committed. A writer raises it
  after its commit and before it acknowledges the write; a reader compares it
  with the revision its index has applied before answering, and catches up
  from the store's revision log when behind. So a write acknowledged by one
  worker is seen by a search on any other that starts after the ack, and the
  check costs one memory read, not a store query.
- `KEYS`: a generation raised by every API-key change (create, revoke); a
  worker whose cached keys are of an older generation drops them, so a
  revocation through one worker holds on all of them at once.

Raising takes an `fcntl` lock on the file (read, max, write: two writers
never lower it); reading takes none: an aligned 8-byte load is a single
access on the platforms Mnemo runs on. The value is a hint that something
changed, never the truth: the store's own revision is (a worker that died
between its commit and the raise left no acknowledged write behind, and the
upkeep loop catches up from the store every `sweep_interval_s` regardless).
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from pathlib import Path

REVISION = 0
KEYS = 1
_SLOTS = 8
_SIZE = 8 * _SLOTS
_FORMAT = "<q"


class SharedCounters:
    """The counters file `path` (created at the right size when missing)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                if os.fstat(self._fd).st_size < _SIZE:
                    os.ftruncate(self._fd, _SIZE)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._map = mmap.mmap(self._fd, _SIZE)
        except BaseException:
            os.close(self._fd)
            raise

    def read(self, slot: int) -> int:
        return int(struct.unpack_from(_FORMAT, self._map, 8 * slot)[0])

    def raise_to(self, slot: int, value: int) -> int:
        """Raises `slot` to at least `value`; returns what it holds now."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            current = self.read(slot)
            if value > current:
                struct.pack_into(_FORMAT, self._map, 8 * slot, value)
                return value
            return current
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def increment(self, slot: int) -> int:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            value = self.read(slot) + 1
            struct.pack_into(_FORMAT, self._map, 8 * slot, value)
            return value
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


class RevisionSignal:
    """The `REVISION` slot, as the service uses it (see ServiceState)."""

    def __init__(self, counters: SharedCounters) -> None:
        self._counters = counters

    def latest(self) -> int:
        return self._counters.read(REVISION)

    def announce(self, revision: int) -> None:
        self._counters.raise_to(REVISION, revision)


class KeyGeneration:
    """The `KEYS` slot, as the API-key cache uses it (auth.ApiKeys)."""

    def __init__(self, counters: SharedCounters) -> None:
        self._counters = counters

    def current(self) -> int:
        return self._counters.read(KEYS)

    def changed(self) -> int:
        return self._counters.increment(KEYS)
