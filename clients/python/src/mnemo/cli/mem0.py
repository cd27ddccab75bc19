"""`mnemo import --from-mem0 CONFIG`: copy a mem0 store into Mnemo (needs `mnemo-client[mem0]`).

Reads the store that the mem0 config names through mem0ai itself, prints the
counts of imported, skipped and failed memories, and exits 1 when any failed.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mnemo.cli.context import Context

EXIT_OK = 0
EXIT_FAILED = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options `mnemo import` takes for a mem0 source."""
    g = p.add_argument_group("from mem0")
    g.add_argument(
        "--from-mem0",
        metavar="CONFIG",
        help="a mem0 config (JSON or YAML) whose vector store to import, instead of FILE",
    )
    g.add_argument("--collection", help="the mem0 collection to import into [the config's collection_name]")
    g.add_argument(
        "--embedding-model",
        help="the model that embedded the mem0 store, when its config does not name it plainly",
    )


def run(ctx: Context) -> int:
    """Runs the migration for `mnemo import --from-mem0`."""
    a = ctx.args
    if a.file is not None:
        raise ValueError("give either FILE or --from-mem0 CONFIG, not both")
    try:
        from mnemo.integrations.mem0 import migrate
    except ImportError as exc:
        raise ValueError(f"--from-mem0 needs mem0ai: pip install 'mnemo-client[mem0]' ({exc})") from None
    report = migrate(
        a.from_mem0,
        ctx.client,
        collection=a.collection,
        embedding_model=a.embedding_model,
        reembed=a.force_reembed,
        on_conflict=a.on_conflict or "skip",
        progress=ctx.progress if ctx.progress is not None else ctx.err.isatty(),
    )
    counts = [
        ("read", report.read),
        ("imported", report.imported),
        ("skipped", report.skipped),
        ("re-embedded", report.reembedded),
        ("failed", report.failed),
    ]
    if ctx.json:
        doc: dict[str, object] = dict(counts)
        doc["source_model"], doc["server_model"] = report.source_model, report.server_model
        doc["failures"] = [{"id": i, "reason": r, "message": m} for i, r, m in report.failures]
        ctx.out.write(json.dumps(doc, indent=2) + "\n")
    else:
        width = max(len(k) for k, _ in counts)
        for key, value in counts:
            ctx.out.write(f"{key + ':':<{width + 1}} {value}\n")
        for record_id, reason, message in report.failures:
            ctx.err.write(f"failed: {record_id or '-'}: {reason}: {message}\n")
    return EXIT_FAILED if report.failed else EXIT_OK
