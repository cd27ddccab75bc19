"""How the command line prints: plain JSON, tables and field lists."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TextIO

from mnemo import types
from mnemo._core.conversions import clamped
from mnemo._core.plainjson import to_plain
from mnemo.cli.context import Context

CONTENT_WIDTH = 60


def to_json(message: Any) -> dict[str, Any]:
    """A message as plain JSON, every field present: native numbers, metadata as
    plain values, short lower-case enum names, RFC 3339 times (see mnemo._core.plainjson)."""
    result: dict[str, Any] = to_plain(clamped(message))
    return result


def print_json(obj: Any, out: TextIO) -> None:
    out.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def shorten(text: str, width: int = CONTENT_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], out: TextIO) -> None:
    """Plain columns, left-aligned, two spaces apart."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def fields(pairs: Sequence[tuple[str, Any]], out: TextIO) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        out.write(f"{key + ':':<{width + 1}} {value}\n")


def memory_fields(m: types.Memory) -> list[tuple[str, Any]]:
    scope = " ".join(
        f"{k}={v}" for k, v in (("user", m.user_id), ("agent", m.agent_id), ("run", m.run_id)) if v
    )
    pairs: list[tuple[str, Any]] = [
        ("id", m.id),
        ("scope", scope),
        ("kind", m.kind.value.lower()),
        ("content", m.content),
        ("tags", ", ".join(m.tags) or "-"),
        ("metadata", json.dumps(dict(m.metadata), ensure_ascii=False, sort_keys=True) if m.metadata else "-"),
        ("version", m.version),
        ("revision", m.revision),
        ("etag", m.etag),
        ("created", when(m.create_time)),
        ("updated", when(m.update_time)),
        ("expires", when(m.expire_time)),
        ("pinned", "yes" if m.pinned else "no"),
        ("model", m.embedding_model),
    ]
    if m.links:
        pairs.append(("links", ", ".join(f"{x.relation}->{x.target_id}" for x in m.links)))
    if m.embedding is not None:
        pairs.append(("embedding", f"[{len(m.embedding)} floats]"))
    return pairs


def memory_rows(memories: Iterable[types.Memory]) -> Iterable[Sequence[Any]]:
    for m in memories:
        yield (m.id, m.user_id or "-", m.kind.value.lower(), when(m.create_time), shorten(m.content))


MEMORY_HEADERS = ("ID", "USER", "KIND", "CREATED", "CONTENT")


def show_memory(ctx: Context, memory: types.Memory, response: Any = None) -> None:
    if ctx.json:
        print_json(to_json(response if response is not None else memory.raw), ctx.out)
    else:
        fields(memory_fields(memory), ctx.out)
