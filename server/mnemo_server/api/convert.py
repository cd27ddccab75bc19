"""proto <-> domain: every *_to_proto and *_from_proto. Besides this module
only the servicers (api/memory.py, streams.py, admin.py, stream_search.py)
and api/server.py touch generated messages; no validation beyond what
decoding itself needs."""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2

from mnemo._core import values
from mnemo.v1 import admin_service_pb2 as admin_pb
from mnemo.v1 import memory_pb2 as pb
from mnemo.v1 import memory_service_pb2 as svc_pb
from mnemo_server.errors import invalid
from mnemo_server.feed import FeedEvent
from mnemo_server.models import (
    ApiKeyRecord,
    ChangeType,
    HitExplanation,
    Link,
    Memory,
    MemoryKind,
    Scope,
    SearchHit,
    Vector,
    VersionRecord,
)
from mnemo_server.service.types import (
    Adjustments,
    DedupMode,
    DedupPolicy,
    MemoryDraft,
    RecencyBasis,
    SearchMode,
    SearchQuery,
    ShardStats,
    Stats,
    WriteOp,
)
from mnemo_server.validation import MAX_DURATION_S, check_time_us

#: Fields of Memory that a read mask may name.
MEMORY_FIELDS = frozenset(pb.Memory.DESCRIPTOR.fields_by_name)


# -- values -------------------------------------------------------------------


def value_to_python(value: pb.Value, field: str) -> Any:
    """A client's metadata value; INVALID_ARGUMENT on `field` where the shared codec
    (mnemo._core.values, also the SDK's) refuses it."""
    try:
        return values.from_value(value, path=field)
    except values.MetadataValueError as exc:
        raise invalid("INVALID_ARGUMENT", exc.field, exc.description) from None


def python_to_value(obj: Any, out: pb.Value) -> None:
    values.to_value(obj, out)


def metadata_from_proto(metadata: Mapping[str, pb.Value], field: str) -> dict[str, Any]:
    return {key: value_to_python(value, f"{field}.{key}") for key, value in metadata.items()}


# -- times --------------------------------------------------------------------


def us_to_timestamp(us: int, out: timestamp_pb2.Timestamp) -> None:
    out.seconds, micros = divmod(us, 1_000_000)
    out.nanos = micros * 1000


