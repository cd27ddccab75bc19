"""The public surface of the SDK, pinned: what `mnemo` exports, the methods of
both clients with their parameters, one method per RPC, and every parameter
reaching the wire."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import mnemo
from mnemo import (
    AsyncMnemoClient,
    DedupPolicy,
    MemoryLink,
    MnemoClient,
    SearchQuery,
    WriteOp,
    _requests,
    errors,
)
from mnemo.v1 import admin_service_pb2, extraction_service_pb2, memory_service_pb2

EXPORTED = [
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

ERRORS = [
    "AbortedError",
    "AlreadyExistsError",
    "CancelledError",
    "DataLossError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FieldViolation",
    "InternalError",
    "InvalidArgumentError",
    "MnemoError",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "UnknownError",
    "from_rpc_error",
    "from_status",
]

SCOPE = "user_id=None, agent_id=None, run_id=None"
SEARCH = (
    f"{SCOPE}, filter=None, top_k=None, min_score=None, mode=None, rrf_k=None, explain=False, "
    "recency_half_life_seconds=None, recency_basis=None, recency_weight=None, importance_key=None, "
    "importance_weight=None, pin_boost=None, rerank=None, include_embedding=False, min_revision=None, "
    "timeout=None"
)
METHODS = {
    "batch_search": f"queries, *, {SEARCH}",
    "batch_write": "operations, *, atomic=False, request_id=None, timeout=None",
    "check_consistency": "*, repair=False, timeout=None",
    "close": "",
    "create": f"content, *, {SCOPE}, kind=None, tags=None, metadata=None, id=None, request_id=None, "
    "dedup=None, ttl=None, expire_time=None, embedding=None, embedding_model=None, links=None, "
    "pinned=None, timeout=None",
    "create_api_key": "role, *, tenant=None, user_ids=None, agent_ids=None, display_name=None, ttl=None, "
    "timeout=None",
    "create_snapshot": "*, timeout=None",
    "delete": "id, *, etag=None, request_id=None, timeout=None",
    "delete_memories": f"*, {SCOPE}, filter=None, dry_run=False, request_id=None, timeout=None",
    "export": f"*, {SCOPE}, filter=None, omit_embeddings=False, timeout=None",
    "extract": f"messages, *, {SCOPE}, metadata=None, mode=None, request_id=None, wait=False, timeout=None",
    "get_operation": "id, *, timeout=None",
    "iter_operations": f"*, {SCOPE}, state=None, page_size=None, timeout=None",
    "list_operations": f"*, {SCOPE}, state=None, page_size=None, page_token=None, timeout=None",
    "export_jsonl": f"path, *, {SCOPE}, filter=None, omit_embeddings=False, progress=False, timeout=None",
    "get": "id, *, read_mask=None, min_revision=None, timeout=None",
    "get_stats": f"*, {SCOPE}, scope_limit=None, timeout=None",
    "health": "service='', *, timeout=None",
    "history": "id, *, page_size=None, page_token=None, timeout=None",
    "import_jsonl": "path, *, on_conflict=None, force_reembed=False, progress=False, timeout=None",
    "import_memories": "memories, *, header=None, on_conflict=None, force_reembed=False, timeout=None",
    "iter_api_keys": "*, page_size=None, show_revoked=False, tenant=None, timeout=None",
    "iter_history": "id, *, page_size=None, timeout=None",
    "iter_memories": f"*, {SCOPE}, filter=None, order_by=None, page_size=None, read_mask=None, "
    "min_revision=None, timeout=None",
    "list": f"*, {SCOPE}, filter=None, order_by=None, page_size=None, page_token=None, read_mask=None, "
    "min_revision=None, timeout=None",
    "list_api_keys": "*, page_size=None, page_token=None, show_revoked=False, tenant=None, timeout=None",
    "reembed": f"*, {SCOPE}, filter=None, force=False, dry_run=False, timeout=None",
    "revoke_api_key": "id, *, timeout=None",
    "search": f"query=None, *, vector=None, {SEARCH}",
    "stream_search": f"queries, *, {SEARCH}",
    "update": "id, *, content=UNSET, kind=UNSET, tags=UNSET, metadata=UNSET, embedding=UNSET, "
    "expire_time=UNSET, links=UNSET, pinned=UNSET, embedding_model=None, ttl=None, etag=None, "
    "request_id=None, timeout=None",
    "watch": f"*, {SCOPE}, filter=None, start_revision=None, event_types=None, progress_interval=None, "
    "reconnect=True",
}
PROPERTIES = {"address", "admin_stub", "channel", "extraction_stub", "stub"}

# Each RPC of the contract and the method that calls it.
RPCS = {
    "MemoryService.CreateMemory": "create",
    "MemoryService.GetMemory": "get",
    "MemoryService.UpdateMemory": "update",
    "MemoryService.DeleteMemory": "delete",
    "MemoryService.ListMemories": "list",
    "MemoryService.SearchMemories": "search",
    "MemoryService.BatchSearchMemories": "batch_search",
    "MemoryService.StreamSearchMemories": "stream_search",
    "MemoryService.BatchWriteMemories": "batch_write",
    "MemoryService.ImportMemories": "import_memories",
    "MemoryService.ExportMemories": "export",
    "MemoryService.DeleteMemories": "delete_memories",
    "MemoryService.GetMemoryHistory": "history",
    "MemoryService.WatchMemories": "watch",
    "AdminService.GetStats": "get_stats",
    "AdminService.CheckConsistency": "check_consistency",
    "AdminService.CreateSnapshot": "create_snapshot",
    "AdminService.ReembedMemories": "reembed",
    "AdminService.CreateApiKey": "create_api_key",
    "AdminService.ListApiKeys": "list_api_keys",
    "AdminService.RevokeApiKey": "revoke_api_key",
    "ExtractionService.ExtractMemories": "extract",
    "ExtractionService.GetOperation": "get_operation",
    "ExtractionService.ListOperations": "list_operations",
}


def shape(fn: Any) -> str:
    out, star = [], False
    for p in list(inspect.signature(fn).parameters.values())[1:]:
        if p.kind is p.KEYWORD_ONLY and not star:
            out.append("*")
            star = True
        out.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return ", ".join(out)


def public(cls: type) -> dict[str, Any]:
    return {n: inspect.getattr_static(cls, n) for n in dir(cls) if not n.startswith("_")}


def test_the_package_exports_exactly_this() -> None:
    assert mnemo.__all__ == EXPORTED
    assert sorted(mnemo.__all__) == sorted(
        n
        for n in vars(mnemo)
        if not n.startswith("_") or n == "__version__"
        if not inspect.ismodule(vars(mnemo)[n]) or n == "errors"
    )
    assert errors.__all__ == ERRORS


def test_the_blocking_client_has_exactly_these_methods() -> None:
    members = public(MnemoClient)
    assert {n for n, m in members.items() if isinstance(m, property)} == PROPERTIES
    assert {n: shape(getattr(MnemoClient, n)) for n in members if n not in PROPERTIES} == METHODS


def test_the_async_client_mirrors_the_blocking_one() -> None:
    sync, aio = public(MnemoClient), public(AsyncMnemoClient)
    assert sync.keys() == aio.keys()
    for name in METHODS:
        assert shape(getattr(AsyncMnemoClient, name)) == METHODS[name], name
        streams = name.startswith("iter_") or name in {"stream_search", "export", "watch", "reembed"}
        fn = getattr(AsyncMnemoClient, name)
        assert inspect.iscoroutinefunction(fn) != (streams or inspect.isasyncgenfunction(fn)), name
    assert (
        inspect.signature(MnemoClient.__init__).parameters.keys()
        == inspect.signature(AsyncMnemoClient.__init__).parameters.keys()
    )


def test_every_rpc_of_the_contract_has_a_method() -> None:
    contract = {
        f"{service.name}.{method.name}"
        for module in (memory_service_pb2, admin_service_pb2, extraction_service_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert contract == set(RPCS)
    assert set(RPCS.values()) <= set(METHODS)


def test_every_create_parameter_reaches_the_wire() -> None:
    expire = datetime(2030, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    request = _requests.create_memory(
        "text",
        user_id="u",
        agent_id="a",
        run_id="r",
        kind="procedural",
        tags=["t1", "t2"],
        metadata={"n": 1, "f": 1.5, "s": "x", "b": False, "z": None, "l": [1], "d": {"k": "v"}},
        id="m1",
        request_id="req",
        dedup=DedupPolicy("semantic", 0.8, merge=True),
        ttl=90.5,
        embedding=[0.5, 0.25],
        embedding_model="mine",
        links=[MemoryLink("m2", "rel", 0.5)],
        pinned=True,
    )
    m = request.memory
    assert (m.content, m.user_id, m.agent_id, m.run_id, m.id) == ("text", "u", "a", "r", "m1")
    assert m.kind == 3 and list(m.tags) == ["t1", "t2"] and list(m.embedding) == [0.5, 0.25]
    assert m.embedding_model == "mine" and m.pinned and m.links[0].target_id == "m2"
    assert m.metadata["n"].int_value == 1 and m.metadata["f"].double_value == 1.5
    assert (
        m.metadata["z"].WhichOneof("kind") == "null_value"
        and m.metadata["d"].struct_value.fields["k"].string_value == "v"
    )
    assert request.request_id == "req" and request.ttl.seconds == 90 and request.ttl.nanos == 500_000_000
    assert request.dedup.mode == 3 and request.dedup.similarity_threshold == pytest.approx(0.8)
    assert request.dedup.merge
    with_expiry = _requests.create_memory("x", expire_time=expire)
    assert with_expiry.memory.expire_time.ToDatetime(UTC) == expire and not with_expiry.HasField("ttl")


def test_update_masks_exactly_the_fields_given() -> None:
    assert list(_requests.update_memory("m", content="c").update_mask.paths) == ["content"]
    request = _requests.update_memory(
        "m",
        content="c",
        kind="semantic",
        tags=None,
        metadata={"a": 1},
        embedding=[1.0],
        expire_time=None,
        links=[],
        pinned=False,
        embedding_model="e",
        ttl=timedelta(seconds=5),
        etag="E",
        request_id="R",
    )
    assert list(request.update_mask.paths) == [
        "content",
        "kind",
        "tags",
        "metadata",
        "embedding",
        "expire_time",
        "links",
        "pinned",
    ]
    assert not request.memory.HasField("expire_time") and list(request.memory.tags) == []
    assert (request.etag, request.request_id, request.ttl.seconds) == ("E", "R", 5)
    assert request.memory.id == "m" and request.memory.embedding_model == "e"


def test_search_list_watch_and_admin_requests() -> None:
    search = _requests.search_memories(
        "q",
        vector=[1.0],
        user_id="u",
        agent_id="a",
        run_id="r",
        filter="f",
        top_k=3,
        min_score=0.0,
        mode="hybrid",
        rrf_k=7,
        include_embedding=True,
        explain=True,
    )
    assert (search.mode, search.rrf_k, search.explain) == (memory_service_pb2.SEARCH_MODE_HYBRID, 7, True)
    assert not _requests.search_memories("q").HasField("rrf_k")
    assert not _requests.search_memories("q").explain
    assert (search.query, search.scope.user_id, search.scope.run_id, search.filter, search.top_k) == (
        "q",
        "u",
        "r",
        "f",
        3,
    )
    assert search.HasField("min_score") and search.include_embedding and list(search.vector) == [1.0]
    assert not _requests.search_memories("q").HasField("min_score")
    batch = _requests.batch_search_memories(
        ["a", SearchQuery(query="b", top_k=9, user_id="v")], {"user_id": "u", "top_k": 2}
    )
    assert [(r.query, r.top_k, r.scope.user_id) for r in batch.requests] == [("a", 2, "u"), ("b", 9, "v")]
    listing = _requests.list_memories(
        user_id="u", order_by="id", page_size=5, page_token="t", read_mask=["content"]
    )
    assert (listing.order_by, listing.page_size, listing.page_token) == ("id", 5, "t")
    assert list(listing.read_mask.paths) == ["content"]
    watch = _requests.watch_memories(
        user_id="u", filter="f", start_revision=7, event_types=["put", "expired"], progress_interval=0.5
    )
    assert (watch.start_revision, list(watch.event_types), watch.progress_interval.nanos) == (
        7,
        [1, 3],
        5 * 10**8,
    )
    key = _requests.create_api_key(
        "admin", tenant="t", user_ids=["u"], agent_ids=["a"], display_name="n", ttl=60
    )
    assert (key.role, key.tenant, list(key.user_ids), key.display_name, key.ttl.seconds) == (
        3,
        "t",
        ["u"],
        "n",
        60,
    )
    head = _requests.import_memories_head(on_conflict="overwrite", force_reembed=True)
    assert head[0].options.on_conflict == 2 and head[0].options.force_reembed
    assert head[1].header.format_version == 1
    op = WriteOp.update("m", pinned=True, request_id="r")
    assert list(op.raw.update.update_mask.paths) == ["pinned"] and op.raw.update.request_id == "r"


def test_metadata_values_round_trip_exactly() -> None:
    from mnemo._values import from_value, to_value

    for value in [
        None,
        True,
        False,
        0,
        -(2**63),
        2**63 - 1,
        0.1,
        "",
        "ü",
        [],
        {},
        [1, [2, {"a": None}]],
        {"x": {"y": [True, 1, 1.0]}},
    ]:
        decoded = from_value(to_value(value))
        assert decoded == value and type(decoded) is type(value)
    assert from_value(to_value((1, 2))) == [1, 2]
    with pytest.raises(TypeError):
        to_value({1: "not a str key"})


def test_enums_accept_their_names_in_any_form() -> None:
    for form in ["semantic", "SEMANTIC", "MEMORY_KIND_SEMANTIC", mnemo.MemoryKind.SEMANTIC]:
        assert _requests.create_memory("x", kind=form).memory.kind == 2
    with pytest.raises(ValueError, match="expected one of episodic, semantic, procedural"):
        _requests.create_memory("x", kind="sideways")
