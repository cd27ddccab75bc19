"""Request building: the one place where each RPC's request message is made from
the client's keyword arguments. Both clients, `WriteOp` and the command line
call these, so that every parameter reaches the wire the same way.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from mnemo import types
from mnemo._core.conversions import duration_to_proto, enum_to_proto, time_to_proto
from mnemo._core.pb import field_mask_pb2, json_format
from mnemo._core.values import fill_struct
from mnemo.v1 import admin_service_pb2 as admin_pb
from mnemo.v1 import memory_pb2
from mnemo.v1 import memory_service_pb2 as pb


class _Unset(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


#: "Not given": an `update` argument left at UNSET is not in the update mask.
UNSET: Final = _Unset.UNSET

Seconds = float | timedelta
LinkLike = types.MemoryLink | Mapping[str, Any]
DedupLike = types.DedupPolicy | types.DedupMode | str


def scope(user_id: str | None, agent_id: str | None, run_id: str | None) -> Any:
    return memory_pb2.Scope(user_id=user_id or "", agent_id=agent_id or "", run_id=run_id or "")


def _links(links: Sequence[LinkLike], out: Any) -> None:
    for link in links:
        if isinstance(link, types.MemoryLink):
            out.add(target_id=link.target_id, relation=link.relation, weight=link.weight)
        else:
            out.add(**link)


def _dedup(dedup: DedupLike, out: pb.DedupPolicy) -> None:
    policy = dedup if isinstance(dedup, types.DedupPolicy) else types.DedupPolicy(dedup)
    out.mode = enum_to_proto(types.DedupMode, policy.mode)
    out.similarity_threshold = policy.similarity_threshold
    out.merge = policy.merge


def _mask(paths: Sequence[str] | None) -> Any:
    return None if paths is None else field_mask_pb2.FieldMask(paths=list(paths))


# -- MemoryService ------------------------------------------------------------


def create_memory(
    content: str,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    kind: types.MemoryKind | str | None = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    id: str | None = None,
    request_id: str | None = None,
    dedup: DedupLike | None = None,
    ttl: Seconds | None = None,
    expire_time: datetime | None = None,
    embedding: Sequence[float] | None = None,
    embedding_model: str | None = None,
    links: Sequence[LinkLike] | None = None,
    pinned: bool | None = None,
) -> pb.CreateMemoryRequest:
    if isinstance(tags, str):
        raise TypeError("tags must be a sequence of strings, not a string")
    memory = memory_pb2.Memory(
        id=id or "",
        user_id=user_id or "",
        agent_id=agent_id or "",
        run_id=run_id or "",
        content=content,
        tags=list(tags or ()),
        embedding=list(embedding or ()),
        embedding_model=embedding_model or "",
        pinned=bool(pinned),
    )
    if kind is not None:
        memory.kind = enum_to_proto(types.MemoryKind, kind)
    if metadata:
        fill_struct(metadata, memory.metadata)
    if expire_time is not None:
        time_to_proto(expire_time, memory.expire_time, name="expire_time")
    _links(links or (), memory.links)
    request = pb.CreateMemoryRequest(memory=memory, request_id=request_id or "")
    if dedup is not None:
        _dedup(dedup, request.dedup)
    if ttl is not None:
        duration_to_proto(ttl, request.ttl)
    return request


def get_memory(
    id: str, *, read_mask: Sequence[str] | None = None, min_revision: int | None = None
) -> pb.GetMemoryRequest:
    return pb.GetMemoryRequest(id=id, read_mask=_mask(read_mask), min_revision=min_revision or 0)


def update_memory(
    id: str,
    *,
    content: str | _Unset | None = UNSET,
    kind: types.MemoryKind | str | _Unset | None = UNSET,
    tags: Sequence[str] | _Unset | None = UNSET,
    metadata: Mapping[str, Any] | _Unset | None = UNSET,
    embedding: Sequence[float] | _Unset | None = UNSET,
    expire_time: datetime | _Unset | None = UNSET,
    links: Sequence[LinkLike] | _Unset | None = UNSET,
    pinned: bool | _Unset | None = UNSET,
    embedding_model: str | None = None,
    ttl: Seconds | None = None,
    etag: str | None = None,
    request_id: str | None = None,
) -> pb.UpdateMemoryRequest:
    """The update mask holds exactly the fields given; None clears a field."""
    memory = memory_pb2.Memory(id=id, embedding_model=embedding_model or "")
    paths: list[str] = []
    if content is not UNSET:
        paths.append("content")
        memory.content = content or ""
    if kind is not UNSET:
        paths.append("kind")
        if kind is not None:
            memory.kind = enum_to_proto(types.MemoryKind, kind)
    if tags is not UNSET:
        if isinstance(tags, str):
            raise TypeError("tags must be a sequence of strings, not a string")
        paths.append("tags")
        memory.tags.extend(tags or ())
    if metadata is not UNSET:
        paths.append("metadata")
        fill_struct(metadata or {}, memory.metadata)
    if embedding is not UNSET:
        paths.append("embedding")
        memory.embedding.extend(embedding or ())
    if expire_time is not UNSET:
        paths.append("expire_time")
        if expire_time is not None:
            time_to_proto(expire_time, memory.expire_time, name="expire_time")
    if links is not UNSET:
        paths.append("links")
        _links(links or (), memory.links)
    if pinned is not UNSET:
        paths.append("pinned")
        memory.pinned = bool(pinned)
    request = pb.UpdateMemoryRequest(
        memory=memory,
        update_mask=field_mask_pb2.FieldMask(paths=paths),
        etag=etag or "",
        request_id=request_id or "",
    )
    if ttl is not None:
        duration_to_proto(ttl, request.ttl)
    return request


def delete_memory(
    id: str, *, etag: str | None = None, request_id: str | None = None
) -> pb.DeleteMemoryRequest:
    return pb.DeleteMemoryRequest(id=id, etag=etag or "", request_id=request_id or "")


def list_memories(
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    filter: str | None = None,
    order_by: str | None = None,
    page_size: int | None = None,
    page_token: str | None = None,
    read_mask: Sequence[str] | None = None,
    min_revision: int | None = None,
) -> pb.ListMemoriesRequest:
    return pb.ListMemoriesRequest(
        scope=scope(user_id, agent_id, run_id),
        filter=filter or "",
        order_by=order_by or "",
        page_size=page_size or 0,
        page_token=page_token or "",
        read_mask=_mask(read_mask),
        min_revision=min_revision or 0,
    )


def search_memories(
    query: str | None = None,
    *,
    vector: Sequence[float] | None = None,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    filter: str | None = None,
    top_k: int | None = None,
    min_score: float | None = None,
    mode: types.SearchMode | str | None = None,
    rrf_k: int | None = None,
    include_embedding: bool | None = None,
    explain: bool | None = None,
    recency_half_life_seconds: float | None = None,
    recency_basis: types.RecencyBasis | str | None = None,
    recency_weight: float | None = None,
    importance_key: str | None = None,
    importance_weight: float | None = None,
    pin_boost: float | None = None,
    rerank: bool | None = None,
    min_revision: int | None = None,
) -> pb.SearchMemoriesRequest:
    request = pb.SearchMemoriesRequest(
        query=query or "",
        vector=list(vector or ()),
        scope=scope(user_id, agent_id, run_id),
        filter=filter or "",
        top_k=top_k or 0,
        include_embedding=bool(include_embedding),
        explain=bool(explain),
        min_revision=min_revision or 0,
    )
    if min_score is not None:
        request.min_score = min_score
    if mode is not None:
        request.mode = enum_to_proto(types.SearchMode, mode)
    if rrf_k is not None:
        request.rrf_k = rrf_k
    if recency_half_life_seconds is not None:
        request.recency_half_life_seconds = recency_half_life_seconds
    if recency_basis is not None:
        request.recency_basis = enum_to_proto(types.RecencyBasis, recency_basis)
    if recency_weight is not None:
        request.recency_weight = recency_weight
    if importance_key:
        request.importance_key = importance_key
    if importance_weight is not None:
        request.importance_weight = importance_weight
    if pin_boost is not None:
        request.pin_boost = pin_boost
    if rerank is not None:
        request.rerank = rerank
    return request


def search_query(query: str | types.SearchQuery, defaults: Mapping[str, Any]) -> types.SearchQuery:
    """A batch or stream query with the call's defaults filled in where it has none."""
    given = types.SearchQuery(query=query) if isinstance(query, str) else query
    merged = {
        name: getattr(given, name) if getattr(given, name) is not None else defaults.get(name)
        for name in types.SearchQuery.__dataclass_fields__
    }
    return types.SearchQuery(**merged)


