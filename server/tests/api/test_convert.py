"""api/convert.py: every proto field of the messages it maps is mapped or
deliberately skipped (with a reason), and the types that go both ways
survive the round trip.

Completeness is read from the descriptors, so a field added to the .proto
fails here until the converter maps it or SKIPPED says why not:

- proto -> domain: each example request sets every field (checked by walking
  its descriptor), and clearing any one field must change what the converter
  returns (or make it refuse the request), unless IGNORED names the field;
- domain -> proto: converting fully populated domain objects must set every
  field of every message reached, unless UNSET names it; a listed field that
  the converter does set is a stale entry and fails too.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from mnemo.v1 import admin_service_pb2 as admin_pb
from mnemo.v1 import memory_pb2 as pb
from mnemo.v1 import memory_service_pb2 as svc_pb
from mnemo_server.api import convert
from mnemo_server.cache.base import LatencySnapshot
from mnemo_server.cache.layers import LayerStats
from mnemo_server.config import RetentionRule
from mnemo_server.errors import MnemoError
from mnemo_server.feed import FeedEvent
from mnemo_server.index.base import IndexKind
from mnemo_server.models import (
    ApiKeyRecord,
    Change,
    ChangeType,
    HitExplanation,
    Link,
    Memory,
    MemoryKind,
    Scope,
    SearchHit,
    VersionRecord,
)
from mnemo_server.service import ShardStats, Stats, TenantStats
from mnemo_server.store.base import ScopeCountRow
from mnemo_server.validation import MAX_TIME_US, MIN_TIME_US

T = 1_767_225_600_123_456  # 2026-01-01T00:00:00.123456Z
#: Messages treated as values here: their own round trips are tested below.
LEAVES = frozenset(
    {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask", "mnemo.v1.Value"}
)

#: proto -> domain: fields the converter does not read, and why.
IGNORED: dict[str, str] = {
    "mnemo.v1.Memory.content_hash": "output only: the server hashes the content it stores",
    "mnemo.v1.Memory.version": "output only: the store numbers versions",
    "mnemo.v1.Memory.revision": "output only: the store takes revisions",
    "mnemo.v1.Memory.etag": "output only: derived from the stored revision",
    "mnemo.v1.Memory.create_time": "a create or update takes the server's clock (import_draft keeps it)",
    "mnemo.v1.Memory.update_time": "a create or update takes the server's clock (import_draft keeps it)",
    "mnemo.v1.Memory.last_retrieve_time": "kept by the server (import_draft keeps it)",
    "mnemo.v1.SearchMemoriesRequest.min_revision": (
        "a consistency token: the servicer waits for it (api/consistency.py) before it converts the search"
    ),
}
#: domain -> proto: fields the converter leaves unset, and why.
UNSET: dict[str, str] = {
    "mnemo.v1.SearchMemoriesResponse.revision": (
        "the revision the read reflects: the servicer sets it from its index, convert has no view of it"
    ),
}


# -- walking descriptors ----------------------------------------------------------


def _is_set(message: Message, f: FieldDescriptor) -> bool:
    if f.is_repeated:
        return len(getattr(message, f.name)) > 0
    if f.has_presence:
        return message.HasField(f.name)
    return bool(getattr(message, f.name) != f.default_value)


def _nested(message: Message, f: FieldDescriptor) -> Iterator[Message]:
    """The mnemo messages held in a field (each element of a repeated one)."""
    if f.message_type is None or f.message_type.full_name in LEAVES or f.message_type.GetOptions().map_entry:
        return
    if f.is_repeated:
        yield from getattr(message, f.name)
    elif message.HasField(f.name):
        yield getattr(message, f.name)


def set_fields(message: Message, seen: dict[str, set[str]]) -> None:
    """Adds to `seen[message type]` the fields set anywhere in `message`."""
    names = seen.setdefault(message.DESCRIPTOR.full_name, set())
    for f in message.DESCRIPTOR.fields:
        if _is_set(message, f):
            names.add(f.name)
        for inner in _nested(message, f):
            set_fields(inner, seen)


def reachable(roots: list[Descriptor]) -> dict[str, Descriptor]:
    """Every mnemo message type reachable from `roots` through fields."""
    found: dict[str, Descriptor] = {}
    todo = list(roots)
    while todo:
        d = todo.pop()
        if d.full_name in found or d.full_name in LEAVES or d.GetOptions().map_entry:
            continue
        found[d.full_name] = d
        todo.extend(f.message_type for f in d.fields if f.message_type is not None)
    return found


def unmapped(seen: dict[str, set[str]], types: dict[str, Descriptor], listed: dict[str, str]) -> list[str]:
    return sorted(
        f"{name}.{f.name}"
        for name, d in types.items()
        for f in d.fields
        if f.name not in seen.get(name, set()) and f"{name}.{f.name}" not in listed
    )


# -- proto -> domain ----------------------------------------------------------------


def full_memory_message() -> pb.Memory:
    m = pb.Memory(
        id="m-1",
        user_id="alice",
        agent_id="bot",
        run_id="run-1",
        content="likes green tea",
        kind=pb.MEMORY_KIND_SEMANTIC,
        tags=["drink", "pref"],
        embedding=[0.25, -0.5, 1.0],
        embedding_model="model-x",
        content_hash="sha256:ignored",
        version=4,
        revision=9,
        etag="W/9",
        pinned=True,
    )
    m.metadata["n"].int_value = 3
    m.metadata["nested"].struct_value.fields["ok"].bool_value = True
    m.links.add(target_id="m-0", relation="derived_from", weight=0.5)
    convert.us_to_timestamp(T, m.create_time)
    convert.us_to_timestamp(T + 1, m.update_time)
    convert.us_to_timestamp(T + 10**9, m.expire_time)
    convert.us_to_timestamp(T + 2, m.last_retrieve_time)
    return m


def create_request() -> svc_pb.CreateMemoryRequest:
    request = svc_pb.CreateMemoryRequest(request_id="req-1")
    request.memory.CopyFrom(full_memory_message())
    request.ttl.FromSeconds(3600)
    request.dedup.mode = svc_pb.DEDUP_MODE_SEMANTIC
    request.dedup.similarity_threshold = 0.8
    request.dedup.merge = True
    return request


def update_request() -> svc_pb.UpdateMemoryRequest:
    request = svc_pb.UpdateMemoryRequest(etag="W/9", request_id="req-2")
    request.memory.CopyFrom(full_memory_message())
    request.update_mask.paths.extend(["content", "tags"])
    request.ttl.FromSeconds(60)
    return request


def delete_request() -> svc_pb.DeleteMemoryRequest:
    return svc_pb.DeleteMemoryRequest(id="m-1", etag="W/9", request_id="req-3")


def search_request() -> svc_pb.SearchMemoriesRequest:
    request = svc_pb.SearchMemoriesRequest(
        query="tea",
        vector=[0.5, 0.5],
        filter='kind = "SEMANTIC"',
        top_k=7,
        min_score=0.25,
        include_embedding=True,
        mode=svc_pb.SEARCH_MODE_HYBRID,
        rrf_k=30,
        explain=True,
        recency_half_life_seconds=3600.0,
        recency_basis=svc_pb.RECENCY_BASIS_CREATE_TIME,
        recency_weight=0.5,
        importance_key="importance",
        importance_weight=2.0,
        pin_boost=1.0,
        rerank=True,
        min_revision=12,
    )
    request.scope.user_id, request.scope.agent_id, request.scope.run_id = "alice", "bot", "run-1"
    return request


def write_operations() -> list[svc_pb.WriteOperation]:
    return [
        svc_pb.WriteOperation(create=create_request()),
        svc_pb.WriteOperation(update=update_request()),
        svc_pb.WriteOperation(delete=delete_request()),
    ]


#: Import keeps an export's times: for it these fields are read, not ignored.
READ_BY_IMPORT = frozenset(
    {"mnemo.v1.Memory.create_time", "mnemo.v1.Memory.update_time", "mnemo.v1.Memory.last_retrieve_time"}
)

#: (example request, the converter that decodes it, the fields it ignores)
DECODERS: list[tuple[Message, Callable[[Any], Any], frozenset[str]]] = [
    (create_request(), lambda r: convert.create_op(r, ""), frozenset(IGNORED)),
    (update_request(), lambda r: convert.update_op(r, ""), frozenset(IGNORED)),
    (delete_request(), lambda r: convert.delete_op(r, ""), frozenset(IGNORED)),
    (search_request(), lambda r: convert.search_from_proto(r, ""), frozenset(IGNORED)),
    (full_memory_message(), lambda r: convert.import_draft(r, "memory"), frozenset(IGNORED) - READ_BY_IMPORT),
    (pb.Scope(user_id="alice", agent_id="bot", run_id="run-1"), convert.scope_from_proto, frozenset(IGNORED)),
    *((op, lambda r: convert.write_op_from_proto(r, "op"), frozenset(IGNORED)) for op in write_operations()),
]


def plain(value: Any) -> Any:
    """A decoded value in a form == compares (arrays as lists, dataclasses as dicts)."""
    if isinstance(value, np.ndarray):
        return ("array", value.tolist())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            type(value).__name__,
            {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)},
        )
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return (type(value).__name__, value.value)
    return value


def decoded(decode: Callable[[Any], Any], message: Message) -> Any:
    try:
        return plain(decode(message))
    except MnemoError as exc:  # a required field cleared: the converter read it
        return ("refused", exc.reason)


def paths(message: Message, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """(path to a set field, its full name), through nested mnemo messages."""
    for f in message.DESCRIPTOR.fields:
        if not _is_set(message, f):
            continue
        yield (*prefix, f.name), f"{message.DESCRIPTOR.full_name}.{f.name}"
        if not f.is_repeated:
            for inner in _nested(message, f):
                yield from paths(inner, (*prefix, f.name))


def cleared(message: Message, path: tuple[str, ...]) -> Message:
    out = copy.deepcopy(message)
    target = out
    for name in path[:-1]:
        target = getattr(target, name)
    target.ClearField(path[-1])
    return out


def test_every_request_field_is_decoded_or_ignored_for_a_reason() -> None:
    types = reachable([m.DESCRIPTOR for m, _, _ in DECODERS])
    seen: dict[str, set[str]] = {}
    for message, _, _ in DECODERS:
        set_fields(message, seen)
    # The examples must set every field; a new one fails here until it is added.
    assert unmapped(seen, types, {}) == []
    unread = []
    for message, decode, ignored in DECODERS:
        full = decoded(decode, message)
        for path, name in paths(message):
            if name in ignored:
                continue
            if decoded(decode, cleared(message, path)) == full:
                unread.append(f"{'.'.join(path)} ({name})")
    assert unread == [], "fields the converter does not read; map them or add them to IGNORED"


def test_ignored_fields_really_are_ignored() -> None:
    stale = []
    for message, decode, ignored in DECODERS:
        full = decoded(decode, message)
        for path, name in paths(message):
            if name in ignored and decoded(decode, cleared(message, path)) != full:
                stale.append(name)
    assert stale == []


def test_import_keeps_what_a_create_ignores() -> None:
    draft = convert.import_draft(full_memory_message(), "memory")
    assert (draft.create_time_us, draft.update_time_us, draft.last_retrieve_time_us) == (T, T + 1, T + 2)


def test_decoded_values_are_the_requested_ones() -> None:
    op = convert.create_op(create_request(), "")
    draft = op.draft
    assert (draft.id, draft.scope, draft.content, draft.kind) == (
        "m-1",
        Scope("alice", "bot", "run-1"),
        "likes green tea",
        MemoryKind.SEMANTIC,
    )
    assert draft.tags == ("drink", "pref") and draft.pinned
    assert draft.metadata == {"n": 3, "nested": {"ok": True}}
    assert draft.links == (Link("m-0", "derived_from", 0.5),)
    assert np.asarray(draft.embedding).tolist() == [0.25, -0.5, 1.0]
    assert (draft.embedding_model, draft.expire_time_us, draft.ttl_us) == ("model-x", T + 10**9, 3600 * 10**6)
    assert (op.request_id, op.dedup.threshold, op.dedup.merge) == ("req-1", pytest.approx(0.8), True)
    query = convert.search_from_proto(search_request(), "")
    assert (query.text, query.top_k, query.min_score, query.rrf_k, query.explain) == (
        "tea",
        7,
        0.25,
        30,
        True,
    )


# -- domain -> proto ----------------------------------------------------------------


def full_memory(**changes: Any) -> Memory:
    m = Memory(
        tenant="t1",
        id="m-1",
        scope=Scope("alice", "bot", "run-1"),
        content="likes green tea",
        kind=MemoryKind.PROCEDURAL,
        tags=("drink",),
        metadata={"n": 3, "f": 0.5, "s": "x", "b": False, "none": None, "l": [1, "a"], "o": {"k": 2}},
        links=(Link("m-0", "derived_from", 0.5),),
        pinned=True,
        embedding_model="model-x",
        content_hash="sha256:abc",
        create_time_us=T,
        update_time_us=T + 1,
        expire_time_us=T + 10**9,
        last_retrieve_time_us=T + 2,
        version=3,
        revision=8,
        key=5,
        embedding=np.array([0.25, -0.5], dtype=np.float32),
    )
    return dataclasses.replace(m, **changes)


def encoded() -> list[Message]:
    """Every message convert builds, from domain objects with every field set."""
    memory = convert.memory_to_proto(full_memory(), pb.Memory(), embedding=True)
    version = svc_pb.MemoryVersion()
    convert.version_to_proto(
        VersionRecord("m-1", 3, 8, ChangeType.UPDATE, T, "key-1", full_memory(), full_memory(), ("content",)),
        version,
    )
    explanation = HitExplanation(
        vector_score=0.9,
        vector_rank=1,
        keyword_score=2.5,
        keyword_rank=2,
        fused_score=0.03,
        base_score=0.5,
        recency_factor=0.25,
        age_seconds=7200.0,
        importance=0.5,
        importance_factor=2.0,
        pin_factor=1.5,
        reranked=True,
        rerank_score=0.75,
    )
    search = convert.search_result_to_proto(
        [SearchHit(full_memory(), 0.75, explanation)], "model-x", include_embedding=True
    )
    stats = convert.stats_to_proto(
        Stats(
            tenants=[TenantStats("t1", 2, 30, [ScopeCountRow("t1", Scope("alice", "bot", "run-1"), 2)])],
            shards=[ShardStats("t1/0", IndexKind.HNSW, 2, 8, 4096, 7, "above ann_threshold")],
            caches=[LayerStats("search", "local", "ok", 3, 1, 1, 100, LatencySnapshot(0, 0.0, ()))],
            revision=8,
            oldest_revision=1,
            embedding_model="model-x",
            dimension=8,
            retention=(
                RetentionRule(
                    tenant="t1",
                    user_id="alice",
                    agent_id="bot",
                    run_id="run-1",
                    max_age_s=86400.0,
                    max_count=10,
                    eviction="least_recently_retrieved",
                ),
            ),
        )
    )
    event = svc_pb.MemoryEvent()
    change = Change(8, "t1", "m-1", 5, ChangeType.UPDATE, Scope("alice", "bot", "run-1"), T)
    convert.event_to_proto(FeedEvent(change, full_memory()), event)
    key = admin_pb.ApiKey()
    convert.api_key_to_proto(
        ApiKeyRecord(
            "k-1", "t1", "writer", ("alice",), ("bot",), "ci", T, b"salt", b"hash", T + 9, T + 5, T + 3
        ),
        key,
    )
    return [memory, version, search, stats, event, key]


def test_every_response_field_is_encoded_or_unset_for_a_reason() -> None:
    messages = encoded()
    seen: dict[str, set[str]] = {}
    for message in messages:
        set_fields(message, seen)
    types = reachable([m.DESCRIPTOR for m in messages])
    assert unmapped(seen, types, UNSET) == [], "fields convert never sets; map them or add them to UNSET"
    stale = [name for name in UNSET if name.rpartition(".")[2] in seen.get(name.rpartition(".")[0], set())]
    assert stale == []


def test_a_read_mask_keeps_only_its_fields_and_the_id() -> None:
    fields = convert.read_mask_fields(field_mask_pb2.FieldMask(paths=["content", "tags"]), "read_mask")
    out = convert.memory_to_proto(full_memory(), pb.Memory(), fields=fields)
    assert {f.name for f, _ in out.ListFields()} == {"id", "content", "tags"}


# -- round trips --------------------------------------------------------------------

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
SCALARS = st.none() | st.booleans() | INT64 | st.floats(allow_nan=False, allow_infinity=False) | st.text()
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
)


def _typed(value: Any) -> Any:
    """A value with each scalar's type beside it (True == 1 == 1.0 otherwise)."""
    if isinstance(value, list):
        return ["list", [_typed(v) for v in value]]
    if isinstance(value, dict):
        return ["dict", {k: _typed(v) for k, v in value.items()}]
    return [type(value).__name__, value]


