"""ServiceState: the collaborators and bookkeeping every part of the service shares.

The store, index, embedder, caches, clock and change feed; the revision the
index has applied; the expiry tracker; the write lock that keeps index
applies in revision order; the retrieval times waiting for upkeep; the table
of decoded memories searches hydrate their hits from. Each
use-case module (reads, search, writes, lifecycle, recovery, stats) is a mixin
over this class; `MemoryService` (service/__init__.py) composes them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from mnemo_server.cache import Caches
from mnemo_server.config import Settings
from mnemo_server.embed.base import Embedder
from mnemo_server.errors import PermissionDeniedError
from mnemo_server.expiry import ExpiryTracker
from mnemo_server.feed import ChangeFeed, FeedEvent
from mnemo_server.index.base import VectorIndex
from mnemo_server.models import Principal, Scope, now_us
from mnemo_server.rerank import RerankStage
from mnemo_server.service.consistency import AppliedRevision
from mnemo_server.service.record_table import RecordTable
from mnemo_server.store.base import RecordStore


class RevisionSignalLike(Protocol):
    """The latest revision the workers sharing a store have committed."""

    def latest(self) -> int: ...

    def announce(self, revision: int) -> None: ...


class ServiceState:
    """What the use-cases share: one store, one index and one embedder."""

    def __init__(
        self,
        *,
        store: RecordStore,
        index: VectorIndex,
        embedder: Embedder,
        settings: Settings,
        snapshot_dir: Path,
        clock: Callable[[], int] = now_us,
        caches: Caches | None = None,
        inline_cache_hits: bool = False,
        storage_guard: Callable[[], None] | None = None,
        revision_signal: RevisionSignalLike | None = None,
        reranker: RerankStage | None = None,
    ) -> None:
        self.store = store
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self.limits = settings.limits
        self.snapshot_dir = snapshot_dir
        self.clock = clock
        self.caches = caches
        self.storage_guard = storage_guard
        #: The optional cross-encoder stage over searches' top candidates.
        self.reranker = reranker
        # True when the caches live in this process: a hit costs microseconds,
        # less than handing the call to a worker thread.
        self.inline_cache_hits = inline_cache_hits and caches is not None
        #: The revision the index has applied, and the reads waiting for one
        #: (consistency.py); `_applied_revision` reads and sets it.
        self.applied = AppliedRevision()
        #: Set once a catch-up found changes another process committed: from
        #: then on every search catches up first (see search.py).
        self._shared_store = False
        #: The fleet's latest committed revision (fleet/counters.py), when
        #: this process is one worker of several; writes raise it.
        self.revision_signal = revision_signal
        #: Whether this process may write index snapshots now: in a fleet,
        #: only its leader does (fleet/leader.py), so two never write at once.
        self.leads: Callable[[], bool] = lambda: True
        self._write_lock = threading.RLock()
        self._expiry = ExpiryTracker()
        self._snapshot_revision = 0
        self._listeners: list[Callable[[list[FeedEvent]], None]] = []
        self._idempotency_window_us = int(settings.lifecycle.idempotency_window_s * 1e6)
        self.feed = ChangeFeed(capacity=settings.lifecycle.watch_buffer)
        self._retrieved: set[int] = set()
        self._retrieved_lock = threading.Lock()
        #: Decoded memories of recent hits (record_table.py); None when off.
        entries = settings.cache.record_table_entries if settings.cache.enabled else 0
        self.records: RecordTable | None = RecordTable(entries) if entries > 0 else None

    def _behind(self) -> bool:
        """True when another worker announced a revision this index has not
        applied yet: one memory read."""
        signal = self.revision_signal
        return signal is not None and signal.latest() > self._applied_revision

    @property
    def applied_revision(self) -> int:
        """The latest revision the index has applied (the store's may be ahead:
        writes of other processes not yet caught up)."""
        return self.applied.value

    @property
    def _applied_revision(self) -> int:
        return self.applied.value

    @_applied_revision.setter
    def _applied_revision(self, revision: int) -> None:
        # Under the write lock (every caller but the start-up load holds it): an advance wakes the
        # reads waiting for it.
        self.applied.set(revision)

    def confine(self, principal: Principal, scope: Scope) -> None:
        """Refuses a call over `scope` when the caller's key is restricted to
        users or agents the scope does not name (SCOPE_FORBIDDEN). Calls by id
        answer MEMORY_NOT_FOUND instead, so they do not reveal what exists."""
        if principal.restricted and not principal.allows(scope):
            raise PermissionDeniedError(
                "this key may only reach its own users and agents: name one of them in the scope",
                reason="SCOPE_FORBIDDEN",
            )

    def add_listener(self, listener: Callable[[list[FeedEvent]], None]) -> None:
        """Calls `listener` with the events of every commit, in revision order
        (for cache invalidation)."""
        self._listeners.append(listener)

    def note_retrieved(self, keys: Sequence[int]) -> None:
        """Remembers which memories searches returned (flushed by upkeep)."""
        with self._retrieved_lock:
            self._retrieved.update(keys)
