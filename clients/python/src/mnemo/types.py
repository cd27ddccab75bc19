"""The typed objects the client takes and returns.

Results are frozen dataclasses whose `raw` attribute keeps the protobuf
message they were decoded from, for fields this version of the client does not
know yet. Times are timezone-aware `datetime`s in UTC; durations are seconds
(`float`) on input and `timedelta` on output; enums are `StrEnum`s whose values
are the proto names without their prefix (`MemoryKind.SEMANTIC == "SEMANTIC"`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from mnemo._ranking import HitExplanation, RecencyBasis

if TYPE_CHECKING:
    from mnemo.errors import MnemoError

__all__ = [
    "ApiKey",
    "ApiKeyPage",
    "ApiKeyRole",
    "BatchWriteResult",
    "CacheStats",
    "ChangeType",
    "ConsistencyReport",
    "CreateResult",
    "CreatedApiKey",
    "DedupMode",
    "DedupPolicy",
    "DeleteMemoriesResult",
    "DeleteResult",
    "EventType",
    "EvictionOrder",
    "ExportHeader",
    "HistoryPage",
    "HitExplanation",
    "ImportConflictPolicy",
    "ImportFailure",
    "ImportResult",
    "Inconsistency",
    "InconsistencyKind",
    "IndexKind",
    "IndexShardStats",
    "Memory",
    "MemoryEvent",
    "MemoryKind",
    "MemoryLink",
    "MemoryPage",
    "MemoryVersion",
    "RecencyBasis",
    "ReembedProgress",
    "RetentionPolicy",
    "ScopeCount",
    "SearchHit",
    "SearchMode",
    "SearchQuery",
    "SearchResult",
    "Snapshot",
    "Stats",
    "StreamSearchResult",
    "TenantStats",
    "WriteResult",
]


# -- enums --------------------------------------------------------------------


class MemoryKind(StrEnum):
    """What kind of memory this is (mnemo.v1.MemoryKind)."""

    UNSPECIFIED = "UNSPECIFIED"
    EPISODIC = "EPISODIC"
    SEMANTIC = "SEMANTIC"
    PROCEDURAL = "PROCEDURAL"


class DedupMode(StrEnum):
    """How a create detects an existing duplicate (mnemo.v1.DedupMode)."""

    UNSPECIFIED = "UNSPECIFIED"
    NONE = "NONE"
    EXACT = "EXACT"
    SEMANTIC = "SEMANTIC"


class SearchMode(StrEnum):
    """How a search finds and ranks memories (mnemo.v1.SearchMode)."""

    UNSPECIFIED = "UNSPECIFIED"
    VECTOR = "VECTOR"
    KEYWORD = "KEYWORD"
    HYBRID = "HYBRID"


class ChangeType(StrEnum):
    """What a change in a memory's history did (mnemo.v1.ChangeType)."""

    UNSPECIFIED = "UNSPECIFIED"
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    EXPIRE = "EXPIRE"


class EventType(StrEnum):
    """The kind of a change-feed event (mnemo.v1.EventType)."""

    UNSPECIFIED = "UNSPECIFIED"
    PUT = "PUT"
    DELETE = "DELETE"
    EXPIRED = "EXPIRED"


class ImportConflictPolicy(StrEnum):
    """What an import does with a memory whose id exists (mnemo.v1.ImportConflictPolicy)."""

    UNSPECIFIED = "UNSPECIFIED"
    SKIP = "SKIP"
    OVERWRITE = "OVERWRITE"
    FAIL = "FAIL"


class ApiKeyRole(StrEnum):
    """The role of an API key (mnemo.v1.ApiKeyRole)."""

    UNSPECIFIED = "UNSPECIFIED"
    READER = "READER"
    WRITER = "WRITER"
    ADMIN = "ADMIN"


class IndexKind(StrEnum):
    """The kind of vector index of a shard (mnemo.v1.IndexKind)."""

    UNSPECIFIED = "UNSPECIFIED"
    FLAT = "FLAT"
    HNSW = "HNSW"
    IVF = "IVF"


