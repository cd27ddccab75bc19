"""The use-cases of MemoryService and AdminService, one module per concern.

Depends only on the seams (RecordStore, VectorIndex, Embedder, Caches) and
the domain; knows nothing of gRPC. Every method but `prepare`,
`look_up_inline` and `answer_inline` (search.py) may block: the API layer
calls them from a worker thread.

    types.py        requests and results (what api/convert.py maps)
    state.py        the shared collaborators: store, index, embedder, caches, clock, feed
    reads.py        get, list, history, a watch's replay
    query.py        a search query validated and fingerprinted once, no I/O
    search.py       one search path: prepare -> inline cache answer, or look up, compute, hydrate
    writes.py       creates, updates, deletes, batches
    effects.py      what a commit means for index, caches and feed; the one way to delete
    idempotency.py  request ids: fingerprints and the one replay check
    lifecycle.py    expiry, forget, retention, import/export, re-embedding, upkeep
    recovery.py     load, replay, catch-up, snapshots, the consistency check
    stats.py        GetStats
    memory_service.py  MemoryService, the facade composed of the parts above

Importing the types (this package's names from types.py, or types.py
itself) does not import the use-cases: the names from memory_service.py,
reads.py and query.py load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mnemo_server.service.types import (
    CLIENT_MODEL,
    IMMUTABLE,
    SERVER_VERSION,
    UPDATABLE,
    ConsistencyReport,
    DedupMode,
    DedupPolicy,
    ForgetResult,
    ImportReport,
    Inconsistency,
    MemoryDraft,
    SearchMode,
    SearchQuery,
    SearchResult,
    ShardStats,
    SnapshotInfo,
    Stats,
    TenantStats,
    WriteOp,
    WriteOutcome,
)

if TYPE_CHECKING:
    from mnemo_server.service.memory_service import MemoryService
    from mnemo_server.service.query import PreparedQuery, PreparedSearch
    from mnemo_server.service.reads import parse_order_by

_LAZY = {
    "MemoryService": "mnemo_server.service.memory_service",
    "PreparedQuery": "mnemo_server.service.query",
    "PreparedSearch": "mnemo_server.service.query",
    "parse_order_by": "mnemo_server.service.reads",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CLIENT_MODEL",
    "IMMUTABLE",
    "SERVER_VERSION",
    "UPDATABLE",
    "ConsistencyReport",
    "DedupMode",
    "DedupPolicy",
    "ForgetResult",
    "ImportReport",
    "Inconsistency",
    "MemoryDraft",
    "MemoryService",
    "PreparedQuery",
    "PreparedSearch",
    "SearchMode",
    "SearchQuery",
    "SearchResult",
    "ShardStats",
    "SnapshotInfo",
    "Stats",
    "TenantStats",
    "WriteOp",
    "WriteOutcome",
    "parse_order_by",
]
