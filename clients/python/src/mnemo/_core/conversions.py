"""protobuf messages -> the typed results of mnemo.types, and enum and time helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from mnemo import errors, types
from mnemo._core.pb import duration_pb2, timestamp_pb2
from mnemo._core.values import from_struct
from mnemo.v1 import admin_service_pb2 as admin_pb
from mnemo.v1 import memory_pb2
from mnemo.v1 import memory_service_pb2 as pb

E = TypeVar("E", bound=StrEnum)

# Each client enum, with the proto enum it mirrors and that enum's value prefix.
_ENUMS: dict[type[StrEnum], tuple[Any, str]] = {
    types.MemoryKind: (memory_pb2.MemoryKind, "MEMORY_KIND_"),
    types.DedupMode: (pb.DedupMode, "DEDUP_MODE_"),
    types.SearchMode: (pb.SearchMode, "SEARCH_MODE_"),
    types.RecencyBasis: (pb.RecencyBasis, "RECENCY_BASIS_"),
    types.ChangeType: (pb.ChangeType, "CHANGE_TYPE_"),
    types.EventType: (pb.EventType, "EVENT_TYPE_"),
    types.ImportConflictPolicy: (pb.ImportConflictPolicy, "IMPORT_CONFLICT_POLICY_"),
    types.ApiKeyRole: (admin_pb.ApiKeyRole, "API_KEY_ROLE_"),
    types.IndexKind: (admin_pb.IndexKind, "INDEX_KIND_"),
    types.InconsistencyKind: (admin_pb.InconsistencyKind, "INCONSISTENCY_KIND_"),
    types.EvictionOrder: (admin_pb.EvictionOrder, "EVICTION_ORDER_"),
}


def enum_from_proto(cls: type[E], number: int) -> E:
    """The client enum member of a proto enum number; UNSPECIFIED for numbers this
    client does not know (the `raw` message keeps the number)."""
    proto_enum, prefix = _ENUMS[cls]
    try:
        name: str = proto_enum.Name(number)
    except ValueError:
        return cls("UNSPECIFIED")
    return cls(name.removeprefix(prefix))


def enum_to_proto(cls: type[E], value: E | str) -> Any:
    """The proto number of a client enum member or of its name in any case, with or
    without the proto prefix ("semantic", "SEMANTIC", "MEMORY_KIND_SEMANTIC")."""
    proto_enum, prefix = _ENUMS[cls]
    name = str(value).upper().removeprefix(prefix)
    try:
        member = cls(name)
    except ValueError:
        choices = ", ".join(m.value.lower() for m in cls if m.value != "UNSPECIFIED")
        raise ValueError(f"unknown {cls.__name__} {value!r}; expected one of {choices}") from None
    return proto_enum.Value(prefix + member.value)


#: The RFC 3339 range a datetime (and proto-JSON) can show, in seconds since the epoch.
MIN_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
#: google.protobuf.Duration's documented range, in seconds either way.
MAX_DURATION_SECONDS = 315_576_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def time_from_proto(message: Any, name: str) -> datetime | None:
    """A Timestamp field as an aware UTC datetime, or None when unset.

    A time outside 0001-01-01 .. 9999-12-31 (which a server that stored it
    before it checked times may still send) is clamped to the nearest end
    rather than failing every call whose result holds it.
    """
    if not message.HasField(name):
        return None
    ts: timestamp_pb2.Timestamp = getattr(message, name)
    if ts.seconds < MIN_SECONDS:
        return datetime.min.replace(tzinfo=UTC)
    if ts.seconds > MAX_SECONDS:
        return datetime.max.replace(tzinfo=UTC)
    nanos = min(max(ts.nanos, 0), 999_999_999)
    return _EPOCH + timedelta(seconds=ts.seconds, microseconds=nanos // 1000)


def time_to_proto(value: datetime, out: timestamp_pb2.Timestamp, *, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    out.FromDatetime(value.astimezone(UTC))


def duration_from_proto(message: Any, name: str) -> timedelta | None:
    """A Duration field as a timedelta (clamped to timedelta's range), or None when unset."""
    if not message.HasField(name):
        return None
    d: duration_pb2.Duration = getattr(message, name)
    nanos = min(max(d.nanos, -999_999_999), 999_999_999)
    try:
        return timedelta(seconds=d.seconds, microseconds=int(nanos / 1000))
    except OverflowError:
        return timedelta.max if d.seconds > 0 else timedelta.min


def clamped(message: Any) -> Any:
    """A copy of `message` with every Timestamp and Duration, however deep,
    clamped to the range proto-JSON can write (see time_from_proto)."""
    copy = type(message)()
    copy.CopyFrom(message)
    _clamp(copy)
    return copy


def _clamp(message: Any) -> None:
    if isinstance(message, timestamp_pb2.Timestamp):
        if not MIN_SECONDS <= message.seconds <= MAX_SECONDS or not 0 <= message.nanos <= 999_999_999:
            over = message.seconds > MAX_SECONDS
            message.seconds = min(max(message.seconds, MIN_SECONDS), MAX_SECONDS)
            message.nanos = 999_999_999 if over else min(max(message.nanos, 0), 999_999_999)
        return
    if isinstance(message, duration_pb2.Duration):
        message.seconds = min(max(message.seconds, -MAX_DURATION_SECONDS), MAX_DURATION_SECONDS)
        nanos = min(max(message.nanos, -999_999_999), 999_999_999)
        if (message.seconds > 0 > nanos) or (message.seconds < 0 < nanos):
            nanos = 0
        message.nanos = nanos
        return
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].type == field.TYPE_MESSAGE:
                for item in value.values():
                    _clamp(item)
        elif field.is_repeated:
            for item in value:
                _clamp(item)
        else:
            _clamp(value)


