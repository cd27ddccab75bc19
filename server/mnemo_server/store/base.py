"""The durable store seam: the source of truth.

Every change gets the next value of one monotonically increasing revision
counter, is written to the revision log and (for memories that still exist)
to the per-memory history, and is committed before it is acknowledged. Every
row carries its tenant and every query names one: no call can cross tenants.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from mnemo_server.filters import Expr

# History entries and API keys are domain types (models.py): the API layer
# hands them out, the stores fill them.
from mnemo_server.models import ApiKeyRecord, Change, ChangeType, Memory, Scope, Vector, VersionRecord

#: ORDER BY fields a listing accepts, mapped by the store to columns.
ORDER_FIELDS = ("create_time", "update_time", "id")


@dataclass(frozen=True, slots=True)
class OrderTerm:
    field: str  # one of ORDER_FIELDS
    descending: bool = False


@dataclass(frozen=True, slots=True)
class VectorRow:
    """What an index rebuild needs of one live memory."""

    key: int
    tenant: str
    scope: Scope
    vector: Vector


@dataclass(frozen=True, slots=True)
class KeywordHit:
    """One keyword match: a live memory's key and its relevance (BM25 in the
    SQLite store), higher is better."""

    key: int
    score: float


@dataclass(frozen=True, slots=True)
class ScopeCountRow:
    tenant: str
    scope: Scope
    memory_count: int


@dataclass(frozen=True, slots=True)
class TenantCountRow:
    tenant: str
    memory_count: int
    content_bytes: int


@dataclass(frozen=True, slots=True)
class StoredOutcome:
    """One operation's outcome as an idempotency record keeps it. `error` is
    (gRPC code name, reason, message, ErrorInfo metadata) for an operation
    that failed."""

    kind: str
    memory: Memory | None = None
    deduplicated: bool = False
    similarity: float = 0.0
    revision: int = 0
    error: tuple[str, str, str, dict[str, str]] | None = None


@dataclass(frozen=True, slots=True)
class IdempotentRecord:
    """The stored outcome of a write made with a request id."""

    fingerprint: str
    outcomes: tuple[StoredOutcome, ...]
    create_time_us: int


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """A revision log entry and, for changes that left a memory, the memory
    as that change left it (None once its history has been forgotten)."""

    change: Change
    memory: Memory | None


class WriteTxn(ABC):
    """One serialized write transaction. Nothing is visible to readers, and
    nothing is durable, until the surrounding `RecordStore.write()` block
    exits normally; an exception rolls everything back."""

    @abstractmethod
    def next_revision(self) -> int:
        """Takes the next revision (committed with the transaction)."""

    @abstractmethod
    def get(self, tenant: str, memory_id: str) -> Memory | None:
        """A memory with its embedding, expired or not, as this txn sees it."""

    @abstractmethod
    def find_by_content_hash(self, tenant: str, scope: Scope, content_hash: str) -> Memory | None:
        """A memory with exactly this scope and content hash (oldest first)."""

    @abstractmethod
    def insert(self, memory: Memory, *, api_key_id: str = "") -> Memory:
        """Stores a new memory (revision and version already set, embedding
        required) and logs a CREATE; returns it with its `key` assigned.
        Raises AlreadyExistsError when (tenant, id) is taken."""

    @abstractmethod
    def update(
        self, before: Memory, after: Memory, changed_fields: Sequence[str], *, api_key_id: str = ""
    ) -> Memory:
        """Replaces `before` (same tenant, id and key) by `after` (revision and
        version already set; embedding required) and logs an UPDATE."""

    @abstractmethod
    def delete(
        self, memory: Memory, *, change_type: ChangeType = ChangeType.DELETE, api_key_id: str = ""
    ) -> None:
        """Removes a memory at `memory.revision` (already set by the caller
        via next_revision) and logs the change; keeps its history."""

    @abstractmethod
    def purge_history(self, tenant: str, memories: Sequence[Memory]) -> None:
        """Deletes the history of these memories (forgetting): the entries of
        each one's own life, not of other lives of the same id."""

    @abstractmethod
    def purge_scope_history(self, tenant: str, scope: Scope) -> builtins.list[str]:
        """Deletes every history entry of every memory that was in `scope`
        (a non-empty scope), live, deleted or expired, in any life of its id;
        returns the ids whose entries were deleted (forgetting)."""

    @abstractmethod
    def get_idempotent(self, tenant: str, request_id: str) -> IdempotentRecord | None:
        """The stored outcome of an earlier write with this request id."""

    @abstractmethod
    def put_idempotent(
        self,
        tenant: str,
        request_id: str,
        *,
        fingerprint: str,
        outcomes: Sequence[StoredOutcome],
        now_us: int,
    ) -> None:
        """Records a write's outcome (committed with the write itself)."""

    @abstractmethod
    def linking_to(self, tenant: str, target_ids: Sequence[str]) -> builtins.list[Memory]:
        """Memories (with embeddings) that link to any of these ids."""

    @abstractmethod
    def select_for_forget(
        self, tenant: str, *, scope: Scope, filter: Expr | None, limit: int
    ) -> builtins.list[Memory]:
        """Memories in scope and filter, expired ones included, oldest key first."""

    @abstractmethod
    def purge_idempotency_for(self, tenant: str, memory_ids: Sequence[str]) -> None:
        """Deletes stored responses that show any of these memories."""

    @abstractmethod
    def savepoint(self) -> AbstractContextManager[None]:
        """A nested scope: an exception inside undoes only its own writes."""

    @abstractmethod
    def usage(self, tenant: str) -> tuple[int, int]:
        """(memories, UTF-8 bytes of their content) the tenant holds as this
        txn sees it, expired-but-unswept ones included; cheap (quota checks)."""