def timestamp_to_us(ts: timestamp_pb2.Timestamp, field: str) -> int:
    """A client's Timestamp in microseconds; INVALID_TIME outside the RFC 3339 range."""
    if not 0 <= ts.nanos <= 999_999_999:
        raise invalid("INVALID_TIME", field, "nanos must lie in [0, 999999999]")
    return check_time_us(ts.seconds * 1_000_000 + ts.nanos // 1000, field)


def duration_to_us(duration: duration_pb2.Duration, field: str) -> int:
    """A client's Duration in microseconds; INVALID_TIME outside Duration's
    documented range (about 10,000 years) or with nanos of the wrong sign."""
    seconds, nanos = duration.seconds, duration.nanos
    if (
        abs(seconds) > MAX_DURATION_S
        or not -999_999_999 <= nanos <= 999_999_999
        or (seconds > 0 and nanos < 0)
        or (seconds < 0 and nanos > 0)
    ):
        raise invalid("INVALID_TIME", field, f"must be a Duration of at most {MAX_DURATION_S} seconds")
    return seconds * 1_000_000 + int(nanos / 1000)


# -- memories -----------------------------------------------------------------


def kind_from_proto(value: int, field: str) -> MemoryKind:
    if value == pb.MEMORY_KIND_UNSPECIFIED:
        return MemoryKind.EPISODIC
    try:
        return MemoryKind(value)
    except ValueError:
        raise invalid("INVALID_ENUM_VALUE", field, f"unknown memory kind {value}") from None


def join(prefix: str, name: str) -> str:
    """A field path: "memory" under "" is "memory", under "operations[2].create" it is
    "operations[2].create.memory"."""
    return f"{prefix}.{name}" if prefix else name


def _vector(values: Any) -> Vector | None:
    """A repeated float as an array: about 100 times faster than a list (a
    request of a million floats takes half a millisecond, not 60, of the
    event loop); its length and values are checked by the service."""
    return np.array(values, dtype=np.float32) if len(values) else None


def draft_from_proto(
    memory: pb.Memory, *, field: str, ttl: duration_pb2.Duration | None = None, ttl_field: str = "ttl"
) -> MemoryDraft:
    """A create's or update's memory, decoded; `field` prefixes violations."""
    ttl_us = duration_to_us(ttl, ttl_field) if ttl is not None else None
    return MemoryDraft(
        id=memory.id,
        scope=Scope(memory.user_id, memory.agent_id, memory.run_id),
        content=memory.content,
        kind=kind_from_proto(memory.kind, f"{field}.kind"),
        tags=tuple(memory.tags),
        metadata=metadata_from_proto(memory.metadata, f"{field}.metadata"),
        links=tuple(Link(link.target_id, link.relation, link.weight) for link in memory.links),
        pinned=memory.pinned,
        embedding=_vector(memory.embedding),
        embedding_model=memory.embedding_model,
        expire_time_us=(
            timestamp_to_us(memory.expire_time, f"{field}.expire_time")
            if memory.HasField("expire_time")
            else None
        ),
        ttl_us=ttl_us,
    )


def read_mask_fields(mask: field_mask_pb2.FieldMask | None, field: str) -> frozenset[str] | None:
    """The set of Memory fields a read mask names; None means the default."""
    if mask is None or not mask.paths:
        return None
    unknown = [p for p in mask.paths if p not in MEMORY_FIELDS]
    if unknown:
        raise invalid("INVALID_FIELD_MASK", field, f"unknown Memory fields: {', '.join(unknown)}")
    return frozenset(mask.paths) | {"id"}


def memory_to_proto(
    memory: Memory, out: pb.Memory, *, fields: frozenset[str] | None = None, embedding: bool = False
) -> pb.Memory:
    """Fills `out`. `fields` restricts the output (read masks); `embedding`
    (or "embedding" in `fields`) adds the vector."""
    want = (lambda name: True) if fields is None else fields.__contains__
    out.id = memory.id
    if want("user_id"):
        out.user_id = memory.scope.user_id
    if want("agent_id"):
        out.agent_id = memory.scope.agent_id
    if want("run_id"):
        out.run_id = memory.scope.run_id
    if want("content"):
        out.content = memory.content
    if want("kind"):
        out.kind = int(memory.kind)  # type: ignore[assignment]
    if want("tags"):
        out.tags.extend(memory.tags)
    if want("metadata"):
        for key, value in memory.metadata.items():
            python_to_value(value, out.metadata[key])
    if (embedding or (fields is not None and "embedding" in fields)) and memory.embedding is not None:
        out.embedding.extend(memory.embedding.tolist())
    if want("embedding_model"):
        out.embedding_model = memory.embedding_model
    if want("content_hash"):
        out.content_hash = memory.content_hash
    if want("create_time"):
        us_to_timestamp(memory.create_time_us, out.create_time)
    if want("update_time"):
        us_to_timestamp(memory.update_time_us, out.update_time)
    if want("expire_time") and memory.expire_time_us is not None:
        us_to_timestamp(memory.expire_time_us, out.expire_time)
    if want("version"):
        out.version = memory.version
    if want("revision"):
        out.revision = memory.revision
    if want("etag"):
        out.etag = memory.etag
    if want("links"):
        for link in memory.links:
            out.links.add(target_id=link.target_id, relation=link.relation, weight=link.weight)
    if want("pinned"):
        out.pinned = memory.pinned
    if want("last_retrieve_time") and memory.last_retrieve_time_us is not None:
        us_to_timestamp(memory.last_retrieve_time_us, out.last_retrieve_time)
    return out


def scope_from_proto(scope: pb.Scope) -> Scope:
    return Scope(scope.user_id, scope.agent_id, scope.run_id)


def scope_to_proto(scope: Scope, out: pb.Scope) -> None:
    out.user_id, out.agent_id, out.run_id = scope.user_id, scope.agent_id, scope.run_id


# -- requests -----------------------------------------------------------------


def dedup_from_proto(dedup: svc_pb.DedupPolicy, field: str) -> DedupPolicy:
    if dedup.mode not in svc_pb.DedupMode.values():
        raise invalid("INVALID_ENUM_VALUE", f"{field}.mode", f"unknown dedup mode {dedup.mode}")
    mode = {
        svc_pb.DEDUP_MODE_UNSPECIFIED: DedupMode.NONE,
        svc_pb.DEDUP_MODE_NONE: DedupMode.NONE,
        svc_pb.DEDUP_MODE_EXACT: DedupMode.EXACT,
        svc_pb.DEDUP_MODE_SEMANTIC: DedupMode.SEMANTIC,
    }[dedup.mode]
    threshold = dedup.similarity_threshold or 0.9
    if not 0.0 <= threshold <= 1.0 or math.isnan(threshold):
        raise invalid("INVALID_ARGUMENT", f"{field}.similarity_threshold", "must lie in [0, 1]")
    return DedupPolicy(mode=mode, threshold=threshold, merge=dedup.merge)


def create_op(request: svc_pb.CreateMemoryRequest, field: str) -> WriteOp:
    if not request.HasField("memory"):
        raise invalid("INVALID_ARGUMENT", join(field, "memory"), "is required")
    return WriteOp(
        kind="create",
        draft=draft_from_proto(
            request.memory,
            field=join(field, "memory"),
            ttl=request.ttl if request.HasField("ttl") else None,
            ttl_field=join(field, "ttl"),
        ),
        request_id=request.request_id,
        dedup=dedup_from_proto(request.dedup, join(field, "dedup")),
        field=field,
    )


def update_op(request: svc_pb.UpdateMemoryRequest, field: str) -> WriteOp:
    if not request.HasField("memory"):
        raise invalid("INVALID_ARGUMENT", join(field, "memory"), "is required")
    return WriteOp(
        kind="update",
        memory_id=request.memory.id,
        draft=draft_from_proto(
            request.memory,
            field=join(field, "memory"),
            ttl=request.ttl if request.HasField("ttl") else None,
            ttl_field=join(field, "ttl"),
        ),
        update_mask=tuple(request.update_mask.paths),
        etag=request.etag,
        request_id=request.request_id,
        field=field,
    )


def delete_op(request: svc_pb.DeleteMemoryRequest, field: str) -> WriteOp:
    return WriteOp(
        kind="delete", memory_id=request.id, etag=request.etag, request_id=request.request_id, field=field
    )


def write_op_from_proto(op: svc_pb.WriteOperation, field: str) -> WriteOp:
    which = op.WhichOneof("operation")
    if which == "create":
        return create_op(op.create, join(field, "create"))
    if which == "update":
        return update_op(op.update, join(field, "update"))
    if which == "delete":
        return delete_op(op.delete, join(field, "delete"))
    raise invalid("INVALID_ARGUMENT", field, "one of create, update or delete is required")


_SEARCH_MODES = {
    svc_pb.SEARCH_MODE_UNSPECIFIED: SearchMode.VECTOR,
    svc_pb.SEARCH_MODE_VECTOR: SearchMode.VECTOR,
    svc_pb.SEARCH_MODE_KEYWORD: SearchMode.KEYWORD,
    svc_pb.SEARCH_MODE_HYBRID: SearchMode.HYBRID,
}


def search_from_proto(request: svc_pb.SearchMemoriesRequest, field: str) -> SearchQuery:
    mode = _SEARCH_MODES.get(request.mode)
    if mode is None:
        raise invalid("INVALID_ENUM_VALUE", join(field, "mode"), f"unknown search mode {request.mode}")
    return SearchQuery(
        text=request.query,
        vector=_vector(request.vector),
        scope=scope_from_proto(request.scope),
        filter=request.filter,
        top_k=request.top_k,
        min_score=request.min_score if request.HasField("min_score") else None,
        include_embedding=request.include_embedding,
        field=field,
        mode=mode,
        rrf_k=request.rrf_k if request.HasField("rrf_k") else None,
        explain=request.explain,
        adjustments=_adjustments(request, field),
        rerank=request.rerank if request.HasField("rerank") else None,
    )


_RECENCY_BASES = {
    svc_pb.RECENCY_BASIS_UNSPECIFIED: None,
    svc_pb.RECENCY_BASIS_CREATE_TIME: RecencyBasis.CREATE_TIME,
    svc_pb.RECENCY_BASIS_UPDATE_TIME: RecencyBasis.UPDATE_TIME,
    svc_pb.RECENCY_BASIS_LAST_RETRIEVE_TIME: RecencyBasis.LAST_RETRIEVE_TIME,
}


def _adjustments(request: svc_pb.SearchMemoriesRequest, field: str) -> Adjustments:
    if request.recency_basis not in _RECENCY_BASES:
        raise invalid(
            "INVALID_RECENCY_DECAY",
            join(field, "recency_basis"),
            f"unknown recency basis {request.recency_basis}",
        )
    has = request.HasField
    return Adjustments(
        recency_half_life_s=(request.recency_half_life_seconds if has("recency_half_life_seconds") else None),
        recency_basis=_RECENCY_BASES[request.recency_basis],
        recency_weight=request.recency_weight if has("recency_weight") else None,
        importance_key=request.importance_key,
        importance_weight=request.importance_weight if has("importance_weight") else None,
        pin_boost=request.pin_boost if has("pin_boost") else None,
    )


#: Serialized memories (no embedding) of recent search hits, by (tenant, id,
#: revision, last retrieval): every change to a memory has a new revision, so
#: an entry never shows a memory other than as it is. Parsing these bytes is
#: several times cheaper than building the message field by field.
_SERIALIZED: dict[tuple[str, str, int, int | None], bytes] = {}
SERIALIZED_MEMORIES = 50_000


def serialized_memory(memory: Memory) -> bytes:
    """`memory_to_proto(memory)` serialized, without the embedding."""
    key = (memory.tenant, memory.id, memory.revision, memory.last_retrieve_time_us)
    found = _SERIALIZED.get(key)
    if found is None:
        found = memory_to_proto(memory, pb.Memory()).SerializeToString()
        if len(_SERIALIZED) >= SERIALIZED_MEMORIES:
            _SERIALIZED.pop(next(iter(_SERIALIZED), key), None)  # the oldest
        _SERIALIZED[key] = found
    return found


def search_result_to_proto(
    hits: Sequence[SearchHit], model: str, *, include_embedding: bool
) -> svc_pb.SearchMemoriesResponse:
    response = svc_pb.SearchMemoriesResponse(embedding_model=model)
    for hit in hits:
        out = response.hits.add(score=hit.score)
        if include_embedding:
            memory_to_proto(hit.memory, out.memory, embedding=True)
        else:
            out.memory.MergeFromString(serialized_memory(hit.memory))
        if hit.explanation is not None:
            explanation_to_proto(hit.explanation, out.explanation)
    return response


def explanation_to_proto(explanation: HitExplanation, out: svc_pb.HitExplanation) -> None:
    out.SetInParent()  # present even when no part is set
    if explanation.vector_score is not None:
        out.vector_score = explanation.vector_score
    if explanation.vector_rank is not None:
        out.vector_rank = explanation.vector_rank
    if explanation.keyword_score is not None:
        out.keyword_score = explanation.keyword_score
    if explanation.keyword_rank is not None:
        out.keyword_rank = explanation.keyword_rank
    if explanation.fused_score is not None:
        out.fused_score = explanation.fused_score
    for name in _ADJUSTMENT_PARTS:
        value = getattr(explanation, name)
        if value is not None:
            setattr(out, name, value)


_ADJUSTMENT_PARTS = (
    "base_score",
    "recency_factor",
    "age_seconds",
    "importance",
    "importance_factor",
    "pin_factor",
    "reranked",
    "rerank_score",
)


def version_to_proto(record: VersionRecord, out: svc_pb.MemoryVersion) -> None:
    out.memory_id = record.memory_id
    out.version = record.version
    out.revision = record.revision
    out.change_type = int(record.change_type)  # type: ignore[assignment]
    us_to_timestamp(record.time_us, out.change_time)
    out.api_key_id = record.api_key_id
    if record.before is not None:
        memory_to_proto(record.before, out.before)
    if record.after is not None:
        memory_to_proto(record.after, out.after)
    out.changed_fields.paths.extend(record.changed_fields)


def stats_to_proto(stats: Stats) -> admin_pb.GetStatsResponse:
    response = admin_pb.GetStatsResponse(
        revision=stats.revision,
        oldest_revision=stats.oldest_revision,
        embedding_model=stats.embedding_model,
        dimension=stats.dimension,
        server_version=stats.server_version,
    )
    for tenant in stats.tenants:
        out = response.tenants.add(
            tenant=tenant.tenant, memory_count=tenant.memory_count, content_bytes=tenant.content_bytes
        )
        for row in tenant.scopes:
            scope_count = out.scopes.add(memory_count=row.memory_count)
            scope_to_proto(row.scope, scope_count.scope)
    for shard in stats.shards:
        response.shards.append(shard_to_proto(shard))
    for cache in stats.caches:
        response.caches.add(
            name=cache.name,
            backend=cache.backend,
            hits=cache.hits,
            misses=cache.misses,
            errors=cache.errors,
            hit_rate=cache.hit_rate,
            bytes=cache.bytes,
            state=cache.state,
        )
    for rule in stats.retention:
        policy = response.retention_policies.add(
            tenant=rule.tenant,
            max_count=rule.max_count,
            eviction_order=admin_pb.EVICTION_ORDER_LEAST_RECENTLY_RETRIEVED
            if rule.eviction == "least_recently_retrieved"
            else admin_pb.EVICTION_ORDER_OLDEST,
        )
        scope_to_proto(Scope(rule.user_id, rule.agent_id, rule.run_id), policy.scope)
        if rule.max_age_s:
            policy.max_age.FromNanoseconds(int(rule.max_age_s * 1e9))
    return response


def shard_to_proto(shard: ShardStats) -> admin_pb.IndexShardStats:
    return admin_pb.IndexShardStats(
        shard_id=shard.shard_id,
        kind=int(shard.kind),  # type: ignore[arg-type]
        vector_count=shard.vector_count,
        dimension=shard.dimension,
        memory_bytes=shard.memory_bytes,
        snapshot_revision=shard.snapshot_revision,
        kind_reason=shard.kind_reason,
    )


# -- lifecycle ------------------------------------------------------------------


def api_key_to_proto(record: ApiKeyRecord, out: admin_pb.ApiKey) -> None:
    """An API key without its secret or hash."""
    out.id = record.id
    out.tenant = record.tenant
    out.role = admin_pb.ApiKeyRole.Value(f"API_KEY_ROLE_{record.role.upper()}")  # type: ignore[assignment]
    out.user_ids.extend(record.user_ids)
    out.agent_ids.extend(record.agent_ids)
    out.display_name = record.display_name
    us_to_timestamp(record.create_time_us, out.create_time)
    for value, stamp in (
        (record.expire_time_us, out.expire_time),
        (record.revoke_time_us, out.revoke_time),
        (record.last_use_time_us, out.last_use_time),
    ):
        if value is not None:
            us_to_timestamp(value, stamp)


EVENT_TYPES = {
    ChangeType.CREATE: svc_pb.EVENT_TYPE_PUT,
    ChangeType.UPDATE: svc_pb.EVENT_TYPE_PUT,
    ChangeType.DELETE: svc_pb.EVENT_TYPE_DELETE,
    ChangeType.EXPIRE: svc_pb.EVENT_TYPE_EXPIRED,
}


def event_to_proto(event: FeedEvent, out: svc_pb.MemoryEvent) -> None:
    change = event.change
    out.type = EVENT_TYPES[change.change_type]
    out.revision = change.revision
    out.memory_id = change.memory_id
    us_to_timestamp(change.time_us, out.event_time)
    if out.type == svc_pb.EVENT_TYPE_PUT and event.memory is not None:
        memory_to_proto(event.memory, out.memory)
    else:
        # A deleted or expired memory is shown by id and scope only.
        out.memory.id = change.memory_id
        out.memory.user_id = change.scope.user_id
        out.memory.agent_id = change.scope.agent_id
        out.memory.run_id = change.scope.run_id


def import_draft(memory: pb.Memory, field: str) -> MemoryDraft:
    """An exported memory as a create draft, keeping its id and times."""
    draft = draft_from_proto(memory, field=field)
    return dataclasses.replace(
        draft,
        id=memory.id or uuid.uuid4().hex,
        create_time_us=(
            timestamp_to_us(memory.create_time, f"{field}.create_time")
            if memory.HasField("create_time")
            else None
        ),
        update_time_us=(
            timestamp_to_us(memory.update_time, f"{field}.update_time")
            if memory.HasField("update_time")
            else None
        ),
        last_retrieve_time_us=(
            timestamp_to_us(memory.last_retrieve_time, f"{field}.last_retrieve_time")
            if memory.HasField("last_retrieve_time")
            else None
        ),
    )