def duration_to_proto(value: float | timedelta, out: duration_pb2.Duration) -> None:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    out.FromNanoseconds(round(seconds * 1e9))


# -- memories -----------------------------------------------------------------


def memory(m: memory_pb2.Memory) -> types.Memory:
    return types.Memory(
        id=m.id,
        user_id=m.user_id,
        agent_id=m.agent_id,
        run_id=m.run_id,
        content=m.content,
        kind=enum_from_proto(types.MemoryKind, m.kind),
        tags=tuple(m.tags),
        metadata=from_struct(m.metadata),
        embedding=tuple(m.embedding) if len(m.embedding) else None,
        embedding_model=m.embedding_model,
        content_hash=m.content_hash,
        create_time=time_from_proto(m, "create_time"),
        update_time=time_from_proto(m, "update_time"),
        expire_time=time_from_proto(m, "expire_time"),
        version=m.version,
        revision=m.revision,
        etag=m.etag,
        links=tuple(types.MemoryLink(link.target_id, link.relation, link.weight) for link in m.links),
        pinned=m.pinned,
        last_retrieve_time=time_from_proto(m, "last_retrieve_time"),
        raw=m,
    )


def create_result(r: pb.CreateMemoryResponse) -> types.CreateResult:
    return types.CreateResult(
        memory=memory(r.memory), deduplicated=r.deduplicated, similarity=r.similarity, raw=r
    )


def explanation(h: pb.SearchHit) -> types.HitExplanation | None:
    if not h.HasField("explanation"):
        return None
    e = h.explanation
    return types.HitExplanation(
        vector_score=e.vector_score if e.HasField("vector_score") else None,
        vector_rank=e.vector_rank if e.HasField("vector_rank") else None,
        keyword_score=e.keyword_score if e.HasField("keyword_score") else None,
        keyword_rank=e.keyword_rank if e.HasField("keyword_rank") else None,
        fused_score=e.fused_score if e.HasField("fused_score") else None,
        base_score=e.base_score if e.HasField("base_score") else None,
        recency_factor=e.recency_factor if e.HasField("recency_factor") else None,
        age_seconds=e.age_seconds if e.HasField("age_seconds") else None,
        importance=e.importance if e.HasField("importance") else None,
        importance_factor=e.importance_factor if e.HasField("importance_factor") else None,
        pin_factor=e.pin_factor if e.HasField("pin_factor") else None,
        reranked=e.reranked if e.HasField("reranked") else None,
        rerank_score=e.rerank_score if e.HasField("rerank_score") else None,
    )


def search_result(r: pb.SearchMemoriesResponse) -> types.SearchResult:
    return types.SearchResult(
        hits=tuple(
            types.SearchHit(memory=memory(h.memory), score=h.score, explanation=explanation(h), raw=h)
            for h in r.hits
        ),
        embedding_model=r.embedding_model,
        revision=r.revision,
        raw=r,
    )


