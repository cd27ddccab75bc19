"""Export to and import from JSON Lines."""

from __future__ import annotations

import io
import sys
from typing import Any

from mnemo import types
from mnemo._core import jsonl as _jsonl
from mnemo._core.progress import Progress
from mnemo.cli.context import EXIT_OK, EXIT_SERVER, Context, UsageError
from mnemo.cli.options import scope_of
from mnemo.cli.output import (
    fields,
    print_json,
    to_json,
)
from mnemo.v1 import memory_service_pb2 as pb


def cmd_export(ctx: Context) -> int:
    a = ctx.args
    stream = ctx.client.export(**scope_of(a), filter=a.filter, omit_embeddings=a.omit_embeddings)
    to_stdout = a.output == "-"
    count = 0
    out = ctx.out if to_stdout else open(a.output, "w", encoding="utf-8")  # noqa: SIM115
    try:
        header = stream.header
        out.write(_jsonl.line(_header_message(header)) + "\n")
        with Progress("exported", enabled=ctx.progress, stream=ctx.err) as bar:
            for memory in stream:
                out.write(_jsonl.line(_memory_message(memory)) + "\n")
                count += 1
                bar.advance()
    finally:
        if not to_stdout:
            out.close()
    if not to_stdout:
        ctx.err.write(f"exported {count} memories to {a.output} (revision {header.revision})\n")
    return EXIT_OK


def _header_message(header: types.ExportHeader) -> Any:
    return pb.ExportMemoriesResponse(header=header.raw)


def _memory_message(memory: types.Memory) -> Any:
    return pb.ExportMemoriesResponse(memory=memory.raw)


def cmd_import(ctx: Context) -> int:
    a = ctx.args
    if a.file == "-":
        stdin = io.StringIO(sys.stdin.read())  # checked whole first: a bad line imports nothing
        _jsonl.validate(stdin)
        header, memories = _jsonl.read(stdin)
        result = ctx.client.import_memories(
            memories, header=header, on_conflict=a.on_conflict, force_reembed=a.force_reembed
        )
    else:
        try:
            result = ctx.client.import_jsonl(
                a.file,
                on_conflict=a.on_conflict,
                force_reembed=a.force_reembed,
                progress=ctx.progress if ctx.progress is not None else ctx.err.isatty(),
            )
        except ValueError as exc:
            raise UsageError(f"{a.file}: {exc}; nothing was imported") from None
    if ctx.json:
        print_json(to_json(result.raw), ctx.out)
    else:
        fields(
            [
                ("imported", result.imported_count),
                ("skipped", result.skipped_count),
                ("re-embedded", result.reembedded_count),
                ("failed", result.failed_count),
            ],
            ctx.out,
        )
        for failure in result.failures:
            ctx.err.write(f"failed: #{failure.index} {failure.memory_id or '-'}: {failure.error}\n")
    return EXIT_SERVER if result.failed_count else EXIT_OK
