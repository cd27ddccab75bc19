"""What MemoryStore (store/memory.py) holds, and the reads shared by its
store and its write transaction.

`State` is one consistent version of everything: a write transaction works
on a copy and the store swaps the copy in at commit, so a reader that took
`data.state` once sees one commit throughout. Records are frozen
dataclasses and are shared between versions; only the containers are copied.

Keyword scores are FTS5's BM25 (k1 = 1.2, b = 0.75) over the whole store, as
store/sqlite_fts.py documents them: tokens are runs of letters and digits,
lower case, accents folded.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mnemo_server import filters
from mnemo_server.filters import Expr
from mnemo_server.models import Change, ChangeType, Memory, Scope
from mnemo_server.store.base import IdempotentRecord, KeywordHit

K1 = 1.2
B = 0.75
_TOKEN = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One history row: the memory before and after a change (no embeddings)."""

    revision: int
    tenant: str
    memory_id: str
    version: int
    change_type: ChangeType
    time_us: int
    api_key_id: str
    before: Memory | None
    after: Memory | None
    changed_fields: tuple[str, ...]

    @property
    def life_key(self) -> int:
        """The key of the memory this entry belongs to: one life of its id."""
        subject = self.after if self.after is not None else self.before
        assert subject is not None
        return subject.key

    @property
    def scope(self) -> Scope:
        subject = self.after if self.after is not None else self.before
        assert subject is not None
        return subject.scope


@dataclass(slots=True)
class State:
    """Every table of the store, at one commit."""

    revision: int = 0
    compacted_revision: int = 0
    last_key: int = 0
    #: key -> memory, with its embedding
    memories: dict[int, Memory] = field(default_factory=dict)
    #: (tenant, id) -> key
    ids: dict[tuple[str, str], int] = field(default_factory=dict)
    #: key -> the tokens of its content (the keyword index)
    tokens: dict[int, tuple[str, ...]] = field(default_factory=dict)
    #: revision -> entry, in revision order
    history: dict[int, HistoryEntry] = field(default_factory=dict)
    revlog: dict[int, Change] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], IdempotentRecord] = field(default_factory=dict)
    #: (tenant, memory id, request id): which stored responses show a memory
    idempotency_refs: set[tuple[str, str, str]] = field(default_factory=set)
    meta: dict[str, str] = field(default_factory=dict)

    def copy(self) -> State:
        return dataclasses.replace(
            self,
            memories=dict(self.memories),
            ids=dict(self.ids),
            tokens=dict(self.tokens),
            history=dict(self.history),
            revlog=dict(self.revlog),
            idempotency=dict(self.idempotency),
            idempotency_refs=set(self.idempotency_refs),
            meta=dict(self.meta),
        )

    def by_id(self, tenant: str, memory_id: str) -> Memory | None:
        key = self.ids.get((tenant, memory_id))
        return None if key is None else self.memories[key]

    def usage(self, tenant: str) -> tuple[int, int]:
        count = size = 0
        for m in self.memories.values():
            if m.tenant == tenant:
                count += 1
                size += len(m.content.encode("utf-8", "surrogatepass"))
        return count, size


class MemoryData:
    """The data a MemoryStore opens: closing the store keeps it, and a new
    MemoryStore over the same data sees everything committed (a reopen)."""

    def __init__(self) -> None:
        self.state = State()
        self.write_lock = threading.Lock()
        self.writer_thread: int | None = None


def in_scope(scope: Scope, of: Scope) -> bool:
    """Whether `of` lies in `scope` (its empty fields mean any)."""
    return all(
        not want or want == have
        for want, have in (
            (scope.user_id, of.user_id),
            (scope.agent_id, of.agent_id),
            (scope.run_id, of.run_id),
        )
    )


def matching(
    memories: Iterable[Memory], tenant: str, scope: Scope, filter: Expr | None, now_us: int | None
) -> list[Memory]:
    """Memories of the tenant in scope and filter, in key order; only those
    live at `now_us` unless it is None."""
    predicate = filters.to_predicate(filter) if filter is not None else None
    out = [
        m
        for m in memories
        if m.tenant == tenant
        and in_scope(scope, m.scope)
        and (now_us is None or not m.is_expired(now_us))
        and (predicate is None or predicate(m))
    ]
    out.sort(key=lambda m: m.key)
    return out


def bare(memory: Memory) -> Memory:
    """A memory without its embedding."""
    return memory if memory.embedding is None else dataclasses.replace(memory, embedding=None)


def snapshot(memory: Memory) -> Memory:
    """A memory as history keeps it: no embedding (and its own metadata copy)."""
    return dataclasses.replace(memory, embedding=None, metadata=_copy_json(memory.metadata))


def _copy_json(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value


def stored(memory: Memory) -> Memory:
    """A memory as the store keeps it: its own copies of metadata and embedding."""
    if memory.embedding is None:
        raise ValueError(f"memory {memory.id!r} has no embedding; the store requires one")
    return dataclasses.replace(
        memory,
        metadata=_copy_json(memory.metadata),
        embedding=np.array(memory.embedding, dtype=np.float32, copy=True),
    )


def tokenize(text: str) -> tuple[str, ...]:
    """unicode61 with diacritics removed: runs of letters and digits, lower case."""
    folded = "".join(c for c in unicodedata.normalize("NFD", text.lower()) if not unicodedata.combining(c))
    return tuple(_TOKEN.findall(folded))


def _occurrences(doc: Sequence[str], phrase: tuple[str, ...]) -> int:
    n = len(phrase)
    return sum(1 for i in range(len(doc) - n + 1) if tuple(doc[i : i + n]) == phrase)


def bm25(
    state: State, phrases: Sequence[tuple[str, ...]], eligible: Sequence[Memory], limit: int
) -> list[KeywordHit]:
    """The best `limit` eligible memories holding any phrase, best first, ties by id."""
    if not phrases or not state.tokens:
        return []
    rows = len(state.tokens)
    average = sum(len(t) for t in state.tokens.values()) / rows
    idf: dict[tuple[str, ...], float] = {}
    for phrase in phrases:
        having = sum(1 for doc in state.tokens.values() if _occurrences(doc, phrase))
        value = math.log((rows - having + 0.5) / (having + 0.5))
        idf[phrase] = value if value > 0 else 1e-6
    scored: list[tuple[float, str, int]] = []
    for m in eligible:
        doc = state.tokens[m.key]
        total, matched = 0.0, False
        for phrase in phrases:
            f = _occurrences(doc, phrase)
            if f:
                matched = True
                total += idf[phrase] * (f * (K1 + 1)) / (f + K1 * (1 - B + B * len(doc) / average))
        if matched:
            scored.append((total, m.id, m.key))
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [KeywordHit(key, score) for score, _, key in scored[:limit]]