class InconsistencyKind(StrEnum):
    """What a consistency check found wrong (mnemo.v1.InconsistencyKind)."""

    UNSPECIFIED = "UNSPECIFIED"
    MISSING_FROM_INDEX = "MISSING_FROM_INDEX"
    ORPHAN_IN_INDEX = "ORPHAN_IN_INDEX"
    STALE_IN_INDEX = "STALE_IN_INDEX"
    STALE_IN_CACHE = "STALE_IN_CACHE"


class EvictionOrder(StrEnum):
    """Which memories a maximum-count retention policy evicts first (mnemo.v1.EvictionOrder)."""

    UNSPECIFIED = "UNSPECIFIED"
    OLDEST = "OLDEST"
    LEAST_RECENTLY_RETRIEVED = "LEAST_RECENTLY_RETRIEVED"


# -- inputs -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoryLink:
    """A directed link from a memory to another one in the same tenant."""

    target_id: str
    relation: str
    weight: float = 0.0


@dataclass(frozen=True, slots=True)
class DedupPolicy:
    """How a create treats a memory that already exists in the same scope.

    Args:
        mode: "exact" (same normalized content) or "semantic" (similar embedding).
        similarity_threshold: For semantic mode; 0 means the server's default 0.9.
        merge: Merge the new tags and metadata into the existing memory.
    """

    mode: DedupMode | str
    similarity_threshold: float = 0.0
    merge: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchQuery:
    """One search of `batch_search` or `stream_search`; unset fields take the call's defaults.

    Exactly one of `query` (text) and `vector` is required.
    """

    query: str | None = None
    vector: Sequence[float] | None = None
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    filter: str | None = None
    top_k: int | None = None
    min_score: float | None = None
    mode: SearchMode | str | None = None
    rrf_k: int | None = None
    include_embedding: bool | None = None
    explain: bool | None = None
    recency_half_life_seconds: float | None = None
    recency_basis: RecencyBasis | str | None = None
    recency_weight: float | None = None
    importance_key: str | None = None
    importance_weight: float | None = None
    pin_boost: float | None = None
    rerank: bool | None = None
    #: A consistency token (see `search`); in a batch the highest applies to all.
    min_revision: int | None = None
    query_id: str | None = None