def stream_search_result(r: pb.StreamSearchMemoriesResponse) -> types.StreamSearchResult:
    which = r.WhichOneof("outcome")
    return types.StreamSearchResult(
        query_id=r.query_id,
        result=search_result(r.result) if which == "result" else None,
        error=errors.from_status(r.error) if which == "error" else None,
        raw=r,
    )


def write_result(r: pb.WriteResult) -> types.WriteResult:
    if r.status.code != 0:
        return types.WriteResult(
            operation=None,
            error=errors.from_status(r.status),
            memory=None,
            deduplicated=False,
            similarity=0.0,
            revision=0,
            raw=r,
        )
    which = r.WhichOneof("response")
    if which == "create":
        m = memory(r.create.memory)
        return types.WriteResult(
            operation="create",
            error=None,
            memory=m,
            deduplicated=r.create.deduplicated,
            similarity=r.create.similarity,
            revision=m.revision,
            raw=r,
        )
    if which == "update":
        m = memory(r.update.memory)
        return types.WriteResult(
            operation="update",
            error=None,
            memory=m,
            deduplicated=False,
            similarity=0.0,
            revision=m.revision,
            raw=r,
        )
    return types.WriteResult(
        operation="delete" if which == "delete" else None,
        error=None,
        memory=None,
        deduplicated=False,
        similarity=0.0,
        revision=r.delete.revision,
        raw=r,
    )


def batch_write_result(r: pb.BatchWriteMemoriesResponse) -> types.BatchWriteResult:
    return types.BatchWriteResult(
        results=tuple(write_result(x) for x in r.results), revision=r.revision, raw=r
    )


def export_header(h: pb.ExportHeader) -> types.ExportHeader:
    return types.ExportHeader(
        format_version=h.format_version,
        embedding_model=h.embedding_model,
        dimension=h.dimension,
        export_time=time_from_proto(h, "export_time"),
        revision=h.revision,
        raw=h,
    )


def import_result(r: pb.ImportMemoriesResponse) -> types.ImportResult:
    return types.ImportResult(
        imported_count=r.imported_count,
        skipped_count=r.skipped_count,
        reembedded_count=r.reembedded_count,
        failed_count=r.failed_count,
        failures=tuple(
            types.ImportFailure(
                index=f.index, memory_id=f.memory_id, error=errors.from_status(f.status), raw=f
            )
            for f in r.failures
        ),
        raw=r,
    )


def delete_memories_result(r: pb.DeleteMemoriesResponse) -> types.DeleteMemoriesResult:
    return types.DeleteMemoriesResult(
        deleted_count=r.deleted_count, memory_ids=tuple(r.memory_ids), revision=r.revision, raw=r
    )


def memory_version(v: pb.MemoryVersion) -> types.MemoryVersion:
    return types.MemoryVersion(
        memory_id=v.memory_id,
        version=v.version,
        revision=v.revision,
        change_type=enum_from_proto(types.ChangeType, v.change_type),
        change_time=time_from_proto(v, "change_time"),
        api_key_id=v.api_key_id,
        before=memory(v.before) if v.HasField("before") else None,
        after=memory(v.after) if v.HasField("after") else None,
        changed_fields=tuple(v.changed_fields.paths),
        raw=v,
    )


def history_page(r: pb.GetMemoryHistoryResponse) -> types.HistoryPage:
    return types.HistoryPage(
        versions=tuple(memory_version(v) for v in r.versions),
        next_page_token=r.next_page_token,
        raw=r,
    )


def memory_page(r: pb.ListMemoriesResponse) -> types.MemoryPage:
    return types.MemoryPage(
        memories=tuple(memory(m) for m in r.memories),
        next_page_token=r.next_page_token,
        revision=r.revision,
        raw=r,
    )


def memory_event(e: pb.MemoryEvent) -> types.MemoryEvent:
    return types.MemoryEvent(
        type=enum_from_proto(types.EventType, e.type),
        revision=e.revision,
        memory_id=e.memory_id,
        memory=memory(e.memory) if e.HasField("memory") else None,
        event_time=time_from_proto(e, "event_time"),
        raw=e,
    )


