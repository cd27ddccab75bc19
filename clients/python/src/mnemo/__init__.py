"""The Python client of the Mnemo memory server.

    >>> from mnemo import MnemoClient
    >>> with MnemoClient(address) as c:
    ...     _ = c.create("Dave takes his coffee black", user_id="doc-init")
    ...     c.search("how does Dave like coffee?", user_id="doc-init").hits[0].memory.content
    'Dave takes his coffee black'

`MnemoClient` blocks; `AsyncMnemoClient` has the same methods as coroutines.
Results are the frozen dataclasses of `mnemo.types` (each keeps its protobuf
message as `.raw`); failures raise the exceptions of `mnemo.errors`. The raw
generated messages and stubs are in `mnemo.v1` (for example
`mnemo.v1.memory_service_pb2_grpc.MemoryServiceStub`), the one place the
server imports them from too.
"""

from mnemo import errors
from mnemo._astreams import AsyncExportStream, AsyncWatch
from mnemo._core.extraction import (
    ConversationMessage,
    ExtractionMode,
    FactEvent,
    FactOutcome,
    Operation,
    OperationPage,
    OperationState,
)
from mnemo._core.requests import UNSET, WriteOp
from mnemo._core.retry import RetryPolicy
from mnemo._streams import ExportStream, Watch
from mnemo.aio import AsyncMnemoClient
from mnemo.client import MnemoClient
from mnemo.errors import MnemoError
from mnemo.types import (
    ApiKey,
    ApiKeyPage,
    ApiKeyRole,
    BatchWriteResult,
    CacheStats,
    ChangeType,
    ConsistencyReport,
    CreatedApiKey,
    CreateResult,
    DedupMode,
    DedupPolicy,
    DeleteMemoriesResult,
    DeleteResult,
    EventType,
    EvictionOrder,
    ExportHeader,
    HistoryPage,
    HitExplanation,
    ImportConflictPolicy,
    ImportFailure,
    ImportResult,
    Inconsistency,
    InconsistencyKind,
    IndexKind,
    IndexShardStats,
    Memory,
    MemoryEvent,
    MemoryKind,
    MemoryLink,
    MemoryPage,
    MemoryVersion,
    RecencyBasis,
    ReembedProgress,
    RetentionPolicy,
    ScopeCount,
    SearchHit,
    SearchMode,
    SearchQuery,
    SearchResult,
    Snapshot,
    Stats,
    StreamSearchResult,
    TenantStats,
    WriteResult,
)

__version__ = "0.1.0"

__all__ = [
    "UNSET",
    "ApiKey",
    "ApiKeyPage",
    "ApiKeyRole",
    "AsyncExportStream",
    "AsyncMnemoClient",
    "AsyncWatch",
    "BatchWriteResult",
    "CacheStats",
    "ChangeType",
    "ConsistencyReport",
    "ConversationMessage",
    "CreateResult",
    "CreatedApiKey",
    "DedupMode",
    "DedupPolicy",
    "DeleteMemoriesResult",
    "DeleteResult",
    "EventType",
    "EvictionOrder",
    "ExportHeader",
    "ExportStream",
    "ExtractionMode",
    "FactEvent",
    "FactOutcome",
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
    "MnemoClient",
    "MnemoError",
    "Operation",
    "OperationPage",
    "OperationState",
    "RecencyBasis",
    "ReembedProgress",
    "RetentionPolicy",
    "RetryPolicy",
    "ScopeCount",
    "SearchHit",
    "SearchMode",
    "SearchQuery",
    "SearchResult",
    "Snapshot",
    "Stats",
    "StreamSearchResult",
    "TenantStats",
    "Watch",
    "WriteOp",
    "WriteResult",
    "__version__",
    "errors",
]
