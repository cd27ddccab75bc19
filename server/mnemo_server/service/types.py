"""The service's request and result types: what the API layer decodes into
and encodes from. Plain dataclasses, no behaviour beyond bookkeeping, so the
API can import them without the use-cases (service/__init__.py composes those).

History entries (`VersionRecord`) and API keys (`ApiKeyRecord`) are domain
types of mnemo_server.models; the store fills them, the API never imports it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mnemo_server.adjust import NONE
from mnemo_server.adjust import Adjustments as Adjustments  # also for the API layer
from mnemo_server.adjust import RecencyBasis as RecencyBasis  # for the API layer
from mnemo_server.cache import LayerStats
from mnemo_server.errors import MnemoError
from mnemo_server.index.base import IndexKind
from mnemo_server.models import Link, Memory, MemoryKind, Scope, SearchHit, Vector
from mnemo_server.store.base import ScopeCountRow

SERVER_VERSION = "0.1.0"

#: The embedding model recorded for a vector the client sent.
CLIENT_MODEL = "client"
#: The fields an update mask may name.
UPDATABLE = ("content", "kind", "tags", "metadata", "embedding", "expire_time", "links", "pinned")
#: The fields no update may change.
IMMUTABLE = ("id", "user_id", "agent_id", "run_id")


class DedupMode(enum.Enum):
    NONE = "none"
    EXACT = "exact"
    SEMANTIC = "semantic"


@dataclass(frozen=True, slots=True)
class DedupPolicy:
    mode: DedupMode = DedupMode.NONE
    threshold: float = 0.9
    merge: bool = False


@dataclass(frozen=True, slots=True)
class MemoryDraft:
    """A memory as a client sent it, before validation."""

    id: str = ""
    scope: Scope = Scope()
    content: str = ""
    kind: MemoryKind = MemoryKind.EPISODIC
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    links: tuple[Link, ...] = ()
    pinned: bool = False
    embedding: Sequence[float] | Vector | None = None
    embedding_model: str = ""
    expire_time_us: int | None = None
    ttl_us: int | None = None
    # Set only by import, which keeps an export's original times.
    create_time_us: int | None = None
    update_time_us: int | None = None
    last_retrieve_time_us: int | None = None


@dataclass(frozen=True, slots=True)
class WriteOp:
    """One create, update or delete; `field` is its place in the request."""

    kind: str  # "create" | "update" | "delete"
    draft: MemoryDraft = MemoryDraft()
    memory_id: str = ""
    update_mask: tuple[str, ...] = ()
    etag: str = ""
    request_id: str = ""
    dedup: DedupPolicy = DedupPolicy()
    field: str = ""
    #: The draft's id was assigned by the server, not chosen by the caller.
    id_assigned: bool = False


@dataclass(slots=True)
class WriteOutcome:
    kind: str
    memory: Memory | None = None
    deduplicated: bool = False
    similarity: float = 0.0
    revision: int = 0
    error: MnemoError | None = None


class SearchMode(enum.Enum):
    """How a search finds and ranks memories (docs/retrieval.md)."""

    VECTOR = "vector"
    KEYWORD = "keyword"
    HYBRID = "hybrid"


@dataclass(frozen=True, slots=True)
class SearchQuery:
    text: str = ""
    vector: Sequence[float] | Vector | None = None
    scope: Scope = Scope()
    filter: str = ""
    top_k: int = 0
    min_score: float | None = None
    include_embedding: bool = False
    field: str = ""
    mode: SearchMode = SearchMode.VECTOR
    rrf_k: int | None = None
    #: Give each hit its HitExplanation; never served from or stored in the result cache.
    explain: bool = False
    #: Recency decay and importance or pin boosts after ranking (adjust.py).
    adjustments: Adjustments = NONE
    #: Rerank the top candidates; None: the server's rerank.by_default.
    rerank: bool | None = None


@dataclass(frozen=True, slots=True)
class ForgetResult:
    deleted_count: int
    memory_ids: list[str]
    revision: int


@dataclass(slots=True)
class ImportReport:
    imported: int = 0
    skipped: int = 0
    reembedded: int = 0
    failed: int = 0
    failures: list[tuple[int, str, MnemoError]] = field(default_factory=list)
    #: Ids this import wrote: the only memories whose links it may restore.
    written: set[str] = field(default_factory=set)

    def fail(self, position: int, memory_id: str, error: MnemoError) -> None:
        self.failed += 1
        if len(self.failures) < 1000:
            self.failures.append((position, memory_id, error))

    def merge(self, other: ImportReport) -> None:
        self.imported += other.imported
        self.skipped += other.skipped
        self.reembedded += other.reembedded
        self.failed += other.failed
        self.written |= other.written
        self.failures.extend(other.failures[: max(0, 1000 - len(self.failures))])


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[SearchHit]
    embedding_model: str


@dataclass(frozen=True, slots=True)
class ShardStats:
    shard_id: str
    kind: IndexKind
    vector_count: int
    dimension: int
    memory_bytes: int
    snapshot_revision: int
    kind_reason: str


@dataclass(frozen=True, slots=True)
class TenantStats:
    tenant: str
    memory_count: int
    content_bytes: int
    scopes: list[ScopeCountRow]


@dataclass(frozen=True, slots=True)
class Stats:
    tenants: list[TenantStats]
    shards: list[ShardStats]
    caches: list[LayerStats]
    revision: int
    oldest_revision: int
    embedding_model: str
    dimension: int
    retention: tuple[Any, ...] = ()
    server_version: str = SERVER_VERSION


@dataclass(frozen=True, slots=True)
class Inconsistency:
    kind: str  # "missing", "orphan", "stale"
    memory_id: str
    tenant: str


@dataclass(frozen=True, slots=True)
class ConsistencyReport:
    store_count: int
    index_count: int
    inconsistencies: list[Inconsistency]
    repaired: int


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    revision: int
    time_us: int
    bytes: int
    shard_count: int