def search_from_query(q: types.SearchQuery) -> pb.SearchMemoriesRequest:
    return search_memories(
        q.query,
        vector=q.vector,
        user_id=q.user_id,
        agent_id=q.agent_id,
        run_id=q.run_id,
        filter=q.filter,
        top_k=q.top_k,
        min_score=q.min_score,
        mode=q.mode,
        rrf_k=q.rrf_k,
        include_embedding=q.include_embedding,
        explain=q.explain,
        min_revision=q.min_revision,
        **ranking_options(q),
    )


#: The score-adjustment and rerank options of a search (docs/retrieval.md), in both SDKs.
RANKING_OPTIONS = (
    "recency_half_life_seconds",
    "recency_basis",
    "recency_weight",
    "importance_key",
    "importance_weight",
    "pin_boost",
    "rerank",
)


def ranking_options(q: types.SearchQuery) -> dict[str, Any]:
    return {name: getattr(q, name) for name in RANKING_OPTIONS}


def batch_search_memories(
    queries: Sequence[str | types.SearchQuery], defaults: Mapping[str, Any]
) -> pb.BatchSearchMemoriesRequest:
    if isinstance(queries, str):
        raise TypeError("queries must be a sequence of queries, not a string")
    return pb.BatchSearchMemoriesRequest(
        requests=[search_from_query(search_query(q, defaults)) for q in queries]
    )


