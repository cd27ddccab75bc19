"""What a committed change means outside the store, and the deletes that cause them.

`Effects` collects, inside a write transaction, what each change means for
the index, the expiry tracker, the caches and the change feed; `publish`
applies it after the commit, under the service's write lock. `remove`,
`unlink` and `retire` (remove, then unlink) are the one way a memory is
deleted, by a delete, a forget, an expiry or a retention policy.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from mnemo_server.feed import FeedEvent
from mnemo_server.index.base import IndexEntry
from mnemo_server.models import Change, ChangeType, Memory
from mnemo_server.service.state import ServiceState
from mnemo_server.store.base import WriteTxn

log = logging.getLogger("mnemo.service")


@dataclass(slots=True)
class Effects:
    """What committed changes mean for the index, the expiry tracker, the
    caches and the change feed; applied after the commit."""

    events: list[FeedEvent] = field(default_factory=list)
    upserts: dict[int, Memory] = field(default_factory=dict)
    removals: set[int] = field(default_factory=set)
    expiry: dict[int, Memory] = field(default_factory=dict)

    def put(self, memory: Memory, change_type: ChangeType, now: int, *, reindex: bool = True) -> None:
        self.events.append(FeedEvent(_change(memory, change_type, now), memory))
        if reindex:
            self.upserts[memory.key] = memory
            self.removals.discard(memory.key)
        self.expiry[memory.key] = memory

    def gone(self, memory: Memory, change_type: ChangeType, now: int) -> None:
        self.events.append(FeedEvent(_change(memory, change_type, now), memory))
        self.upserts.pop(memory.key, None)
        self.expiry.pop(memory.key, None)
        self.removals.add(memory.key)

    def extend(self, other: Effects) -> None:
        self.events.extend(other.events)
        for key in other.removals:
            self.upserts.pop(key, None)
            self.expiry.pop(key, None)
        self.removals |= other.removals
        for key, memory in other.upserts.items():
            self.upserts[key] = memory
            self.removals.discard(key)
        self.expiry.update(other.expiry)

    def count(self, change_type: ChangeType) -> int:
        """How many of the changes are of `change_type`."""
        return sum(1 for e in self.events if e.change.change_type is change_type)


def _change(memory: Memory, change_type: ChangeType, now: int) -> Change:
    return Change(memory.revision, memory.tenant, memory.id, memory.key, change_type, memory.scope, now)


def publish(state: ServiceState, effects: Effects) -> None:
    """After a commit, under the write lock: index, expiry, listeners, feed."""
    if effects.removals:
        state.index.remove(sorted(effects.removals))
        for key in effects.removals:
            state._expiry.discard(key)
    if effects.upserts:
        state.index.upsert(
            [IndexEntry(m.key, m.tenant, m.scope, m.embedding) for m in effects.upserts.values()]  # type: ignore[arg-type]
        )
    for memory in effects.expiry.values():
        state._expiry.set(memory.key, memory.expire_time_us)
    if effects.events:
        revisions = [e.change.revision for e in effects.events]
        if state.revision_signal is None or min(revisions) <= state._applied_revision + 1:
            state._applied_revision = max(state._applied_revision, max(revisions))
        # else another worker committed revisions between this index's last
        # and these: the applied revision stays, so the next catch-up replays
        # them (and these again, which changes nothing).
    if state.records is not None and effects.events:
        state.records.invalidate(e.change.key for e in effects.events)
    if state.caches is not None and effects.events:
        # After the index sees the change and before the write is acknowledged.
        state.caches.invalidate_changes(e.change for e in effects.events)
    for listener in state._listeners:
        try:
            listener(effects.events)
        except Exception:
            log.exception("a change listener failed")
    state.feed.publish(effects.events)
    if state.revision_signal is not None and effects.events:
        # Committed and applied here; before the write is acknowledged.
        state.revision_signal.announce(max(e.change.revision for e in effects.events))


def remove(
    txn: WriteTxn,
    memory: Memory,
    change_type: ChangeType,
    now: int,
    effects: Effects,
    *,
    api_key_id: str = "",
) -> int:
    """Deletes one memory at a new revision (logged as DELETE or EXPIRE)
    and records what that means for the index, caches and feed."""
    revision = txn.next_revision()
    gone = dataclasses.replace(memory, revision=revision)
    txn.delete(gone, change_type=change_type, api_key_id=api_key_id)
    effects.gone(gone, change_type, now)
    return revision


def unlink(
    txn: WriteTxn, tenant: str, target_ids: Sequence[str], now: int, effects: Effects, *, api_key_id: str = ""
) -> None:
    """Removes links to deleted memories: each linking memory gets a new version."""
    gone = set(target_ids)
    for memory in txn.linking_to(tenant, list(gone)):
        if memory.id in gone:
            continue
        revision = txn.next_revision()
        after = dataclasses.replace(
            memory,
            links=tuple(link for link in memory.links if link.target_id not in gone),
            version=memory.version + 1,
            revision=revision,
            update_time_us=now,
        )
        after = txn.update(memory, after, ["links"], api_key_id=api_key_id)
        effects.put(after, ChangeType.UPDATE, now, reindex=False)


def retire(
    txn: WriteTxn,
    memory: Memory,
    change_type: ChangeType,
    now: int,
    effects: Effects,
    *,
    api_key_id: str = "",
) -> int:
    """Deletes one memory and the links to it (a delete, an expiry, a
    retention eviction); returns the revision of the delete."""
    revision = remove(txn, memory, change_type, now, effects, api_key_id=api_key_id)
    unlink(txn, memory.tenant, [memory.id], now, effects, api_key_id=api_key_id)
    return revision
