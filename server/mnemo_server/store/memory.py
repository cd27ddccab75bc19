"""MemoryStore: a small in-memory RecordStore, the reference for the contract.

It keeps everything in Python containers (store/memory_state.py) and answers
every query by scanning them, so its code reads as the contract itself: the
store contract tests (server/tests/store) run over it and SqliteStore alike.
Not for production: nothing outlives the process, and every write copies
the containers.

Transactions (store/memory_txn.py): one writer at a time (a lock; a nested
`write()` on the same thread is refused). A write works on a copy of the
state; commit swaps the copy in, so readers see only commits, each whole.
Reopening: a new MemoryStore over the same MemoryData sees every commit.

Filters are applied with `filters.to_predicate`, the semantics the SQLite
store's SQL mirrors; listing order and keyset paging follow store/order.py;
keyword scores are BM25 as in store/sqlite_fts.py.
"""

from __future__ import annotations

import builtins
import dataclasses
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from mnemo_server.filters import Expr
from mnemo_server.models import Change, Memory, Scope, VersionRecord
from mnemo_server.store.base import (
    FeedEntry,
    IdempotentRecord,
    KeywordHit,
    OrderTerm,
    RecordStore,
    ScopeCountRow,
    TenantCountRow,
    VectorRow,
    WriteTxn,
)
from mnemo_server.store.keywords import query_phrases
from mnemo_server.store.memory_state import MemoryData, State, bare, bm25, in_scope, matching, tokenize
from mnemo_server.store.memory_txn import MemoryWriteTxn
from mnemo_server.store.order import sort_key, sort_terms

#: Meta names the store keeps itself (as the SQLite store does).
RESERVED_META = frozenset({"schema_version", "revision", "compacted_revision"})


