"""The Cache seam: a byte-valued key/value cache that never fails a request.

Two implementations: `LocalCache` (in-process LRU bounded by bytes, the
embedded default) and `RedisCache` (shared by every replica). The typed caches
in `layers.py` (embeddings, search results, records) sit on top of either.

Contract, for every implementation:

- Values are bytes; every key gets a TTL; the backend may drop any key at any
  time (eviction, restart, FLUSHALL). Callers must be correct when it does.
- Backend trouble never raises: reads answer None ("could not ask"), writes
  answer False. Only programming errors (a non-positive TTL) raise.
- `get_many`, `set_many`, `add_many`, `delete_many` and `bump_many` each make
  at most one round trip (MGET or one pipeline).

Why generations can never resurrect a stale entry
--------------------------------------------------

A search result (or a cached record) is valid only while the *generations*
it was computed under are current. A generation is a key holding an opaque
8-byte value. The rules, all in `layers.py` on top of this interface:

1. A reader reads the generation(s) BEFORE it reads any data (store, index),
   in the same round trip as the cached entry (`get_many`).
2. A cached entry embeds the generation values it was computed under, and is
   served only if they equal the values read in (1).
3. A writer, after its change is visible to searches (store commit and index
   apply) and before it acknowledges, gives each affected generation key a
   FRESH RANDOM value (`bump_many`), never "old + 1".
4. A missing generation key is created with a fresh random value
   (`add_many`: set if absent, answer the value now held); never from 0.

Read-your-writes: a search that starts after a write was acknowledged reads a
generation value that was set after the write became visible (3), so any
entry carrying that value was computed after the write (1, 2). An entry
computed before the bump carries an older value and is never served.

Flush, eviction, expiry of a generation key, or a Redis restart WITHOUT
persistence: the key comes back as a new random value (4). Counters that
restart from 0 would re-issue values that old entries carry, e.g. an entry
written after the flush by a search that read "3" before it; random values
are never re-issued (two 64-bit draws collide with probability 2**-64).

A restart WITH persistence (RDB/AOF) or a failover to a lagging replica
restores an older but self-consistent state: old generation values together
with entries computed under them, while bumps acknowledged since were lost.
No value-level scheme can tell that state from a current one, so RedisCache
stamps every value it writes with an epoch derived from the `run_id` of the
Redis server(s) (INFO server), which changes on every restart and differs
between servers. The epoch is learned on every new connection, before the
connection carries a command, and a value whose stamp differs from the epoch
known AFTER the read returned is a miss. Every connection to a restarted
server is new, so no command can reach it before the epoch changes.

A bump that fails (Redis down or refusing writes) is remembered by the
process and replayed before it serves from the cache again; until then that
process misses on the affected keys. RedisCache first falls back to deleting
the keys, which Redis still accepts when out of memory. What no cache can do
is tell other replicas about a bump it could not deliver: in a partition where
the writer cannot reach Redis but other replicas can, they may serve entries
for the written scopes until the writer reconnects (it replays its bumps) or
the entries' TTL passes. `layers.py` documents the TTLs that bound this.
Replicas that share a store close that gap themselves: each one, catching up
on the revision log, invalidates the entries of every change it applies
(service/recovery.py), whether or not the writer reached Redis.
"""

from __future__ import annotations

import bisect
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

#: (key, value, ttl in seconds).
Item = tuple[str, bytes, float]

#: Upper bounds of the latency histogram buckets, in seconds (Prometheus style).
LATENCY_BUCKETS_S: Final = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)

#: Backend states as GetStats reports them.
STATE_OK: Final = "ok"
STATE_DEGRADED: Final = "degraded"
STATE_DOWN: Final = "down"


@dataclass(frozen=True, slots=True)
class LatencySnapshot:
    """A latency histogram: counts[i] observations <= LATENCY_BUCKETS_S[i],
    the last count for slower ones."""

    count: int
    sum_s: float
    counts: tuple[int, ...]

    def quantile(self, q: float) -> float:
        """An upper bound of the q-quantile (the bucket bound), 0 when empty."""
        if not self.count:
            return 0.0
        rank = q * self.count
        seen = 0
        for bound, n in zip((*LATENCY_BUCKETS_S, math.inf), self.counts, strict=True):
            seen += n
            if seen >= rank:
                return bound
        return math.inf

    @property
    def mean_s(self) -> float:
        return self.sum_s / self.count if self.count else 0.0


class LatencyRecorder:
    """A thread-safe fixed-bucket histogram."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self._sum = 0.0
        self._count = 0

    def record(self, seconds: float) -> None:
        slot = bisect.bisect_left(LATENCY_BUCKETS_S, seconds)
        with self._lock:
            self._counts[slot] += 1
            self._sum += seconds
            self._count += 1

    def snapshot(self) -> LatencySnapshot:
        with self._lock:
            return LatencySnapshot(self._count, self._sum, tuple(self._counts))


@dataclass(frozen=True, slots=True)
class BackendStats:
    """Counters of one backend since construction.

    hits/misses count keys read; errors count operations that failed;
    skipped count operations not attempted because the backend was down.
    """

    backend: str
    state: str
    hits: int
    misses: int
    errors: int
    skipped: int
    latency: LatencySnapshot
    bytes: int
    entries: int
    evictions: int


class Cache(ABC):
    """A byte-valued cache with per-key TTLs; see the module docstring."""

    #: "local" or "redis", as GetStats reports it.
    backend: ClassVar[str]

    @abstractmethod
    def get_many(self, keys: Sequence[str]) -> list[bytes | None] | None:
        """The value of each key (None where absent or expired), or None when
        the backend could not be asked."""

    @abstractmethod
    def set_many(self, items: Sequence[Item]) -> bool:
        """Sets every (key, value, ttl_s); whether the backend took them all."""

    @abstractmethod
    def add_many(self, items: Sequence[Item]) -> list[bytes | None] | None:
        """Sets each key only if it is absent and answers the value each key
        holds afterwards: the given one or the one already there (None for a
        key that vanished in between). None when the backend could not be asked."""

    @abstractmethod
    def delete_many(self, keys: Sequence[str]) -> bool:
        """Deletes the keys; whether the backend confirmed it."""

    @abstractmethod
    def bump_many(self, keys: Sequence[str], *, ttl_s: float) -> bool:
        """Gives every key a fresh random 8-byte value, never one it held
        before, so that anything computed under an earlier value is stale.
        True when every key now holds a fresh value or none at all (a key
        that is absent is recreated fresh by `add_many`); False when some key
        may still hold its old value."""

    @abstractmethod
    def stats(self) -> BackendStats:
        """A snapshot of the counters."""

    @property
    def available(self) -> bool:
        """Whether operations are attempted now; False while the backend is
        known to be down (a cheap check, no round trip)."""
        return True

    def close(self) -> None:  # noqa: B027 - optional hook
        """Releases connections and threads; later calls are misses."""


def check_items(items: Sequence[Item]) -> None:
    for key, _, ttl_s in items:
        check_ttl(ttl_s, key)


def check_ttl(ttl_s: float, key: str = "") -> None:
    if not ttl_s > 0 or math.isinf(ttl_s):
        raise ValueError(f"a TTL must be a positive finite number of seconds, got {ttl_s!r} for {key!r}")