# -- memories -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Memory:
    """A memory (mnemo.v1.Memory)."""

    id: str
    user_id: str
    agent_id: str
    run_id: str
    content: str
    kind: MemoryKind
    tags: tuple[str, ...]
    metadata: Mapping[str, Any]
    embedding: tuple[float, ...] | None
    embedding_model: str
    content_hash: str
    create_time: datetime | None
    update_time: datetime | None
    expire_time: datetime | None
    version: int
    revision: int
    etag: str
    links: tuple[MemoryLink, ...]
    pinned: bool
    last_retrieve_time: datetime | None
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateResult:
    """The outcome of `create`: the memory, or the existing one deduplication matched."""

    memory: Memory
    deduplicated: bool
    similarity: float
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteResult:
    """The outcome of `delete`."""

    revision: int
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryPage:
    """One page of `list`."""

    memories: tuple[Memory, ...]
    next_page_token: str
    #: The revision the server had applied when it read (a consistency token).
    revision: int = 0
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchHit:
    """One search hit: a memory and how well it matches, higher is better: the
    cosine similarity in vector mode, BM25 in keyword mode, the reciprocal rank
    fusion score in hybrid mode."""

    memory: Memory
    score: float
    #: How the hit was ranked, when the search asked to `explain`.
    explanation: HitExplanation | None = None
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchResult:
    """The hits of one search, best first."""

    hits: tuple[SearchHit, ...]
    embedding_model: str
    #: The revision the server had applied when it searched: pass it as
    #: `min_revision` to read at least this fresh on another server.
    revision: int = 0
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamSearchResult:
    """One answer of `stream_search`: a result or an error, for the query `query_id`."""

    query_id: str
    result: SearchResult | None
    error: MnemoError | None
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteResult:
    """The outcome of one operation of `batch_write`.

    Attributes:
        operation: "create", "update" or "delete" when applied, else None.
        error: Why the operation was not applied, or None.
        memory: The memory created or updated.
        revision: The revision of the change (of a delete, or the memory's).
    """

    operation: Literal["create", "update", "delete"] | None
    error: MnemoError | None
    memory: Memory | None
    deduplicated: bool
    similarity: float
    revision: int
    raw: Any = field(repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """Whether the operation was applied."""
        return self.error is None


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchWriteResult:
    """The outcome of `batch_write`: one result per operation, in order."""

    results: tuple[WriteResult, ...]
    revision: int
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportHeader:
    """The header of an export."""

    format_version: int
    embedding_model: str
    dimension: int
    export_time: datetime | None
    revision: int
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportFailure:
    """One memory an import did not store."""

    index: int
    memory_id: str
    error: MnemoError
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportResult:
    """The outcome of an import."""

    imported_count: int
    skipped_count: int
    reembedded_count: int
    failed_count: int
    failures: tuple[ImportFailure, ...]
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteMemoriesResult:
    """The outcome of `delete_memories`."""

    deleted_count: int
    memory_ids: tuple[str, ...]
    revision: int
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryVersion:
    """One version of a memory: a change and its effect."""

    memory_id: str
    version: int
    revision: int
    change_type: ChangeType
    change_time: datetime | None
    api_key_id: str
    before: Memory | None
    after: Memory | None
    changed_fields: tuple[str, ...]
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryPage:
    """One page of `history`, newest version first."""

    versions: tuple[MemoryVersion, ...]
    next_page_token: str
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryEvent:
    """One change from the change feed (`watch`)."""

    type: EventType
    revision: int
    memory_id: str
    memory: Memory | None
    event_time: datetime | None
    raw: Any = field(repr=False, compare=False)


# -- admin --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ScopeCount:
    """The number of memories in one scope."""

    user_id: str
    agent_id: str
    run_id: str
    memory_count: int
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantStats:
    """The statistics of one tenant."""

    tenant: str
    memory_count: int
    content_bytes: int
    scopes: tuple[ScopeCount, ...]
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexShardStats:
    """The statistics of one index shard."""

    shard_id: str
    kind: IndexKind
    vector_count: int
    dimension: int
    memory_bytes: int
    snapshot_revision: int
    kind_reason: str
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheStats:
    """The statistics of one cache."""

    name: str
    backend: str
    hits: int
    misses: int
    errors: int
    hit_rate: float
    bytes: int
    state: str
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionPolicy:
    """A retention policy in force."""

    tenant: str
    user_id: str
    agent_id: str
    run_id: str
    max_age: timedelta | None
    max_count: int
    eviction_order: EvictionOrder
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Stats:
    """The outcome of `get_stats`."""

    tenants: tuple[TenantStats, ...]
    shards: tuple[IndexShardStats, ...]
    caches: tuple[CacheStats, ...]
    revision: int
    oldest_revision: int
    embedding_model: str
    dimension: int
    retention_policies: tuple[RetentionPolicy, ...]
    server_version: str
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Inconsistency:
    """One inconsistency a consistency check found."""

    kind: InconsistencyKind
    memory_id: str
    tenant: str
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsistencyReport:
    """The outcome of `check_consistency`."""

    consistent: bool
    store_count: int
    index_count: int
    inconsistencies: tuple[Inconsistency, ...]
    repaired_count: int
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """The outcome of `create_snapshot`."""

    revision: int
    snapshot_time: datetime | None
    bytes: int
    shard_count: int
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReembedProgress:
    """One progress report of `reembed`."""

    total_count: int
    reembedded_count: int
    done: bool
    embedding_model: str
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKey:
    """An API key, without its secret."""

    id: str
    tenant: str
    role: ApiKeyRole
    user_ids: tuple[str, ...]
    agent_ids: tuple[str, ...]
    display_name: str
    create_time: datetime | None
    expire_time: datetime | None
    revoke_time: datetime | None
    last_use_time: datetime | None
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class CreatedApiKey:
    """The outcome of `create_api_key`: the key and its secret, shown only once."""

    api_key: ApiKey
    secret: str = field(repr=False)
    raw: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKeyPage:
    """One page of `list_api_keys`."""

    api_keys: tuple[ApiKey, ...]
    next_page_token: str
    raw: Any = field(repr=False, compare=False)