class MemoryStore(RecordStore):
    """Memories, their history and the revision log, in this process."""

    def __init__(self, data: MemoryData | None = None) -> None:
        self.data = MemoryData() if data is None else data
        self._closed = False

    @property
    def _state(self) -> State:
        if self._closed:
            raise RuntimeError("the store is closed")
        return self.data.state

    # ------------------------------------------------------------------ writes

    @contextmanager
    def _writing(self) -> Iterator[State]:
        """The writer lock, and a copy of the state that becomes the state
        when the block ends normally."""
        data = self.data
        if self._closed:
            raise RuntimeError("the store is closed")
        if data.writer_thread == threading.get_ident():
            raise RuntimeError("write() (or set_meta) called inside a write() block of the same thread")
        with data.write_lock:
            data.writer_thread = threading.get_ident()
            try:
                yield data.state.copy()
            finally:
                data.writer_thread = None

    def write(self) -> AbstractContextManager[WriteTxn]:
        return self._write()

    @contextmanager
    def _write(self) -> Iterator[WriteTxn]:
        with self._writing() as state:
            txn = MemoryWriteTxn(state)
            try:
                yield txn
            finally:
                txn.close()
            self.data.state = txn.state

    def set_meta(self, name: str, value: str) -> None:
        if name in RESERVED_META:
            raise ValueError(f"meta {name!r} belongs to the store")
        with self._writing() as state:
            state.meta[name] = value
            self.data.state = state

    def get_meta(self, name: str) -> str | None:
        state = self._state
        if name == "revision":
            return str(state.revision)
        if name == "compacted_revision":
            return str(state.compacted_revision) if state.compacted_revision else None
        return state.meta.get(name)

    def close(self) -> None:
        """Closes this handle; the data stays for a new MemoryStore over it."""
        self._closed = True

    # ------------------------------------------------------------------ point reads

    def get(self, tenant: str, memory_id: str, *, with_embedding: bool = False) -> Memory | None:
        found = self._state.by_id(tenant, memory_id)
        return found if found is None or with_embedding else bare(found)

    def get_idempotent(self, tenant: str, request_id: str) -> IdempotentRecord | None:
        return self._state.idempotency.get((tenant, request_id))

    def get_many(self, tenant: str, memory_ids: Sequence[str]) -> builtins.list[Memory]:
        state = self._state
        found = (state.by_id(tenant, i) for i in dict.fromkeys(memory_ids))
        return sorted((bare(m) for m in found if m is not None), key=lambda m: m.key)

    def get_by_keys(self, keys: Sequence[int], *, with_embedding: bool = False) -> dict[int, Memory]:
        memories = self._state.memories
        return {
            k: memories[k] if with_embedding else bare(memories[k])
            for k in dict.fromkeys(keys)
            if k in memories
        }

    # ------------------------------------------------------------------ queries

    def list(
        self,
        tenant: str,
        *,
        scope: Scope,
        filter: Expr | None,
        order: Sequence[OrderTerm],
        after: tuple[object, ...] | None,
        limit: int,
        now_us: int,
        with_embedding: bool = False,
    ) -> builtins.list[Memory]:
        """Sorted by the order terms then id (store/order.py); `after` is the
        sort key of the previous page's last row."""
        if limit <= 0:
            return []
        terms = sort_terms(order)
        if after is not None and len(after) != len(terms):
            raise ValueError(f"after has {len(after)} values; the sort key has {len(terms)}")
        rows = matching(self._state.memories.values(), tenant, scope, filter, now_us)
        for i in reversed(range(len(terms))):  # stable sorts, least significant first
            rows.sort(key=_sort_value(order, i), reverse=terms[i].descending)
        if after is not None:
            rows = [m for m in rows if _follows(sort_key(m, order), after, terms)]
        return [m if with_embedding else bare(m) for m in rows[:limit]]

    def match_keys(
        self, tenant: str, *, scope: Scope, filter: Expr | None, now_us: int
    ) -> builtins.list[int]:
        return [m.key for m in matching(self._state.memories.values(), tenant, scope, filter, now_us)]

    def keyword_search(
        self, tenant: str, text: str, *, scope: Scope, filter: Expr | None, now_us: int, limit: int
    ) -> builtins.list[KeywordHit]:
        phrases = list(dict.fromkeys(p for p in (tokenize(" ".join(q)) for q in query_phrases(text)) if p))
        if not phrases or limit <= 0:
            return []
        state = self._state
        return bm25(state, phrases, matching(state.memories.values(), tenant, scope, filter, now_us), limit)

    # ------------------------------------------------------------------ vectors

    def iter_vectors(self, *, batch_size: int = 10000) -> Iterator[builtins.list[VectorRow]]:
        """Key-ordered batches, each read from the state as of its own call."""
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        last = -1
        while True:
            memories = self._state.memories
            keys = sorted(k for k in memories if k > last)[:batch_size]
            if not keys:
                return
            yield [_vector_row(memories[k]) for k in keys]
            last = keys[-1]

    def vectors_by_keys(self, keys: Sequence[int]) -> builtins.list[VectorRow]:
        memories = self._state.memories
        return [_vector_row(memories[k]) for k in sorted(set(keys)) if k in memories]

    # ------------------------------------------------------------------ revision log

    def changes_since(self, revision: int, *, limit: int) -> builtins.list[Change]:
        revlog = self._state.revlog
        return [c for r, c in revlog.items() if r > revision][: max(limit, 0)]

    def current_revision(self) -> int:
        return self._state.revision

    def oldest_revision(self) -> int:
        return min(self._state.revlog, default=0)

    def history(
        self, tenant: str, memory_id: str, *, before_version: int | None, limit: int
    ) -> builtins.list[VersionRecord]:
        """The id's newest life only (the key of its newest entry), newest first."""
        entries = [e for e in self._state.history.values() if e.tenant == tenant and e.memory_id == memory_id]
        if not entries:
            return []
        life = max(entries, key=lambda e: e.revision).life_key
        entries = [
            e
            for e in entries
            if e.life_key == life and (before_version is None or e.version < before_version)
        ]
        entries.sort(key=lambda e: (e.version, e.revision), reverse=True)
        return [
            VersionRecord(
                e.memory_id,
                e.version,
                e.revision,
                e.change_type,
                e.time_us,
                e.api_key_id,
                e.before,
                e.after,
                e.changed_fields,
            )
            for e in entries[: max(limit, 0)]
        ]

    # ------------------------------------------------------------------ expiry

    def expired(self, now_us: int, *, limit: int) -> builtins.list[Memory]:
        gone = [m for m in self._state.memories.values() if m.is_expired(now_us)]
        gone.sort(key=lambda m: (m.expire_time_us, m.key))
        return [bare(m) for m in gone[: max(limit, 0)]]

    def expiring_keys(self, now_us: int) -> builtins.list[int]:
        return sorted(m.key for m in self._state.memories.values() if m.is_expired(now_us))

    # ------------------------------------------------------------------ counts

    def tenant_counts(self) -> builtins.list[TenantCountRow]:
        state = self._state
        tenants = sorted({m.tenant for m in state.memories.values()})
        return [TenantCountRow(t, *state.usage(t)) for t in tenants]

    def scope_counts(self, tenant: str, *, scope: Scope, limit: int) -> builtins.list[ScopeCountRow]:
        counts: dict[Scope, int] = {}
        for m in self._state.memories.values():
            if m.tenant == tenant and in_scope(scope, m.scope):
                counts[m.scope] = counts.get(m.scope, 0) + 1
        rows = sorted(counts.items(), key=lambda c: (-c[1], c[0].user_id, c[0].agent_id, c[0].run_id))
        return [ScopeCountRow(tenant, s, n) for s, n in rows[: max(limit, 0)]]

    def count(self, tenant: str | None = None) -> int:
        memories = self._state.memories
        return len(memories) if tenant is None else sum(1 for m in memories.values() if m.tenant == tenant)

    # ------------------------------------------------------------------ change feed

    def feed_since(self, revision: int, *, tenant: str, scope: Scope, limit: int) -> builtins.list[FeedEntry]:
        state = self._state
        out: builtins.list[FeedEntry] = []
        for r, change in state.revlog.items():
            if len(out) >= limit:
                break
            if r > revision and change.tenant == tenant and in_scope(scope, change.scope):
                entry = state.history.get(r)
                out.append(FeedEntry(change, None if entry is None else entry.after))
        return out

    def compacted_revision(self) -> int:
        return self._state.compacted_revision

    def compact_log(self, *, before_us: int, max_revision: int) -> int:
        with self._writing() as state:
            old = [r for r, c in state.revlog.items() if c.time_us < before_us and r <= max_revision]
            if not old:
                return 0
            through = max(old)
            removed = [r for r in state.revlog if r <= through]
            for r in removed:
                del state.revlog[r]
            state.compacted_revision = max(state.compacted_revision, through)
            self.data.state = state
            return len(removed)

    # ------------------------------------------------------------------ lifecycle upkeep

    def purge_idempotency(self, *, before_us: int) -> int:
        with self._writing() as state:
            old = [k for k, record in state.idempotency.items() if record.create_time_us < before_us]
            for k in old:
                del state.idempotency[k]
            state.idempotency_refs = {
                ref for ref in state.idempotency_refs if (ref[0], ref[2]) in state.idempotency
            }
            self.data.state = state
            return len(old)

    def touch_retrieved(self, keys: Sequence[int], now_us: int) -> None:
        if not keys:
            return
        with self._writing() as state:
            for k in set(keys):
                if k in state.memories:
                    state.memories[k] = dataclasses.replace(state.memories[k], last_retrieve_time_us=now_us)
            self.data.state = state

    def retention_victims(
        self,
        *,
        tenant: str | None,
        scope: Scope,
        created_before_us: int | None,
        max_count: int,
        by_last_retrieval: bool,
        limit: int,
    ) -> builtins.list[Memory]:
        if created_before_us is None and max_count <= 0:
            return []
        candidates = [
            m
            for m in self._state.memories.values()
            if not m.pinned and (tenant is None or m.tenant == tenant) and in_scope(scope, m.scope)
        ]
        groups: dict[tuple[str, Scope], builtins.list[Memory]] = {}
        for m in candidates:
            groups.setdefault((m.tenant, m.scope), []).append(m)
        beyond: set[int] = set()
        if max_count > 0:
            for members in groups.values():
                members.sort(key=lambda m: (_recency(m, by_last_retrieval), m.key), reverse=True)
                beyond.update(m.key for m in members[max_count:])
        victims = [
            m
            for m in candidates
            if m.key in beyond or (created_before_us is not None and m.create_time_us < created_before_us)
        ]
        victims.sort(key=lambda m: m.key)
        return [bare(m) for m in victims[: max(limit, 0)]]

    def export_snapshot(
        self,
        tenant: str,
        *,
        scope: Scope,
        filter: Expr | None,
        now_us: int,
        with_embedding: bool,
        batch_size: int = 500,
    ) -> AbstractContextManager[tuple[int, Iterator[builtins.list[Memory]]]]:
        return self._export_snapshot(tenant, scope, filter, now_us, with_embedding, batch_size)

    @contextmanager
    def _export_snapshot(
        self,
        tenant: str,
        scope: Scope,
        filter: Expr | None,
        now_us: int,
        with_embedding: bool,
        batch_size: int,
    ) -> Iterator[tuple[int, Iterator[builtins.list[Memory]]]]:
        state = self._state  # one commit, however long the export streams
        rows = [
            m if with_embedding else bare(m)
            for m in matching(state.memories.values(), tenant, scope, filter, now_us)
        ]

        def batches() -> Iterator[builtins.list[Memory]]:
            for start in range(0, len(rows), batch_size):
                yield rows[start : start + batch_size]

        yield state.revision, batches()


def _follows(key: tuple[object, ...], after: tuple[object, ...], terms: Sequence[OrderTerm]) -> bool:
    """Whether a row's sort key comes strictly after `after` in this order."""
    for value, bound, term in zip(key, after, terms, strict=True):
        if value != bound:
            before: bool = value < bound  # type: ignore[operator]
            return before if term.descending else not before
    return False


def _sort_value(order: Sequence[OrderTerm], i: int) -> Callable[[Memory], Any]:
    return lambda m: sort_key(m, order)[i]


def _recency(m: Memory, by_last_retrieval: bool) -> int:
    if by_last_retrieval and m.last_retrieve_time_us is not None:
        return m.last_retrieve_time_us
    return m.create_time_us


def _vector_row(m: Memory) -> VectorRow:
    assert m.embedding is not None
    return VectorRow(m.key, m.tenant, m.scope, m.embedding)