class RecordStore(ABC):
    """Memories, their history and the revision log."""

    @abstractmethod
    def write(self) -> AbstractContextManager[WriteTxn]:
        """Opens the one write transaction (writers are serialized)."""

    @abstractmethod
    def get(self, tenant: str, memory_id: str, *, with_embedding: bool = False) -> Memory | None:
        """A memory, expired or not; None when it does not exist."""

    @abstractmethod
    def get_idempotent(self, tenant: str, request_id: str) -> IdempotentRecord | None:
        """The stored outcome of a write with this request id (a read, no lock)."""

    @abstractmethod
    def get_many(self, tenant: str, memory_ids: Sequence[str]) -> builtins.list[Memory]:
        """The memories of these ids that exist (expired or not), without embeddings."""

    @abstractmethod
    def get_by_keys(self, keys: Sequence[int], *, with_embedding: bool = False) -> dict[int, Memory]:
        """Memories by row key (keys that no longer exist are absent)."""

    @abstractmethod
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
    ) -> list[Memory]:
        """Live (unexpired at now_us) memories in order; `after` is the sort
        key tuple (order fields then id) of the last row of the previous page."""

    @abstractmethod
    def match_keys(
        self, tenant: str, *, scope: Scope, filter: Expr | None, now_us: int
    ) -> builtins.list[int]:
        """Keys of the live memories matching scope and filter."""

    @abstractmethod
    def keyword_search(
        self, tenant: str, text: str, *, scope: Scope, filter: Expr | None, now_us: int, limit: int
    ) -> builtins.list[KeywordHit]:
        """The best `limit` live memories matching scope and filter that
        contain any phrase of `text` (store/keywords.py reads it; never query
        syntax), best first, ties by id; [] when `text` has no phrase. The
        keyword index is kept in the writing transaction, so it always
        matches the records."""

    @abstractmethod
    def iter_vectors(self, *, batch_size: int = 10000) -> Iterator[builtins.list[VectorRow]]:
        """Every memory's vector, in key order, in batches (index rebuild)."""

    @abstractmethod
    def vectors_by_keys(self, keys: Sequence[int]) -> builtins.list[VectorRow]:
        """The vectors of these keys that exist (index replay)."""

    @abstractmethod
    def changes_since(self, revision: int, *, limit: int) -> builtins.list[Change]:
        """Revision log entries with revision > `revision`, ascending."""

    @abstractmethod
    def current_revision(self) -> int: ...

    @abstractmethod
    def oldest_revision(self) -> int:
        """The oldest revision still in the log (0 when empty)."""

    @abstractmethod
    def history(
        self, tenant: str, memory_id: str, *, before_version: int | None, limit: int
    ) -> builtins.list[VersionRecord]:
        """Versions newest first, strictly below `before_version` when given."""

    @abstractmethod
    def expired(self, now_us: int, *, limit: int) -> builtins.list[Memory]:
        """Memories whose expire time has passed (for the sweeper)."""

    @abstractmethod
    def expiring_keys(self, now_us: int) -> builtins.list[int]:
        """Keys of memories expired at now_us (searches exclude them until swept)."""

    @abstractmethod
    def tenant_counts(self) -> builtins.list[TenantCountRow]: ...

    @abstractmethod
    def scope_counts(self, tenant: str, *, scope: Scope, limit: int) -> builtins.list[ScopeCountRow]:
        """The largest (user, agent, run) groups in a tenant, inside `scope`."""

    @abstractmethod
    def count(self, tenant: str | None = None) -> int: ...

    @abstractmethod
    def feed_since(self, revision: int, *, tenant: str, scope: Scope, limit: int) -> builtins.list[FeedEntry]:
        """Changes of one tenant after `revision` in a scope, ascending, with
        the memory as each change left it."""

    @abstractmethod
    def compacted_revision(self) -> int:
        """The highest revision removed from the log by compaction (0 if none)."""

    @abstractmethod
    def compact_log(self, *, before_us: int, max_revision: int) -> int:
        """Removes log entries older than `before_us` and not above
        `max_revision`; returns how many were removed."""

    @abstractmethod
    def purge_idempotency(self, *, before_us: int) -> int:
        """Forgets request ids recorded before `before_us`; returns how many."""

    @abstractmethod
    def touch_retrieved(self, keys: Sequence[int], now_us: int) -> None:
        """Records that these memories were returned by a search (not a
        change: no revision, no history)."""

    @abstractmethod
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
        """Unpinned memories a retention policy removes: those created before
        `created_before_us`, and those beyond `max_count` (when positive) in
        each distinct (user, agent, run) scope, oldest (or least recently
        retrieved) first. `tenant` None means every tenant."""

    @abstractmethod
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
        """A consistent read of the live memories in scope and filter: the
        revision it reflects and batches in key order, from one snapshot."""

    @abstractmethod
    def get_meta(self, name: str) -> str | None:
        """A small persistent setting (for example the embedding model)."""

    @abstractmethod
    def set_meta(self, name: str, value: str) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


class KeyStore(ABC):
    """API keys, kept beside the memories (a key's tenant is never a request field)."""

    @abstractmethod
    def create_key(self, record: ApiKeyRecord) -> None:
        """Stores a new key; its id is new (random)."""

    @abstractmethod
    def get_key(self, key_id: str) -> ApiKeyRecord | None:
        """A key by id, revoked or not, in any tenant."""

    @abstractmethod
    def list_keys(
        self, tenant: str, *, show_revoked: bool, after_id: str | None, limit: int
    ) -> builtins.list[ApiKeyRecord]:
        """A tenant's keys in id order, strictly after `after_id` when given."""

    @abstractmethod
    def revoke_key(self, key_id: str, now_us: int) -> ApiKeyRecord | None:
        """Marks a key revoked (keeping an earlier revoke time); None if unknown."""

    @abstractmethod
    def touch_key(self, key_id: str, now_us: int) -> None:
        """Records that the key was used (not a change; best effort)."""

    @abstractmethod
    def close(self) -> None: ...