def stream_search_memories(
    query: str | types.SearchQuery, defaults: Mapping[str, Any], position: int
) -> pb.StreamSearchMemoriesRequest:
    """One message of the stream; the query id is the query's own or its position."""
    q = search_query(query, defaults)
    return pb.StreamSearchMemoriesRequest(query_id=q.query_id or str(position), search=search_from_query(q))


@dataclass(frozen=True, slots=True)
class WriteOp:
    """One operation of `batch_write`; make it with `WriteOp.create`, `.update` or `.delete`,
    which take the same arguments as the client methods of the same names.

    Example:
        >>> ops = [WriteOp.create("likes tea", user_id="bob"), WriteOp.delete("old-id")]
        >>> [op.raw.WhichOneof("operation") for op in ops]
        ['create', 'delete']
    """

    raw: Any

    @staticmethod
    def create(content: str, **kwargs: Any) -> WriteOp:
        """A create; see `MnemoClient.create`."""
        return WriteOp(pb.WriteOperation(create=create_memory(content, **kwargs)))

    @staticmethod
    def update(id: str, **kwargs: Any) -> WriteOp:
        """An update; see `MnemoClient.update`."""
        return WriteOp(pb.WriteOperation(update=update_memory(id, **kwargs)))

    @staticmethod
    def delete(id: str, *, etag: str | None = None, request_id: str | None = None) -> WriteOp:
        """A delete; see `MnemoClient.delete`."""
        return WriteOp(pb.WriteOperation(delete=delete_memory(id, etag=etag, request_id=request_id)))


def batch_write_memories(
    operations: Sequence[WriteOp], *, atomic: bool = False, request_id: str | None = None
) -> pb.BatchWriteMemoriesRequest:
    return pb.BatchWriteMemoriesRequest(
        operations=[op.raw for op in operations], atomic=atomic, request_id=request_id or ""
    )


MemoryLike = types.Memory | memory_pb2.Memory | Mapping[str, Any]
HeaderLike = types.ExportHeader | pb.ExportHeader | Mapping[str, Any]


def import_memories_head(
    *,
    header: HeaderLike | None = None,
    on_conflict: types.ImportConflictPolicy | str | None = None,
    force_reembed: bool = False,
) -> list[pb.ImportMemoriesRequest]:
    """The messages an import stream starts with: options (when given), then the header."""
    head: list[pb.ImportMemoriesRequest] = []
    if on_conflict is not None or force_reembed:
        options = pb.ImportOptions(force_reembed=force_reembed)
        if on_conflict is not None:
            options.on_conflict = enum_to_proto(types.ImportConflictPolicy, on_conflict)
        head.append(pb.ImportMemoriesRequest(options=options))
    if header is None:
        message = pb.ExportHeader(format_version=1)
    elif isinstance(header, types.ExportHeader):
        message = header.raw
    elif isinstance(header, Mapping):
        message = json_format.ParseDict(dict(header), pb.ExportHeader())
    else:
        message = header
    head.append(pb.ImportMemoriesRequest(header=message))
    return head


