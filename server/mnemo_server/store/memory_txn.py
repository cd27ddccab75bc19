"""The write transaction of MemoryStore (store/memory.py): a private copy
of the state that the store swaps in at commit; a savepoint is a copy of
that copy, put back when its block raises."""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from mnemo_server import errors
from mnemo_server.filters import Expr
from mnemo_server.models import Change, ChangeType, Memory, Scope, now_us
from mnemo_server.store.base import (
    IdempotentRecord,
    StoredOutcome,
    WriteTxn,
)
from mnemo_server.store.memory_state import (
    HistoryEntry,
    State,
    in_scope,
    matching,
    snapshot,
    stored,
    tokenize,
)


class MemoryWriteTxn(WriteTxn):
    """A write transaction over a private copy of the state."""

    def __init__(self, state: State) -> None:
        self.state = state
        self._start = state.revision
        self._open = True

    def close(self) -> None:
        self._open = False

    def _check_open(self) -> None:
        if not self._open:
            raise RuntimeError("this write transaction has ended")

    def _check_revision(self, revision: int) -> None:
        if not self._start < revision <= self.state.revision:
            raise ValueError(f"revision {revision} was not taken from this transaction's next_revision()")

    def next_revision(self) -> int:
        self._check_open()
        self.state.revision += 1
        return self.state.revision

    def get(self, tenant: str, memory_id: str) -> Memory | None:
        self._check_open()
        return self.state.by_id(tenant, memory_id)

    def find_by_content_hash(self, tenant: str, scope: Scope, content_hash: str) -> Memory | None:
        """Prefers live memories, then the oldest (create time, key)."""
        self._check_open()
        now = now_us()
        found = [
            m
            for m in self.state.memories.values()
            if m.tenant == tenant and m.content_hash == content_hash and m.scope == scope
        ]
        found.sort(key=lambda m: (m.is_expired(now), m.create_time_us, m.key))
        return found[0] if found else None

    def insert(self, memory: Memory, *, api_key_id: str = "") -> Memory:
        self._check_open()
        self._check_revision(memory.revision)
        if (memory.tenant, memory.id) in self.state.ids:
            raise errors.AlreadyExistsError(
                f"memory {memory.id!r} already exists", reason="MEMORY_ALREADY_EXISTS"
            )
        self.state.last_key += 1
        kept = stored(dataclasses.replace(memory, key=self.state.last_key))
        self._put(kept)
        self._log(
            ChangeType.CREATE,
            kept,
            before=None,
            after=kept,
            changed_fields=(),
            time_us=kept.update_time_us,
            api_key_id=api_key_id,
        )
        return kept

    def update(
        self, before: Memory, after: Memory, changed_fields: Sequence[str], *, api_key_id: str = ""
    ) -> Memory:
        self._check_open()
        self._check_revision(after.revision)
        if (after.tenant, after.id) != (before.tenant, before.id) or after.key not in (0, before.key):
            raise ValueError("update must keep the memory's tenant, id and key")
        if self.state.ids.get((before.tenant, before.id)) != before.key:
            raise errors.NotFoundError(f"memory {before.id!r} does not exist", reason="MEMORY_NOT_FOUND")
        kept = stored(dataclasses.replace(after, key=before.key))
        self._put(kept)
        self._log(
            ChangeType.UPDATE,
            kept,
            before=before,
            after=kept,
            changed_fields=tuple(changed_fields),
            time_us=kept.update_time_us,
            api_key_id=api_key_id,
        )
        return kept

    def delete(
        self, memory: Memory, *, change_type: ChangeType = ChangeType.DELETE, api_key_id: str = ""
    ) -> None:
        """Logged with the row as stored as `before`, at `memory.revision`,
        timed now, at the next version (or `memory.version` if higher)."""
        self._check_open()
        self._check_revision(memory.revision)
        if change_type not in (ChangeType.DELETE, ChangeType.EXPIRE):
            raise ValueError(f"a delete is logged as DELETE or EXPIRE, not {change_type.name}")
        key = self.state.ids.pop((memory.tenant, memory.id), None)
        if key is None:
            raise errors.NotFoundError(f"memory {memory.id!r} does not exist", reason="MEMORY_NOT_FOUND")
        gone = self.state.memories.pop(key)
        del self.state.tokens[key]
        self._log(
            change_type,
            gone,
            before=gone,
            after=None,
            changed_fields=(),
            time_us=now_us(),
            api_key_id=api_key_id,
            revision=memory.revision,
            version=max(memory.version, gone.version + 1),
        )

    def purge_history(self, tenant: str, memories: Sequence[Memory]) -> None:
        self._check_open()
        ids = {m.id for m in memories}
        keys = {m.key for m in memories}
        self.state.history = {
            r: e
            for r, e in self.state.history.items()
            if not (e.tenant == tenant and e.memory_id in ids and e.life_key in keys)
        }

    def purge_scope_history(self, tenant: str, scope: Scope) -> builtins.list[str]:
        self._check_open()
        kept: dict[int, HistoryEntry] = {}
        purged: set[str] = set()
        for revision, entry in self.state.history.items():
            if entry.tenant == tenant and in_scope(scope, entry.scope):
                purged.add(entry.memory_id)
            else:
                kept[revision] = entry
        self.state.history = kept
        return sorted(purged)

    def get_idempotent(self, tenant: str, request_id: str) -> IdempotentRecord | None:
        self._check_open()
        return self.state.idempotency.get((tenant, request_id))

    def put_idempotent(
        self,
        tenant: str,
        request_id: str,
        *,
        fingerprint: str,
        outcomes: Sequence[StoredOutcome],
        now_us: int,
    ) -> None:
        self._check_open()
        # A record older than the window may still be there until the sweeper
        # purges it; the new write takes the request id over.
        self.state.idempotency[(tenant, request_id)] = IdempotentRecord(fingerprint, tuple(outcomes), now_us)
        for outcome in outcomes:
            if outcome.memory is not None:
                self.state.idempotency_refs.add((tenant, outcome.memory.id, request_id))

    def linking_to(self, tenant: str, target_ids: Sequence[str]) -> builtins.list[Memory]:
        self._check_open()
        targets = set(target_ids)
        found = [
            m
            for m in self.state.memories.values()
            if m.tenant == tenant and any(link.target_id in targets for link in m.links)
        ]
        return sorted(found, key=lambda m: m.key)

    def select_for_forget(
        self, tenant: str, *, scope: Scope, filter: Expr | None, limit: int
    ) -> builtins.list[Memory]:
        self._check_open()
        return matching(self.state.memories.values(), tenant, scope, filter, None)[: max(limit, 0)]

    def purge_idempotency_for(self, tenant: str, memory_ids: Sequence[str]) -> None:
        self._check_open()
        ids = set(memory_ids)
        refs = {ref for ref in self.state.idempotency_refs if ref[0] == tenant and ref[1] in ids}
        for _, _, request_id in refs:
            self.state.idempotency.pop((tenant, request_id), None)
        self.state.idempotency_refs -= refs

    def savepoint(self) -> AbstractContextManager[None]:
        self._check_open()
        return self._savepoint()

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        saved = self.state.copy()
        try:
            yield
        except BaseException:
            # Revisions taken inside stay taken: the counter only grows.
            revision = self.state.revision
            self.state = saved
            self.state.revision = revision
            raise

    def usage(self, tenant: str) -> tuple[int, int]:
        self._check_open()
        return self.state.usage(tenant)

    def _put(self, memory: Memory) -> None:
        self.state.memories[memory.key] = memory
        self.state.ids[(memory.tenant, memory.id)] = memory.key
        self.state.tokens[memory.key] = tokenize(memory.content)

    def _log(
        self,
        change_type: ChangeType,
        subject: Memory,
        *,
        before: Memory | None,
        after: Memory | None,
        changed_fields: tuple[str, ...],
        time_us: int,
        api_key_id: str,
        revision: int | None = None,
        version: int | None = None,
    ) -> None:
        """Writes the history entry and the revision log entry of a change."""
        revision = subject.revision if revision is None else revision
        self.state.history[revision] = HistoryEntry(
            revision=revision,
            tenant=subject.tenant,
            memory_id=subject.id,
            version=subject.version if version is None else version,
            change_type=change_type,
            time_us=time_us,
            api_key_id=api_key_id,
            before=None if before is None else snapshot(before),
            after=None if after is None else snapshot(after),
            changed_fields=changed_fields,
        )
        self.state.revlog[revision] = Change(
            revision=revision,
            tenant=subject.tenant,
            memory_id=subject.id,
            key=subject.key,
            change_type=change_type,
            scope=subject.scope,
            time_us=time_us,
        )
