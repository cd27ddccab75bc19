"""Compact JSON for a model to read: ids, content, scores and times, no proto dumps.

Empty fields are left out, times are ISO 8601 in UTC to the second, scores are
rounded to four places.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mnemo import types
from mnemo.errors import MnemoError, UnavailableError


def when(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def memory(m: types.Memory) -> dict[str, Any]:
    out: dict[str, Any] = {"id": m.id, "content": m.content, "kind": m.kind.value.lower()}
    for key in ("user_id", "agent_id", "run_id"):
        if getattr(m, key):
            out[key] = getattr(m, key)
    if m.tags:
        out["tags"] = list(m.tags)
    if m.metadata:
        out["metadata"] = dict(m.metadata)
    if m.pinned:
        out["pinned"] = True
    out["created"] = when(m.create_time)
    if m.update_time and m.update_time != m.create_time:
        out["updated"] = when(m.update_time)
    if m.expire_time:
        out["expires"] = when(m.expire_time)
    out["version"] = m.version
    out["etag"] = m.etag
    return out


def created(result: types.CreateResult) -> dict[str, Any]:
    out = {"memory": memory(result.memory)}
    if result.deduplicated:
        out["deduplicated"] = {"similarity": round(result.similarity, 4)}
    return out


def search(result: types.SearchResult) -> dict[str, Any]:
    return {"hits": [{"score": round(h.score, 4), **memory(h.memory)} for h in result.hits]}


def page(result: types.MemoryPage) -> dict[str, Any]:
    out: dict[str, Any] = {"memories": [memory(m) for m in result.memories]}
    if result.next_page_token:
        out["next_page_token"] = result.next_page_token
    return out


def history(result: types.HistoryPage) -> dict[str, Any]:
    versions = []
    for v in result.versions:
        item: dict[str, Any] = {
            "version": v.version,
            "change": v.change_type.value.lower(),
            "time": when(v.change_time),
        }
        if v.changed_fields:
            item["changed_fields"] = list(v.changed_fields)
        if v.before is not None and (v.after is None or v.before.content != v.after.content):
            item["content_before"] = v.before.content
        if v.after is not None:
            item["content"] = v.after.content
        versions.append(item)
    out: dict[str, Any] = {"memory_id": result.versions[0].memory_id if result.versions else None}
    out["versions"] = versions
    if result.next_page_token:
        out["next_page_token"] = result.next_page_token
    return out


def deleted(id: str, result: types.DeleteResult) -> dict[str, Any]:
    return {"deleted": id, "revision": result.revision}


def error(exc: MnemoError, address: str) -> dict[str, Any]:
    """The error a tool reports: the gRPC code, the Mnemo reason and the message."""
    if isinstance(exc, UnavailableError) and not exc.reason:
        message = f"cannot reach the Mnemo server at {address}: {exc.message}"
    else:
        message = exc.message
    out: dict[str, Any] = {"code": exc.code, "reason": exc.reason or None, "message": message}
    if exc.field_violations:
        out["field_violations"] = [
            {"field": v.field, "description": v.description} for v in exc.field_violations
        ]
    return {"error": out}


def usage(reason: str, message: str) -> dict[str, Any]:
    """An error found before any call: bad arguments, an unknown tool, a scope escape."""
    return {"error": {"code": "INVALID_ARGUMENT", "reason": reason, "message": message}}
