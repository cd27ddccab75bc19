"""The commands on memories one at a time and on a scope: add, get, update, delete,
list, history, watch and forget."""

from __future__ import annotations

import json
import sys
from typing import Any

from mnemo import UNSET, types
from mnemo._core.requests import _Unset
from mnemo.cli.context import EXIT_OK, Context, UsageError
from mnemo.cli.options import parse_metadata, scope_of
from mnemo.cli.output import (
    MEMORY_HEADERS,
    fields,
    memory_fields,
    memory_rows,
    print_json,
    shorten,
    show_memory,
    table,
    to_json,
    when,
)
from mnemo.v1 import memory_pb2


def cmd_add(ctx: Context) -> int:
    a = ctx.args
    content = sys.stdin.read() if a.content == "-" else a.content
    result = ctx.client.create(
        content,
        **scope_of(a),
        kind=a.kind,
        tags=a.tags,
        metadata=parse_metadata(a.meta, a.metadata),
        id=a.id,
        ttl=a.ttl,
        pinned=a.pinned,
        dedup=a.dedup,
        request_id=a.request_id,
    )
    if ctx.json:
        print_json(to_json(result.raw), ctx.out)
    else:
        fields(memory_fields(result.memory), ctx.out)
        if result.deduplicated:
            ctx.err.write(f"deduplicated: matched an existing memory (similarity {result.similarity:.3f})\n")
    return EXIT_OK


def cmd_get(ctx: Context) -> int:
    a = ctx.args
    mask = [f.name for f in memory_pb2.Memory.DESCRIPTOR.fields] if a.embedding else None
    memory = ctx.client.get(a.id, read_mask=mask, min_revision=a.min_revision)
    show_memory(ctx, memory)
    return EXIT_OK


def cmd_update(ctx: Context) -> int:
    a = ctx.args
    changes: dict[str, Any] = {}
    if a.content is not None:
        changes["content"] = a.content
    if a.kind is not None:
        changes["kind"] = a.kind
    if a.tags is not None or a.clear_tags:
        if a.tags is not None and a.clear_tags:
            raise UsageError("--tag and --clear-tags exclude each other")
        changes["tags"] = a.tags or []
    metadata = parse_metadata(a.meta, a.metadata)
    if metadata is not None:
        changes["metadata"] = metadata
    if a.pinned is not None:
        changes["pinned"] = a.pinned
    expire: _Unset | None = UNSET
    if a.never_expire:
        expire = None
    if not changes and a.ttl is None and expire is UNSET:
        raise UsageError("nothing to update: give --content, --kind, --tag, --meta, --pinned, --ttl ...")
    memory = ctx.client.update(a.id, **changes, expire_time=expire, ttl=a.ttl, etag=a.etag)
    show_memory(ctx, memory)
    return EXIT_OK


def cmd_delete(ctx: Context) -> int:
    result = ctx.client.delete(ctx.args.id, etag=ctx.args.etag)
    if ctx.json:
        print_json(to_json(result.raw), ctx.out)
    else:
        ctx.out.write(f"deleted {ctx.args.id} at revision {result.revision}\n")
    return EXIT_OK


def cmd_list(ctx: Context) -> int:
    a = ctx.args
    if a.limit < 0:
        raise UsageError("--limit must not be negative")
    page_size = min(a.limit, 1000) if a.limit else 1000
    memories: list[types.Memory] = []
    for memory in ctx.client.iter_memories(
        **scope_of(a), filter=a.filter, order_by=a.order_by, page_size=page_size, min_revision=a.min_revision
    ):
        memories.append(memory)
        if a.limit and len(memories) >= a.limit:
            break
    if ctx.json:
        print_json({"memories": [to_json(m.raw) for m in memories]}, ctx.out)
    else:
        table(MEMORY_HEADERS, memory_rows(memories), ctx.out)
    return EXIT_OK


def cmd_history(ctx: Context) -> int:
    a = ctx.args
    versions: list[types.MemoryVersion] = []
    for version in ctx.client.iter_history(a.id):
        versions.append(version)
        if a.limit and len(versions) >= a.limit:
            break
    if ctx.json:
        print_json({"versions": [to_json(v.raw) for v in versions]}, ctx.out)
    else:
        rows = []
        for v in versions:
            state = v.after or v.before
            rows.append(
                (
                    v.version,
                    v.revision,
                    v.change_type.value.lower(),
                    when(v.change_time),
                    ",".join(v.changed_fields) or "-",
                    shorten(state.content) if state else "-",
                )
            )
        table(("VERSION", "REVISION", "CHANGE", "TIME", "FIELDS", "CONTENT"), rows, ctx.out)
    return EXIT_OK


def cmd_watch(ctx: Context) -> int:
    a = ctx.args
    seen = 0
    with ctx.client.watch(
        **scope_of(a), filter=a.filter, start_revision=a.from_revision, event_types=a.event_types
    ) as events:
        for event in events:
            if ctx.json:
                ctx.out.write(json.dumps(to_json(event.raw), ensure_ascii=False) + "\n")
            else:
                content = shorten(event.memory.content) if event.memory and event.memory.content else ""
                ctx.out.write(
                    f"{event.revision}  {event.type.value.lower():<7}  {event.memory_id}  {content}".rstrip()
                    + "\n"
                )
            ctx.out.flush()
            seen += 1
            if a.limit and seen >= a.limit:
                break
    return EXIT_OK


def cmd_forget(ctx: Context) -> int:
    a = ctx.args
    if not (a.user_id or a.agent_id or a.run_id or a.filter):
        raise UsageError("forget needs a scope (--user, --agent, --run) or a --filter")
    if not a.dry_run and not a.yes:
        raise UsageError("forget deletes for good: add --yes, or --dry-run to see what it would delete")
    result = ctx.client.delete_memories(**scope_of(a), filter=a.filter, dry_run=a.dry_run)
    if ctx.json:
        print_json(to_json(result.raw), ctx.out)
    else:
        verb = "would delete" if a.dry_run else "deleted"
        ctx.out.write(f"{verb} {result.deleted_count} memories\n")
        for memory_id in result.memory_ids:
            ctx.out.write(f"  {memory_id}\n")
    return EXIT_OK
