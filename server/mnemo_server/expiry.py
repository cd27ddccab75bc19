"""Which memories have expired but are not swept yet.

Expired memories must vanish from searches at the instant they expire, while
the sweeper deletes them a little later. Searches ask this tracker for the
keys to exclude: an in-memory sorted list, so the common case (nothing
expired) costs one comparison.
"""

from __future__ import annotations

import bisect
import threading


class ExpiryTracker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deadline: dict[int, int] = {}
        self._order: list[tuple[int, int]] = []  # (expire_us, key); may hold stale pairs

    def set(self, key: int, expire_us: int | None) -> None:
        with self._lock:
            if expire_us is None:
                self._deadline.pop(key, None)
                return
            self._deadline[key] = expire_us
            bisect.insort(self._order, (expire_us, key))

    def discard(self, key: int) -> None:
        with self._lock:
            self._deadline.pop(key, None)

    def expired(self, now_us: int) -> frozenset[int]:
        """Keys whose deadline has passed."""
        with self._lock:
            if not self._order or self._order[0][0] > now_us:
                return frozenset()
            end = bisect.bisect_right(self._order, (now_us, 2**63))
            live = [(e, k) for e, k in self._order[:end] if self._deadline.get(k) == e]
            # Drop stale pairs (updated or discarded keys) as we go.
            self._order[:end] = live
            return frozenset(k for _, k in live)

    def __len__(self) -> int:
        return len(self._deadline)
