"""Rows <-> domain values for the SQLite store.

JSON columns use the json module both ways, so ints stay ints (exact to 64
bits), floats stay floats and strings keep every character. Keys are written
unescaped (ensure_ascii=False) because SQLite's JSON paths match the raw
text of a stored key (see filters/literals.check_key). Embeddings are little-endian
float32 bytes.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import numpy as np

from mnemo_server.models import Change, ChangeType, Link, Memory, MemoryKind, Scope, Vector
from mnemo_server.store.base import StoredOutcome

#: The memories columns, in the order row_to_memory reads them.
COLUMNS: Final = (
    "key",
    "tenant",
    "id",
    "user_id",
    "agent_id",
    "run_id",
    "content",
    "kind",
    "tags",
    "metadata",
    "links",
    "pinned",
    "embedding_model",
    "content_hash",
    "create_time_us",
    "update_time_us",
    "expire_time_us",
    "last_retrieve_time_us",
    "version",
    "revision",
)
#: Every column but key, then the embedding: what insert and update write.
WRITE_COLUMNS: Final = (*COLUMNS[1:], "embedding")

_FLOAT32_LE: Final = np.dtype("<f4")


def select_list(alias: str, *, with_embedding: bool) -> str:
    columns = [f"{alias}.{c}" for c in COLUMNS]
    if with_embedding:
        columns.append(f"{alias}.embedding")
    return ", ".join(columns)


# One encoder for every call: json.dumps() with options builds a new encoder
# each time, which costs more than encoding a small document.
# allow_nan=False: NaN is not JSON, and SQLite's JSON functions would reject
# the whole document, breaking every filter on it.
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# The C string encoder behind the one above (quotes, escapes '"', '\\' and
# control characters, leaves other characters as they are).
_json_string: Final[Callable[[str], str]] = json.encoder.encode_basestring


def dumps(value: object) -> str:
    return _ENCODER.encode(value)


def with_key(memory: Memory, key: int) -> Memory:
    """`memory` with its row key; dataclasses.replace() costs several times
    more, which shows at 20,000 inserts a second."""
    return Memory(
        tenant=memory.tenant,
        id=memory.id,
        scope=memory.scope,
        content=memory.content,
        kind=memory.kind,
        tags=memory.tags,
        metadata=memory.metadata,
        links=memory.links,
        pinned=memory.pinned,
        embedding_model=memory.embedding_model,
        content_hash=memory.content_hash,
        create_time_us=memory.create_time_us,
        update_time_us=memory.update_time_us,
        expire_time_us=memory.expire_time_us,
        last_retrieve_time_us=memory.last_retrieve_time_us,
        version=memory.version,
        revision=memory.revision,
        key=key,
        embedding=memory.embedding,
    )


def vector_to_blob(vector: Vector) -> bytes:
    array = np.ascontiguousarray(vector, dtype=_FLOAT32_LE)
    if array.ndim != 1:
        raise ValueError(f"an embedding must be one-dimensional, not shape {array.shape}")
    return array.tobytes()


def vector_from_blob(blob: bytes) -> Vector:
    """A read-only view of the blob: no copy, and no one can edit a stored vector."""
    return np.frombuffer(blob, dtype=_FLOAT32_LE)


def encode_fields(memory: Memory) -> tuple[Any, ...]:
    """Values for WRITE_COLUMNS except the embedding, JSON columns encoded."""
    return (
        memory.tenant,
        memory.id,
        memory.scope.user_id,
        memory.scope.agent_id,
        memory.scope.run_id,
        memory.content,
        int(memory.kind),
        dumps(list(memory.tags)),
        dumps(dict(memory.metadata)),
        dumps([[link.target_id, link.relation, link.weight] for link in memory.links]),
        1 if memory.pinned else 0,
        memory.embedding_model,
        memory.content_hash,
        memory.create_time_us,
        memory.update_time_us,
        memory.expire_time_us,
        memory.last_retrieve_time_us,
        memory.version,
        memory.revision,
    )


def write_params(memory: Memory, fields: tuple[Any, ...] | None = None) -> tuple[Any, ...]:
    """Values for WRITE_COLUMNS; the embedding is required."""
    if memory.embedding is None:
        raise ValueError(f"memory {memory.id!r} has no embedding; the store requires one")
    return (
        *(encode_fields(memory) if fields is None else fields),
        vector_to_blob(memory.embedding),
    )


def row_to_memory(row: Sequence[Any]) -> Memory:
    """A memories row (COLUMNS, optionally then the embedding) as a Memory."""
    return Memory(
        key=row[0],
        tenant=row[1],
        id=row[2],
        scope=Scope(row[3], row[4], row[5]),
        content=row[6],
        kind=MemoryKind(row[7]),
        tags=tuple(json.loads(row[8])),
        metadata=json.loads(row[9]),
        links=tuple(Link(t, r, w) for t, r, w in json.loads(row[10])),
        pinned=bool(row[11]),
        embedding_model=row[12],
        content_hash=row[13],
        create_time_us=row[14],
        update_time_us=row[15],
        expire_time_us=row[16],
        last_retrieve_time_us=row[17],
        version=row[18],
        revision=row[19],
        embedding=vector_from_blob(row[20]) if len(row) > 20 else None,
    )


# A history snapshot is a JSON object of every column but the embedding
# (history stays small). Filled in by % from encode_fields(): the JSON columns
# are already encoded there, and re-encoding them through json.dumps cost more
# than the INSERT of the snapshot itself.
_SNAPSHOT_TEMPLATE: Final = (
    '{"key":%d,"tenant":%s,"id":%s,"user_id":%s,"agent_id":%s,"run_id":%s,"content":%s,'
    '"kind":%d,"tags":%s,"metadata":%s,"links":%s,"pinned":%s,"embedding_model":%s,'
    '"content_hash":%s,"create_time_us":%d,"update_time_us":%d,"expire_time_us":%s,'
    '"last_retrieve_time_us":%s,"version":%d,"revision":%d}'
)


#: SQL over a history row: the key of the memory (one life of an id) it belongs to.
LIFE_KEY_SQL: Final = "json_extract(coalesce(after, before), '$.key')"


def history_scope_sql(column: str) -> str:
    """SQL over a history row: one scope field of the memory it belongs to."""
    assert column in ("user_id", "agent_id", "run_id")
    return f"json_extract(coalesce(after, before), '$.{column}')"


def _json_int(value: int | None) -> str:
    return "null" if value is None else str(int(value))


def snapshot_json(fields: tuple[Any, ...], key: int) -> str:
    """The history snapshot of a memory from its encode_fields() and key."""
    s = _json_string
    return _SNAPSHOT_TEMPLATE % (
        key,
        s(fields[0]),
        s(fields[1]),
        s(fields[2]),
        s(fields[3]),
        s(fields[4]),
        s(fields[5]),
        fields[6],
        fields[7],
        fields[8],
        fields[9],
        "true" if fields[10] else "false",
        s(fields[11]),
        s(fields[12]),
        fields[13],
        fields[14],
        _json_int(fields[15]),
        _json_int(fields[16]),
        fields[17],
        fields[18],
    )


def memory_to_json(memory: Memory) -> str:
    return snapshot_json(encode_fields(memory), memory.key)


def memory_from_json(text: str | None) -> Memory | None:
    if text is None:
        return None
    d: Mapping[str, Any] = json.loads(text)
    return Memory(
        key=d["key"],
        tenant=d["tenant"],
        id=d["id"],
        scope=Scope(d["user_id"], d["agent_id"], d["run_id"]),
        content=d["content"],
        kind=MemoryKind(d["kind"]),
        tags=tuple(d["tags"]),
        metadata=d["metadata"],
        links=tuple(Link(t, r, w) for t, r, w in d["links"]),
        pinned=d["pinned"],
        embedding_model=d["embedding_model"],
        content_hash=d["content_hash"],
        create_time_us=d["create_time_us"],
        update_time_us=d["update_time_us"],
        expire_time_us=d["expire_time_us"],
        last_retrieve_time_us=d["last_retrieve_time_us"],
        version=d["version"],
        revision=d["revision"],
    )


def row_to_change(row: Sequence[Any]) -> Change:
    """A revlog row: revision, tenant, memory_id, key, change_type, user, agent, run, time."""
    return Change(
        revision=row[0],
        tenant=row[1],
        memory_id=row[2],
        key=row[3],
        change_type=ChangeType(row[4]),
        scope=Scope(row[5], row[6], row[7]),
        time_us=row[8],
    )


def outcomes_to_json(outcomes: Sequence[StoredOutcome]) -> str:
    return dumps(
        [
            {
                "kind": o.kind,
                "memory": None if o.memory is None else json.loads(memory_to_json(o.memory)),
                "deduplicated": o.deduplicated,
                "similarity": o.similarity,
                "revision": o.revision,
                "error": None if o.error is None else list(o.error),
            }
            for o in outcomes
        ]
    )


def outcomes_from_json(text: str) -> tuple[StoredOutcome, ...]:
    return tuple(
        StoredOutcome(
            kind=d["kind"],
            memory=None if d["memory"] is None else memory_from_json(dumps(d["memory"])),
            deduplicated=d["deduplicated"],
            similarity=d["similarity"],
            revision=d["revision"],
            error=None
            if d["error"] is None
            else (d["error"][0], d["error"][1], d["error"][2], d["error"][3]),
        )
        for d in json.loads(text)
    )
