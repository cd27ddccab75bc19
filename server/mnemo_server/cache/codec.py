"""Compact byte encodings of what the typed caches hold.

- A memory: version byte, u32 length, a JSON array of the fields in a fixed
  order (no field names), then the embedding as little-endian float32 bytes
  if it has one. JSON as the store writes it: ints exact, floats round-trip.
- Search hits: version byte, u32 count, then per hit i64 key, f64 score,
  u16 id length and the UTF-8 id.

A value of an unknown version decodes to None (a miss), so a newer server
sharing the Redis never breaks an older one.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from mnemo_server.models import Link, Memory, MemoryKind, Scope

_MEMORY_V1: Final = 1
_HITS_V1: Final = 1
_HEAD: Final = struct.Struct("<BI")
_HIT: Final = struct.Struct("<qdH")
_FLOAT32_LE: Final = np.dtype("<f4")
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_DECODER: Final = json.JSONDecoder()
_KINDS: Final = {int(k): k for k in MemoryKind}


@dataclass(frozen=True, slots=True)
class CachedHit:
    """One search hit as the result cache keeps it: never the record itself.

    expire_time_us is not stored; given to SearchResultCache.store() it
    shortens the entry's TTL so that it ends when the hit expires.
    """

    id: str
    key: int
    score: float
    expire_time_us: int | None = None


def encode_memory(memory: Memory) -> bytes:
    fields = [
        memory.tenant,
        memory.id,
        memory.scope.user_id,
        memory.scope.agent_id,
        memory.scope.run_id,
        memory.content,
        int(memory.kind),
        list(memory.tags),
        dict(memory.metadata),
        [[link.target_id, link.relation, link.weight] for link in memory.links],
        memory.pinned,
        memory.embedding_model,
        memory.content_hash,
        memory.create_time_us,
        memory.update_time_us,
        memory.expire_time_us,
        memory.last_retrieve_time_us,
        memory.version,
        memory.revision,
        memory.key,
    ]
    body = _ENCODER.encode(fields).encode("utf-8", "surrogatepass")
    embedding = b""
    if memory.embedding is not None:
        embedding = np.ascontiguousarray(memory.embedding, dtype=_FLOAT32_LE).tobytes()
    return _HEAD.pack(_MEMORY_V1, len(body)) + body + embedding


def decode_memory(data: bytes, *, with_embedding: bool = True) -> Memory | None:
    """The memory (its embedding a read-only view, or None unless asked for),
    or None for a value of another version or a corrupt one."""
    try:
        version, length = _HEAD.unpack_from(data)
        if version != _MEMORY_V1:
            return None
        end = _HEAD.size + length
        f: list[Any] = _DECODER.decode(data[_HEAD.size : end].decode("utf-8", "surrogatepass"))
        embedding = None
        if with_embedding and len(data) > end:
            embedding = np.frombuffer(data, dtype=_FLOAT32_LE, offset=end)
        return Memory(
            tenant=f[0],
            id=f[1],
            scope=Scope(f[2], f[3], f[4]),
            content=f[5],
            kind=_KINDS[f[6]],
            tags=tuple(f[7]),
            metadata=f[8],
            links=tuple(Link(t, r, w) for t, r, w in f[9]) if f[9] else (),
            pinned=f[10],
            embedding_model=f[11],
            content_hash=f[12],
            create_time_us=f[13],
            update_time_us=f[14],
            expire_time_us=f[15],
            last_retrieve_time_us=f[16],
            version=f[17],
            revision=f[18],
            key=f[19],
            embedding=embedding,
        )
    except (struct.error, ValueError, IndexError, TypeError, KeyError):
        return None


def encode_hits(hits: Sequence[CachedHit]) -> bytes:
    parts = [_HEAD.pack(_HITS_V1, len(hits))]
    for hit in hits:
        raw_id = hit.id.encode("utf-8", "surrogatepass")
        parts.append(_HIT.pack(hit.key, hit.score, len(raw_id)))
        parts.append(raw_id)
    return b"".join(parts)


def decode_hits(data: bytes) -> tuple[CachedHit, ...] | None:
    try:
        version, count = _HEAD.unpack_from(data)
        if version != _HITS_V1:
            return None
        offset = _HEAD.size
        hits = []
        for _ in range(count):
            key, score, length = _HIT.unpack_from(data, offset)
            offset += _HIT.size
            hits.append(
                CachedHit(data[offset : offset + length].decode("utf-8", "surrogatepass"), key, score)
            )
            offset += length
        if offset != len(data):
            return None
        return tuple(hits)
    except (struct.error, UnicodeDecodeError):
        return None
