"""`mnemo extract` and `mnemo operation`: conversations in, memories out
(ExtractionService).

    mnemo extract conversation.json --user alice
    echo '[{"role": "user", "content": "I moved to Lyon"}]' | mnemo extract - --user alice --mode reconcile
    mnemo operation OPERATION_ID

The conversation file is JSON: a list of messages ({"role", "content", and
optionally "name" and "time" in RFC 3339}), or an object with "messages".
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from mnemo._core import extraction as x
from mnemo.cli.context import EXIT_OK, EXIT_SERVER, Context, UsageError
from mnemo.cli.options import add_scope, parse_metadata, scope_of
from mnemo.cli.output import fields, print_json, shorten, table, to_json

Command = Callable[[str, str, Callable[..., int]], argparse.ArgumentParser]


def register(command: Command) -> None:
    """Adds the extraction commands through the parser's `command` helper."""
    p = command("extract", "turn a conversation into memories with the server's LLM", cmd_extract)
    p.add_argument("file", help='a JSON conversation ("-" reads it from stdin)')
    add_scope(p)
    p.add_argument("--mode", choices=["additive", "reconcile"], help="additive (default) or reconcile")
    p.add_argument("--meta", "-m", action="append", metavar="KEY=VALUE", help="metadata of every new memory")
    p.add_argument("--metadata", metavar="JSON", help="metadata as a JSON object")
    p.add_argument("--request-id", help="an idempotency key: a retry returns the first call's operation")
    p.add_argument(
        "--no-wait", action="store_true", help="print the operation at once instead of its outcome"
    )
    p = command("operation", "show an extraction operation", cmd_operation)
    p.add_argument("id", help="the operation's id")


def read_conversation(path: str) -> list[x.ConversationMessage]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"the conversation is not JSON: {exc}") from None
    if isinstance(data, dict):
        data = data.get("messages")
    if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
        raise UsageError(
            'the conversation must be a list of {"role", "content"} objects, or {"messages": [...]}'
        )
    out = []
    for i, m in enumerate(data):
        unknown = set(m) - {"role", "content", "name", "time"}
        if unknown:
            raise UsageError(f"message {i}: unknown key {sorted(unknown)[0]!r}")
        time = m.get("time")
        try:
            when = datetime.fromisoformat(time.replace("Z", "+00:00")) if isinstance(time, str) else None
        except ValueError:
            raise UsageError(f"message {i}: time {time!r} is not RFC 3339") from None
        out.append(
            x.ConversationMessage(
                str(m.get("role", "")), str(m.get("content", "")), str(m.get("name", "")), when
            )
        )
    return out


def cmd_extract(ctx: Context) -> int:
    a = ctx.args
    op = ctx.client.extract(
        read_conversation(a.file),
        **scope_of(a),
        metadata=parse_metadata(a.meta, a.metadata),
        mode=a.mode,
        request_id=a.request_id,
        wait=not a.no_wait,
    )
    return show(ctx, op)


def cmd_operation(ctx: Context) -> int:
    return show(ctx, ctx.client.get_operation(ctx.args.id))


def show(ctx: Context, op: x.Operation) -> int:
    if ctx.json:
        print_json(to_json(op.raw), ctx.out)
    else:
        pairs: list[tuple[str, Any]] = [("operation", op.id), ("state", op.state.value.lower())]
        if op.state is x.OperationState.FAILED:
            pairs.append(("error", f"{op.error_reason}: {op.error_message}"))
        if op.state is x.OperationState.SUCCEEDED:
            pairs.append(("revision", op.revision))
        fields(pairs, ctx.out)
        if op.facts:
            rows = [
                (f.event.value.lower(), f.memory.id if f.memory else "-", shorten(f.text)) for f in op.facts
            ]
            table(["event", "memory", "fact"], rows, ctx.out)
    return EXIT_SERVER if op.state is x.OperationState.FAILED else EXIT_OK