@settings(max_examples=200, deadline=None)
@given(VALUES)
def test_metadata_values_round_trip_with_their_types(value: Any) -> None:
    message = pb.Value()
    convert.python_to_value(value, message)
    back = convert.value_to_python(pb.Value.FromString(message.SerializeToString()), "metadata.x")
    assert _typed(back) == _typed(value)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=MIN_TIME_US, max_value=MAX_TIME_US))
def test_timestamps_round_trip_to_the_microsecond(us: int) -> None:
    stamp = pb.Memory().create_time
    convert.us_to_timestamp(us, stamp)
    assert 0 <= stamp.nanos <= 999_999_999
    assert convert.timestamp_to_us(stamp, "t") == us


@given(st.text(), st.text(), st.text())
def test_scopes_round_trip(user: str, agent: str, run: str) -> None:
    out = pb.Scope()
    convert.scope_to_proto(Scope(user, agent, run), out)
    assert convert.scope_from_proto(out) == Scope(user, agent, run)


def test_a_memory_round_trips_through_export_and_import() -> None:
    memory = full_memory()
    message = convert.memory_to_proto(memory, pb.Memory(), embedding=True)
    draft = convert.import_draft(pb.Memory.FromString(message.SerializeToString()), "memory")
    assert (draft.id, draft.scope, draft.content, draft.kind, draft.tags, draft.pinned) == (
        memory.id,
        memory.scope,
        memory.content,
        memory.kind,
        memory.tags,
        memory.pinned,
    )
    assert draft.metadata == memory.metadata and draft.links == memory.links
    assert np.asarray(draft.embedding).tobytes() == memory.embedding.tobytes()  # type: ignore[union-attr]
    assert draft.embedding_model == memory.embedding_model
    assert (
        draft.create_time_us,
        draft.update_time_us,
        draft.expire_time_us,
        draft.last_retrieve_time_us,
    ) == (
        memory.create_time_us,
        memory.update_time_us,
        memory.expire_time_us,
        memory.last_retrieve_time_us,
    )


