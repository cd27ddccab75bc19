"""RecordTable: decoded memories by store key, to hydrate search hits in process.

Hydrating a search's hits from SQLite costs a query and, per memory, a row
decoded into a `Memory` (three JSON fields): about as much as the index
search itself for a small scope. The table keeps the decoded `Memory`
(without its embedding) of recent hits, so a search whose hits are all
here reads nothing from the store.

No stale entry: every committed change drops its key (`effects.publish`,
and the replay of other processes' changes before a search), and a fill
carries the epoch read before its store read, so a fill that raced a
change is dropped instead of stored. Retrieval times (`touch_retrieved`,
not a change) may lag here as they do in the record cache.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from mnemo_server.models import Memory


class RecordTable:
    """An LRU of at most `capacity` memories by key; thread-safe."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._rows: OrderedDict[int, Memory] = OrderedDict()
        self._lock = threading.Lock()
        self._epoch = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def epoch(self) -> int:
        """Read it before reading the store; hand it to `fill`."""
        return self._epoch

    def get_many(self, keys: Sequence[int]) -> tuple[dict[int, Memory], list[int]]:
        """(the memories found by key, the keys missing)."""
        found: dict[int, Memory] = {}
        missing: list[int] = []
        rows = self._rows
        with self._lock:
            for key in keys:
                memory = rows.get(key)
                if memory is None:
                    missing.append(key)
                else:
                    rows.move_to_end(key)
                    found[key] = memory
            self.hits += len(found)
            self.misses += len(missing)
        return found, missing

    def fill(self, memories: Iterable[Memory], *, epoch: int) -> None:
        """Keeps memories read from the store since `epoch` was read, unless
        a change landed in between (then the read may predate it)."""
        rows = self._rows
        with self._lock:
            if epoch != self._epoch:
                return
            for memory in memories:
                if memory.embedding is not None:
                    memory = dataclasses.replace(memory, embedding=None)
                rows[memory.key] = memory
                rows.move_to_end(memory.key)
            while len(rows) > self.capacity:
                rows.popitem(last=False)

    def invalidate(self, keys: Iterable[int]) -> None:
        """After a change to these keys is visible, before it is acknowledged."""
        rows = self._rows
        with self._lock:
            self._epoch += 1
            for key in keys:
                rows.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._epoch += 1
            self._rows.clear()