# -- admin --------------------------------------------------------------------


def stats(r: admin_pb.GetStatsResponse) -> types.Stats:
    return types.Stats(
        tenants=tuple(
            types.TenantStats(
                tenant=t.tenant,
                memory_count=t.memory_count,
                content_bytes=t.content_bytes,
                scopes=tuple(
                    types.ScopeCount(
                        user_id=s.scope.user_id,
                        agent_id=s.scope.agent_id,
                        run_id=s.scope.run_id,
                        memory_count=s.memory_count,
                        raw=s,
                    )
                    for s in t.scopes
                ),
                raw=t,
            )
            for t in r.tenants
        ),
        shards=tuple(
            types.IndexShardStats(
                shard_id=s.shard_id,
                kind=enum_from_proto(types.IndexKind, s.kind),
                vector_count=s.vector_count,
                dimension=s.dimension,
                memory_bytes=s.memory_bytes,
                snapshot_revision=s.snapshot_revision,
                kind_reason=s.kind_reason,
                raw=s,
            )
            for s in r.shards
        ),
        caches=tuple(
            types.CacheStats(
                name=c.name,
                backend=c.backend,
                hits=c.hits,
                misses=c.misses,
                errors=c.errors,
                hit_rate=c.hit_rate,
                bytes=c.bytes,
                state=c.state,
                raw=c,
            )
            for c in r.caches
        ),
        revision=r.revision,
        oldest_revision=r.oldest_revision,
        embedding_model=r.embedding_model,
        dimension=r.dimension,
        retention_policies=tuple(
            types.RetentionPolicy(
                tenant=p.tenant,
                user_id=p.scope.user_id,
                agent_id=p.scope.agent_id,
                run_id=p.scope.run_id,
                max_age=duration_from_proto(p, "max_age"),
                max_count=p.max_count,
                eviction_order=enum_from_proto(types.EvictionOrder, p.eviction_order),
                raw=p,
            )
            for p in r.retention_policies
        ),
        server_version=r.server_version,
        raw=r,
    )


def consistency_report(r: admin_pb.CheckConsistencyResponse) -> types.ConsistencyReport:
    return types.ConsistencyReport(
        consistent=r.consistent,
        store_count=r.store_count,
        index_count=r.index_count,
        inconsistencies=tuple(
            types.Inconsistency(
                kind=enum_from_proto(types.InconsistencyKind, i.kind),
                memory_id=i.memory_id,
                tenant=i.tenant,
                raw=i,
            )
            for i in r.inconsistencies
        ),
        repaired_count=r.repaired_count,
        raw=r,
    )


def snapshot(r: admin_pb.CreateSnapshotResponse) -> types.Snapshot:
    return types.Snapshot(
        revision=r.revision,
        snapshot_time=time_from_proto(r, "snapshot_time"),
        bytes=r.bytes,
        shard_count=r.shard_count,
        raw=r,
    )


def reembed_progress(r: admin_pb.ReembedMemoriesResponse) -> types.ReembedProgress:
    return types.ReembedProgress(
        total_count=r.total_count,
        reembedded_count=r.reembedded_count,
        done=r.done,
        embedding_model=r.embedding_model,
        raw=r,
    )


def api_key(k: admin_pb.ApiKey) -> types.ApiKey:
    return types.ApiKey(
        id=k.id,
        tenant=k.tenant,
        role=enum_from_proto(types.ApiKeyRole, k.role),
        user_ids=tuple(k.user_ids),
        agent_ids=tuple(k.agent_ids),
        display_name=k.display_name,
        create_time=time_from_proto(k, "create_time"),
        expire_time=time_from_proto(k, "expire_time"),
        revoke_time=time_from_proto(k, "revoke_time"),
        last_use_time=time_from_proto(k, "last_use_time"),
        raw=k,
    )


def created_api_key(r: admin_pb.CreateApiKeyResponse) -> types.CreatedApiKey:
    return types.CreatedApiKey(api_key=api_key(r.api_key), secret=r.secret, raw=r)


def api_key_page(r: admin_pb.ListApiKeysResponse) -> types.ApiKeyPage:
    return types.ApiKeyPage(
        api_keys=tuple(api_key(k) for k in r.api_keys), next_page_token=r.next_page_token, raw=r
    )