def test_a_message_round_trips_through_import_and_export() -> None:
    original = full_memory_message()
    draft = convert.import_draft(original, "memory")
    memory = Memory(
        tenant="t1",
        id=draft.id,
        scope=draft.scope,
        content=draft.content,
        kind=draft.kind,
        tags=draft.tags,
        metadata=draft.metadata,
        links=draft.links,
        pinned=draft.pinned,
        embedding_model=draft.embedding_model,
        content_hash=original.content_hash,
        create_time_us=draft.create_time_us or 0,
        update_time_us=draft.update_time_us or 0,
        expire_time_us=draft.expire_time_us,
        last_retrieve_time_us=draft.last_retrieve_time_us,
        version=original.version,
        revision=original.revision,
        embedding=np.asarray(draft.embedding, dtype=np.float32),
    )
    back = convert.memory_to_proto(memory, pb.Memory(), embedding=True)
    back.etag = original.etag  # derived from the revision, not carried
    assert back == original


def test_search_hits_from_serialized_memories_equal_the_field_by_field_encoding() -> None:
    memory = full_memory()
    hit = SearchHit(memory, 0.5)
    direct = svc_pb.SearchMemoriesResponse(embedding_model="m")
    convert.memory_to_proto(memory, direct.hits.add(score=0.5).memory)
    assert convert.search_result_to_proto([hit], "m", include_embedding=False) == direct
    assert convert.search_result_to_proto([hit], "m", include_embedding=False) == direct  # cached
    # A change is a new revision: never the bytes of the memory as it was.
    changed = dataclasses.replace(memory, content="changed", revision=memory.revision + 1)
    again = convert.search_result_to_proto([SearchHit(changed, 0.5)], "m", include_embedding=False)
    assert again.hits[0].memory.content == "changed"
    touched = dataclasses.replace(memory, last_retrieve_time_us=(memory.last_retrieve_time_us or 0) + 1)
    shown = convert.search_result_to_proto([SearchHit(touched, 0.5)], "m", include_embedding=False)
    assert shown.hits[0].memory.last_retrieve_time != direct.hits[0].memory.last_retrieve_time