def import_memories_item(memory: MemoryLike) -> pb.ImportMemoriesRequest:
    """One memory of an import stream: a Memory, a mnemo.v1.Memory or its proto-JSON dict."""
    if isinstance(memory, types.Memory):
        message = memory.raw
    elif isinstance(memory, Mapping):
        message = json_format.ParseDict(dict(memory), memory_pb2.Memory())
    else:
        message = memory
    return pb.ImportMemoriesRequest(memory=message)


def export_memories(
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    filter: str | None = None,
    omit_embeddings: bool = False,
) -> pb.ExportMemoriesRequest:
    return pb.ExportMemoriesRequest(
        scope=scope(user_id, agent_id, run_id), filter=filter or "", omit_embeddings=omit_embeddings
    )


def delete_memories(
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    filter: str | None = None,
    dry_run: bool = False,
    request_id: str | None = None,
) -> pb.DeleteMemoriesRequest:
    return pb.DeleteMemoriesRequest(
        scope=scope(user_id, agent_id, run_id),
        filter=filter or "",
        dry_run=dry_run,
        request_id=request_id or "",
    )


def get_memory_history(
    id: str, *, page_size: int | None = None, page_token: str | None = None
) -> pb.GetMemoryHistoryRequest:
    return pb.GetMemoryHistoryRequest(id=id, page_size=page_size or 0, page_token=page_token or "")


def watch_memories(
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    filter: str | None = None,
    start_revision: int | None = None,
    event_types: Sequence[types.EventType | str] | None = None,
    progress_interval: Seconds | None = None,
) -> pb.WatchMemoriesRequest:
    request = pb.WatchMemoriesRequest(
        scope=scope(user_id, agent_id, run_id),
        filter=filter or "",
        event_types=[enum_to_proto(types.EventType, t) for t in event_types or ()],
    )
    if start_revision is not None:
        # Set even when 0: that replays the whole retained log; unset is live.
        request.start_revision = start_revision
    if progress_interval is not None:
        duration_to_proto(progress_interval, request.progress_interval)
    return request


# -- AdminService -------------------------------------------------------------


def get_stats(
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    scope_limit: int | None = None,
) -> admin_pb.GetStatsRequest:
    return admin_pb.GetStatsRequest(scope=scope(user_id, agent_id, run_id), scope_limit=scope_limit or 0)


def check_consistency(*, repair: bool = False) -> admin_pb.CheckConsistencyRequest:
    return admin_pb.CheckConsistencyRequest(repair=repair)


def create_snapshot() -> admin_pb.CreateSnapshotRequest:
    return admin_pb.CreateSnapshotRequest()


def reembed_memories(
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    filter: str | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> admin_pb.ReembedMemoriesRequest:
    return admin_pb.ReembedMemoriesRequest(
        scope=scope(user_id, agent_id, run_id), filter=filter or "", force=force, dry_run=dry_run
    )


def create_api_key(
    role: types.ApiKeyRole | str,
    *,
    tenant: str | None = None,
    user_ids: Sequence[str] | None = None,
    agent_ids: Sequence[str] | None = None,
    display_name: str | None = None,
    ttl: Seconds | None = None,
) -> admin_pb.CreateApiKeyRequest:
    request = admin_pb.CreateApiKeyRequest(
        tenant=tenant or "",
        role=enum_to_proto(types.ApiKeyRole, role),
        user_ids=list(user_ids or ()),
        agent_ids=list(agent_ids or ()),
        display_name=display_name or "",
    )
    if ttl is not None:
        duration_to_proto(ttl, request.ttl)
    return request


def list_api_keys(
    *,
    page_size: int | None = None,
    page_token: str | None = None,
    show_revoked: bool = False,
    tenant: str | None = None,
) -> admin_pb.ListApiKeysRequest:
    return admin_pb.ListApiKeysRequest(
        page_size=page_size or 0, page_token=page_token or "", show_revoked=show_revoked, tenant=tenant or ""
    )


def revoke_api_key(id: str) -> admin_pb.RevokeApiKeyRequest:
    return admin_pb.RevokeApiKeyRequest(id=id)
