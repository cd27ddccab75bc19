"""The live side of the change feed.

Writers publish each committed change, in revision order, under the service's
write lock; every watcher has its own bounded buffer, so a slow watcher never
blocks a writer: when its buffer is full it is marked overflowed and told to
resume from the last revision it was sent.

A watcher subscribes *before* it replays the revision log, then skips live
events at or below the last revision it replayed: no gap, no duplicate.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from mnemo_server.models import Change, Memory, Scope


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One change; `memory` is the memory after a create or update, and for a
    delete or expiry the memory as it was (only its id and scope are shown)."""

    change: Change
    memory: Memory | None


class Subscription:
    """One watcher's buffer. Filled from writer threads, drained on the event loop."""

    def __init__(
        self, feed: ChangeFeed, tenant: str, scope: Scope, capacity: int, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.tenant = tenant
        self.scope = scope
        self._feed = feed
        self._capacity = capacity
        self._loop = loop
        self._events: deque[FeedEvent] = deque()
        self._lock = threading.Lock()
        self._wake = asyncio.Event()
        self.overflowed = False
        self.closed = False

    def _offer(self, events: Sequence[FeedEvent]) -> None:
        with self._lock:
            if self.overflowed or self.closed:
                return
            if len(self._events) + len(events) > self._capacity:
                self.overflowed = True
                self._events.clear()
            else:
                self._events.extend(events)
        self._loop.call_soon_threadsafe(self._wake.set)

    def _close(self) -> None:
        with self._lock:
            self.closed = True
        self._loop.call_soon_threadsafe(self._wake.set)

    def drain(self) -> list[FeedEvent]:
        with self._lock:
            events = list(self._events)
            self._events.clear()
            self._wake.clear()
            return events

    def has_events(self) -> bool:
        with self._lock:
            return bool(self._events)

    async def wait(self, timeout: float) -> bool:
        """True when woken (events, overflow or close); False after `timeout`."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def cancel(self) -> None:
        self._feed.unsubscribe(self)


class ChangeFeed:
    def __init__(self, *, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()
        self._latest = 0
        self._closed = False

    @property
    def latest_revision(self) -> int:
        """Every event up to this revision has been offered to every subscriber."""
        return self._latest

    def set_latest(self, revision: int) -> None:
        self._latest = max(self._latest, revision)

    def subscribe(self, tenant: str, scope: Scope, loop: asyncio.AbstractEventLoop) -> Subscription:
        subscription = Subscription(self, tenant, scope, self._capacity, loop)
        with self._lock:
            if self._closed:
                subscription.closed = True
            else:
                self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    def publish(self, events: Sequence[FeedEvent]) -> None:
        """Called by the writer, in revision order, after the commit."""
        if not events:
            return
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            mine = [
                e
                for e in events
                if e.change.tenant == subscription.tenant and subscription.scope.contains(e.change.scope)
            ]
            if mine:
                subscription._offer(mine)
        # Only now: a watcher that reads latest_revision and then finds its
        # buffer empty has seen everything up to that revision.
        self.set_latest(events[-1].change.revision)

    @property
    def watchers(self) -> int:
        return len(self._subscriptions)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            subscriptions = list(self._subscriptions)
            self._subscriptions.clear()
        for subscription in subscriptions:
            subscription._close()
