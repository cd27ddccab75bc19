"""The operator commands: stats, check, snapshot, reembed and health."""

from __future__ import annotations

import json

from mnemo import types
from mnemo._core.progress import Progress
from mnemo.cli.context import EXIT_OK, EXIT_SERVER, Context
from mnemo.cli.options import scope_of
from mnemo.cli.output import (
    fields,
    print_json,
    table,
    to_json,
    when,
)


def cmd_stats(ctx: Context) -> int:
    a = ctx.args
    stats = ctx.client.get_stats(**scope_of(a), scope_limit=a.scope_limit)
    if ctx.json:
        print_json(to_json(stats.raw), ctx.out)
        return EXIT_OK
    fields(
        [
            ("server", stats.server_version),
            ("model", f"{stats.embedding_model} ({stats.dimension} dims)"),
            ("revision", stats.revision),
            ("oldest revision", stats.oldest_revision),
        ],
        ctx.out,
    )
    ctx.out.write("\n")
    table(
        ("TENANT", "MEMORIES", "BYTES"),
        ((x.tenant, x.memory_count, x.content_bytes) for x in stats.tenants),
        ctx.out,
    )
    scopes = [(x.tenant, s) for x in stats.tenants for s in x.scopes]
    if scopes:
        ctx.out.write("\n")
        table(
            ("TENANT", "USER", "AGENT", "RUN", "MEMORIES"),
            (
                (tenant, s.user_id or "-", s.agent_id or "-", s.run_id or "-", s.memory_count)
                for tenant, s in scopes
            ),
            ctx.out,
        )
    if stats.shards:
        ctx.out.write("\n")
        table(
            ("SHARD", "KIND", "VECTORS", "BYTES", "WHY"),
            (
                (s.shard_id, s.kind.value.lower(), s.vector_count, s.memory_bytes, s.kind_reason)
                for s in stats.shards
            ),
            ctx.out,
        )
    if stats.caches:
        ctx.out.write("\n")
        table(
            ("CACHE", "BACKEND", "STATE", "HIT RATE", "HITS", "MISSES"),
            ((c.name, c.backend, c.state, f"{c.hit_rate:.1%}", c.hits, c.misses) for c in stats.caches),
            ctx.out,
        )
    return EXIT_OK


def cmd_check(ctx: Context) -> int:
    report = ctx.client.check_consistency(repair=ctx.args.repair)
    if ctx.json:
        print_json(to_json(report.raw), ctx.out)
    else:
        fields(
            [
                ("consistent", "yes" if report.consistent else "no"),
                ("store", report.store_count),
                ("index", report.index_count),
                ("repaired", report.repaired_count),
            ],
            ctx.out,
        )
        if report.inconsistencies:
            ctx.out.write("\n")
            table(
                ("KIND", "MEMORY", "TENANT"),
                ((i.kind.value.lower(), i.memory_id, i.tenant) for i in report.inconsistencies),
                ctx.out,
            )
    return EXIT_OK if report.consistent or ctx.args.repair else EXIT_SERVER


def cmd_snapshot(ctx: Context) -> int:
    snapshot = ctx.client.create_snapshot()
    if ctx.json:
        print_json(to_json(snapshot.raw), ctx.out)
    else:
        fields(
            [
                ("revision", snapshot.revision),
                ("time", when(snapshot.snapshot_time)),
                ("bytes", snapshot.bytes),
                ("shards", snapshot.shard_count),
            ],
            ctx.out,
        )
    return EXIT_OK


def cmd_reembed(ctx: Context) -> int:
    a = ctx.args
    last: types.ReembedProgress | None = None
    bar: Progress | None = None
    try:
        for progress in ctx.client.reembed(**scope_of(a), filter=a.filter, force=a.force, dry_run=a.dry_run):
            if ctx.json:
                ctx.out.write(json.dumps(to_json(progress.raw)) + "\n")
            if bar is None:
                bar = Progress(
                    "re-embedded", total=progress.total_count, enabled=ctx.progress, stream=ctx.err
                )
            bar.advance(progress.reembedded_count - bar.count)
            last = progress
    finally:
        if bar is not None:
            bar.close()
    if not ctx.json and last is not None:
        verb = "would re-embed" if a.dry_run else "re-embedded"
        ctx.out.write(
            f"{verb} {last.reembedded_count if not a.dry_run else last.total_count} memories "
            f"with {last.embedding_model}\n"
        )
    return EXIT_OK


def cmd_health(ctx: Context) -> int:
    status = ctx.client.health(ctx.args.service)
    if ctx.json:
        print_json({"status": status.lower()}, ctx.out)
    else:
        ctx.out.write(status + "\n")
    return EXIT_OK if status == "SERVING" else EXIT_SERVER
