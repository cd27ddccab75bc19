"""How a mem0 record (id, vector, payload) maps onto a Mnemo memory, and back.

| mem0 payload | Mnemo memory |
| --- | --- |
| `user_id`, `agent_id`, `run_id` | the memory's scope (immutable, as in mem0) |
| `data` | `content` |
| every other key (`hash`, `created_at`, `updated_at`, `role`, ...) | `metadata`, unchanged |
| (the store's collection) | `metadata.mem0_collection` |

The payload round-trips exactly: a record read back has the payload it was
written with. Mnemo's own `create_time`/`update_time`/`content_hash` are kept
by Mnemo beside it (an import sets the times from `created_at`/`updated_at`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mnemo import types
from mnemo.integrations.mem0.filters import COLLECTION_KEY, SCOPE_KEYS


class PayloadError(ValueError):
    """A mem0 payload that cannot be stored as a Mnemo memory."""


def scope_of(payload: Mapping[str, Any]) -> dict[str, str]:
    """The Mnemo scope of a payload: its non-empty user_id, agent_id and run_id."""
    scope: dict[str, str] = {}
    for key in SCOPE_KEYS:
        value = payload.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise PayloadError(f"payload {key} must be a string, not {type(value).__name__}")
        scope[key] = value
    if not scope:
        raise PayloadError(
            "a mem0 payload needs one of user_id, agent_id and run_id (Mnemo scopes every memory)"
        )
    return scope


def content_of(payload: Mapping[str, Any]) -> str:
    data = payload.get("data")
    if not isinstance(data, str) or not data.strip():
        raise PayloadError("a mem0 payload needs its text in 'data' (Mnemo stores no memory without content)")
    return data


def metadata_of(payload: Mapping[str, Any], collection: str) -> dict[str, Any]:
    """The memory's metadata: the payload without its scope and text, plus the collection."""
    if COLLECTION_KEY in payload:
        raise PayloadError(f"payload key {COLLECTION_KEY!r} is reserved by the Mnemo vector store")
    metadata = {k: v for k, v in payload.items() if k not in SCOPE_KEYS and k != "data"}
    metadata[COLLECTION_KEY] = collection
    return metadata


def payload_of(memory: types.Memory) -> dict[str, Any]:
    """The mem0 payload of a memory this store wrote."""
    payload = {k: v for k, v in memory.metadata.items() if k != COLLECTION_KEY}
    payload["data"] = memory.content
    for key in SCOPE_KEYS:
        value = getattr(memory, key)
        if value:
            payload[key] = value
    return payload


def collection_of(memory: types.Memory) -> str | None:
    value = memory.metadata.get(COLLECTION_KEY)
    return value if isinstance(value, str) else None


def parse_time(value: Any) -> datetime | None:
    """A mem0 `created_at`/`updated_at` (ISO 8601) as an aware datetime; naive is UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
