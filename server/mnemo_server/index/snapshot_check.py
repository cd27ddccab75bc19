"""Is a loaded index snapshot (plus the replay after it) true to the store?

A snapshot's checksums prove its files are the ones written, not that its
revision is right: a snapshot labelled with a revision higher than the state
it holds (a bug, a hand edit, a snapshot copied after the store in a backup)
makes the replay skip changes, and the memories they wrote stay unsearchable
without any error. So the loader checks the snapshot against the store, and
rebuilds the index from the store when any check fails:

* before the replay: the snapshot's revision is neither ahead of the store's
  latest revision nor behind the oldest one the revision log still holds;
* after the replay: the index holds as many vectors as the store holds
  memories, in total and per tenant, and of the keys the log's last changes up
  to the snapshot touched, it holds exactly those the store still has.

Every check reads counts or a bounded number of rows: cheap next to the load.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from mnemo_server.index.base import VectorIndex

#: How many of the log's changes before the snapshot's revision are checked key by key.
RECENT_CHANGES = 1000


class _Row(Protocol):
    @property
    def key(self) -> int: ...


class _Change(Protocol):
    @property
    def key(self) -> int: ...


class _TenantCount(Protocol):
    @property
    def tenant(self) -> str: ...

    @property
    def memory_count(self) -> int: ...


class StoreView(Protocol):
    """The few RecordStore reads the checks need."""

    def current_revision(self) -> int: ...

    def compacted_revision(self) -> int: ...

    def count(self, tenant: str | None = None) -> int: ...

    def tenant_counts(self) -> Sequence[_TenantCount]: ...

    def changes_since(self, revision: int, *, limit: int) -> Sequence[_Change]: ...

    def vectors_by_keys(self, keys: Sequence[int]) -> Sequence[_Row]: ...


def revision_problem(revision: int, store: StoreView) -> str | None:
    """Why a snapshot at `revision` cannot be replayed onto this store, or None."""
    latest = store.current_revision()
    if revision > latest:
        return f"its revision {revision} is ahead of the store's latest revision {latest}"
    compacted = store.compacted_revision()
    if revision < compacted:
        return f"its revision {revision} is older than the revision log, which starts after {compacted}"
    return None


def content_problem(revision: int, index: VectorIndex, store: StoreView) -> str | None:
    """Why the index, loaded from a snapshot at `revision` and replayed up to
    the store's latest revision, differs from the store, or None."""
    held, stored = index.count(), store.count()
    if held != stored:
        return f"after the replay the index holds {held} vectors and the store {stored} memories"
    for row in store.tenant_counts():
        held = index.count(row.tenant)
        if held != row.memory_count:
            return f"tenant {row.tenant!r}: the index holds {held} vectors, the store {row.memory_count}"
    start = max(revision - RECENT_CHANGES, store.compacted_revision())
    keys = sorted({c.key for c in store.changes_since(start, limit=RECENT_CHANGES)})
    return _key_problem(keys, index, (r.key for r in store.vectors_by_keys(keys)))


def _key_problem(keys: Sequence[int], index: VectorIndex, present: Iterable[int]) -> str | None:
    alive = set(present)
    for key in keys:
        if (index.get_vector(key) is not None) != (key in alive):
            state = "holds" if key in alive else "lacks"
            return f"the store {state} memory key {key} and the index does not agree"
    return None
