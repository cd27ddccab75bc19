"""The `mnemo` command: poke at a running Mnemo server.

    mnemo add "Alice prefers green tea" --user alice --kind semantic --tag drink
    mnemo search "what does alice drink?" --user alice
    mnemo list --user alice --json
    mnemo export --user alice -o alice.jsonl && mnemo import alice.jsonl

The address and API key come from --address / --api-key or from MNEMO_ADDRESS /
MNEMO_API_KEY. Output is a table by default and plain JSON with --json: numbers as
numbers, metadata as plain values, short lower-case enum names, RFC 3339 times.

Exit codes: 0 success, 1 the server reported an error (printed to stderr as
"error: CODE REASON: message"), 2 usage error, 3 the server could not be reached,
130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TextIO

from mnemo import __version__, _jsonl, types
from mnemo._convert import clamped
from mnemo._plainjson import to_plain
from mnemo._progress import Progress
from mnemo._requests import UNSET, _Unset
from mnemo.client import MnemoClient
from mnemo.errors import MnemoError, UnavailableError
from mnemo.v1 import memory_pb2
from mnemo.v1 import memory_service_pb2 as pb

EXIT_OK, EXIT_SERVER, EXIT_USAGE, EXIT_CONNECTION, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
CONTENT_WIDTH = 60


class UsageError(Exception):
    """A command line that cannot be run as given (exit code 2)."""


# -- output -------------------------------------------------------------------


def to_json(message: Any) -> dict[str, Any]:
    """A message as plain JSON, every field present: native numbers, metadata as
    plain values, short lower-case enum names, RFC 3339 times (see _plainjson)."""
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


# -- argument parsing ---------------------------------------------------------


def metadata_value(text: str) -> Any:
    """A --meta value: JSON when it parses as JSON (numbers, true, null, lists...), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_metadata(pairs: Sequence[str] | None, raw: str | None) -> dict[str, Any] | None:
    if pairs is None and raw is None:
        return None
    result: dict[str, Any] = {}
    if raw is not None:
        try:
            loaded = json.loads(raw)
        except ValueError as exc:
            raise UsageError(f"--metadata is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise UsageError("--metadata must be a JSON object")
        result.update(loaded)
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--meta takes KEY=VALUE, not {pair!r}")
        result[key] = metadata_value(value)
    return result


def add_scope(p: argparse.ArgumentParser, *, required: str = "") -> None:
    p.add_argument("-u", "--user", dest="user_id", metavar="USER", help="user id")
    p.add_argument("-a", "--agent", dest="agent_id", metavar="AGENT", help="agent id")
    p.add_argument("-r", "--run", dest="run_id", metavar="RUN", help="run id")


def add_filter(p: argparse.ArgumentParser) -> None:
    p.add_argument("--filter", "-f", help="a filter expression, e.g. 'tags:\"pref\"' (docs/filters.md)")


def scope_of(args: argparse.Namespace) -> dict[str, Any]:
    return {"user_id": args.user_id, "agent_id": args.agent_id, "run_id": args.run_id}


def connection_options() -> argparse.ArgumentParser:
    """Options accepted before or after the command. Defaults are SUPPRESSed so a
    subcommand's parser does not reset what was given before it."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("connection")
    s = argparse.SUPPRESS
    g.add_argument(
        "--address", default=s, help="host:port of the server [env MNEMO_ADDRESS; localhost:50051]"
    )
    g.add_argument("--api-key", default=s, help="API key [env MNEMO_API_KEY]")
    g.add_argument("--tls", action="store_true", default=s, help="connect with TLS")
    g.add_argument("--ca-file", default=s, help="PEM root certificates to trust (implies --tls)")
    g.add_argument("--cert-file", default=s, help="PEM client certificate, for mutual TLS")
    g.add_argument("--key-file", default=s, help="PEM client key, for mutual TLS")
    g.add_argument("--timeout", type=float, default=s, help="deadline of each call in seconds [30]")
    g.add_argument(
        "--json", action="store_true", default=s, help="print plain JSON (numbers, metadata, short enums)"
    )
    g.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=s,
        help="progress bars on stderr [when stderr is a terminal]",
    )
    return p


def parser() -> argparse.ArgumentParser:
    common = connection_options()
    root = argparse.ArgumentParser(
        prog="mnemo",
        description="Command line of the Mnemo memory server.",
        epilog="Exit codes: 0 ok, 1 server error, 2 usage error, 3 cannot reach the server.",
        parents=[common],
    )
    root.add_argument("--version", action="version", version=f"mnemo {__version__}")
    sub = root.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str, run: Callable[..., int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, parents=[common])
        p.set_defaults(run=run)
        return p

    p = command("add", "create a memory", cmd_add)
    p.add_argument("content", help='the text of the memory ("-" reads it from stdin)')
    add_scope(p)
    p.add_argument("--kind", choices=["episodic", "semantic", "procedural"])
    p.add_argument("--tag", "-t", dest="tags", action="append", metavar="TAG", help="a tag (repeatable)")
    p.add_argument(
        "--meta",
        "-m",
        action="append",
        metavar="KEY=VALUE",
        help="a metadata entry; VALUE is JSON when it parses as JSON (repeatable)",
    )
    p.add_argument("--metadata", metavar="JSON", help="metadata as a JSON object")
    p.add_argument("--id", help="a client-chosen id")
    p.add_argument("--ttl", type=float, metavar="SECONDS", help="how long the memory lives")
    p.add_argument("--pinned", action="store_true", default=None, help="exempt from retention")
    p.add_argument("--dedup", choices=["exact", "semantic"], help="return an existing duplicate instead")
    p.add_argument("--request-id", help="idempotency key")

    p = command("get", "show a memory", cmd_get)
    p.add_argument("id")
    p.add_argument("--embedding", action="store_true", help="include the embedding")

    p = command("update", "change fields of a memory", cmd_update)
    p.add_argument("id")
    p.add_argument("--content", help="new text (re-embedded)")
    p.add_argument("--kind", choices=["episodic", "semantic", "procedural"])
    p.add_argument("--tag", "-t", dest="tags", action="append", metavar="TAG", help="replace the tags")
    p.add_argument("--clear-tags", action="store_true", help="remove every tag")
    p.add_argument("--meta", "-m", action="append", metavar="KEY=VALUE", help="replace the metadata")
    p.add_argument("--metadata", metavar="JSON", help="replace the metadata with a JSON object")
    p.add_argument("--pinned", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--ttl", type=float, metavar="SECONDS", help="new lifetime from now")
    p.add_argument("--never-expire", action="store_true", help="clear the expiry time")
    p.add_argument("--etag", help="apply only if the memory still has this etag")

    p = command("delete", "delete a memory", cmd_delete)
    p.add_argument("id")
    p.add_argument("--etag", help="delete only if the memory still has this etag")

    p = command("list", "list memories", cmd_list)
    add_scope(p)
    add_filter(p)
    p.add_argument("--order-by", help='e.g. "create_time desc" (the default), "id"')
    p.add_argument("--limit", "-n", type=int, default=20, help="at most this many; 0 for all [20]")

    p = command("search", "find memories by meaning, by words or both", cmd_search)
    p.add_argument("query")
    add_scope(p)
    add_filter(p)
    p.add_argument("--top-k", "-k", type=int, help="how many hits [10]")
    p.add_argument("--min-score", type=float, help="only hits at least this similar (cosine)")
    p.add_argument(
        "--mode",
        choices=("vector", "keyword", "hybrid"),
        help="by meaning, by words and identifiers (BM25), or both fused [vector]",
    )
    p.add_argument("--rrf-k", type=int, help="hybrid mode's fusion constant [60]")
    p.add_argument(
        "--explain", action="store_true", help="show each hit's rank and score in each ranking"
    )

    p = command("history", "show the versions of a memory", cmd_history)
    p.add_argument("id")
    p.add_argument("--limit", "-n", type=int, default=0, help="at most this many; 0 for all [0]")

    p = command("watch", "follow changes as they happen", cmd_watch)
    add_scope(p)
    add_filter(p)
    p.add_argument(
        "--from-revision", type=int, default=None,
        help="replay the changes after this revision (0: the whole retained log); default: live",
    )
    p.add_argument(
        "--type",
        dest="event_types",
        action="append",
        choices=["put", "delete", "expired"],
        help="only these event types (repeatable)",
    )
    p.add_argument("--limit", "-n", type=int, default=0, help="stop after this many events; 0 never")

    p = command("export", "export memories as JSON Lines", cmd_export)
    add_scope(p)
    add_filter(p)
    p.add_argument("--omit-embeddings", action="store_true", help="leave embeddings out")
    p.add_argument("--output", "-o", default="-", help='the file to write ("-" for stdout) [-]')

    p = command("import", "import a JSON Lines export", cmd_import)
    p.add_argument("file", help='an export file ("-" for stdin)')
    p.add_argument("--on-conflict", choices=["skip", "overwrite", "fail"], help="for ids that exist [skip]")
    p.add_argument("--force-reembed", action="store_true", help="re-embed every memory")

    p = command("forget", "delete every memory of a scope or filter, with its history", cmd_forget)
    add_scope(p)
    add_filter(p)
    p.add_argument("--dry-run", action="store_true", help="only report what would be deleted")
    p.add_argument("--yes", "-y", action="store_true", help="really delete")

    p = command("stats", "show server statistics", cmd_stats)
    add_scope(p)
    p.add_argument("--scope-limit", type=int, help="how many scopes to list [100]")

    p = command("check", "compare store, index and cache", cmd_check)
    p.add_argument("--repair", action="store_true", help="repair what is found")

    command("snapshot", "snapshot the index now", cmd_snapshot)

    p = command("reembed", "re-embed memories with the server's model", cmd_reembed)
    add_scope(p)
    add_filter(p)
    p.add_argument("--force", action="store_true", help="also memories already embedded by the model")
    p.add_argument("--dry-run", action="store_true", help="only count")

    keys = sub.add_parser("keys", help="manage API keys", description="Manage API keys.", parents=[common])
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    p = keys_sub.add_parser("create", help="create a key (its secret is shown once)", parents=[common])
    p.set_defaults(run=cmd_keys_create)
    p.add_argument("--role", required=True, choices=["reader", "writer", "admin"])
    p.add_argument("--tenant", help="the key's tenant [the caller's]")
    p.add_argument("--user", dest="user_ids", action="append", metavar="USER", help="restrict to a user")
    p.add_argument("--agent", dest="agent_ids", action="append", metavar="AGENT", help="restrict to an agent")
    p.add_argument("--name", dest="display_name", help="a name for people")
    p.add_argument("--ttl", type=float, metavar="SECONDS", help="how long the key works")
    p = keys_sub.add_parser("list", help="list keys", parents=[common])
    p.set_defaults(run=cmd_keys_list)
    p.add_argument("--show-revoked", action="store_true", help="include revoked keys")
    p.add_argument("--tenant", help="another tenant's keys (a system tenant admin key only)")
    p = keys_sub.add_parser("revoke", help="revoke a key", parents=[common])
    p.set_defaults(run=cmd_keys_revoke)
    p.add_argument("id")

    p = command("mcp", "serve the memory tools to AI agents over MCP (stdio or HTTP)", cmd_mcp)
    p.description = (
        "Serve Mnemo's memory tools over the Model Context Protocol: on stdio (for Claude Desktop, "
        "Cursor ...) or, with --http, over streamable HTTP. See docs/mcp.md."
    )
    g = p.add_argument_group("fixed scope (the model cannot leave it)")
    g.add_argument("-u", "--user", dest="user_id", metavar="USER", help="every call acts for this user")
    g.add_argument("-a", "--agent", dest="agent_id", metavar="AGENT", help="every call acts for this agent")
    g.add_argument("-r", "--run", dest="run_id", metavar="RUN", help="every call acts in this run")
    p.add_argument("--http", metavar="HOST:PORT", help="serve streamable HTTP at http://HOST:PORT/mcp")
    p.add_argument(
        "--http-auth",
        choices=["auto", "on", "off"],
        default="auto",
        help="require an Authorization: Bearer API key per request: auto is on unless HOST is loopback",
    )

    from mnemo import cli_extract  # after this module is loaded: it imports helpers from here

    cli_extract.register(command)

    p = command("health", "check that the server is serving", cmd_health)
    p.add_argument("--service", default="", help='a service name, e.g. "mnemo.v1.MemoryService"')
    return root


# -- commands -----------------------------------------------------------------


class Context:
    """What a command needs: the client, the output streams and the options."""

    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.json: bool = getattr(args, "json", False)
        self.progress: bool | None = getattr(args, "progress", None)
        self._client: MnemoClient | None = None

    @property
    def client(self) -> MnemoClient:
        if self._client is None:
            a = self.args
            self._client = MnemoClient(
                getattr(a, "address", None),
                api_key=getattr(a, "api_key", None),
                tls=True if getattr(a, "tls", False) else None,
                ca_file=getattr(a, "ca_file", None),
                cert_file=getattr(a, "cert_file", None),
                key_file=getattr(a, "key_file", None),
                timeout=getattr(a, "timeout", 30.0),
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def show_memory(ctx: Context, memory: types.Memory, response: Any = None) -> None:
    if ctx.json:
        print_json(to_json(response if response is not None else memory.raw), ctx.out)
    else:
        fields(memory_fields(memory), ctx.out)


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
    memory = ctx.client.get(a.id, read_mask=mask)
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
        **scope_of(a), filter=a.filter, order_by=a.order_by, page_size=page_size
    ):
        memories.append(memory)
        if a.limit and len(memories) >= a.limit:
            break
    if ctx.json:
        print_json({"memories": [to_json(m.raw) for m in memories]}, ctx.out)
    else:
        table(MEMORY_HEADERS, memory_rows(memories), ctx.out)
    return EXIT_OK


def cmd_search(ctx: Context) -> int:
    a = ctx.args
    result = ctx.client.search(
        a.query,
        **scope_of(a),
        filter=a.filter,
        top_k=a.top_k,
        min_score=a.min_score,
        mode=a.mode,
        rrf_k=a.rrf_k,
        explain=a.explain,
    )
    if ctx.json:
        print_json(to_json(result.raw), ctx.out)
    elif a.explain:
        table(
            ("SCORE", "VECTOR", "KEYWORD", "ID", "USER", "KIND", "CONTENT"),
            (
                (
                    f"{h.score:.4f}",
                    _ranked(h.explanation.vector_rank, h.explanation.vector_score),
                    _ranked(h.explanation.keyword_rank, h.explanation.keyword_score),
                    h.memory.id,
                    h.memory.user_id or "-",
                    h.memory.kind.value.lower(),
                    shorten(h.memory.content),
                )
                for h in result.hits
                if h.explanation is not None
            ),
            ctx.out,
        )
    else:
        table(
            ("SCORE", "ID", "USER", "KIND", "CONTENT"),
            (
                (
                    f"{h.score:.3f}",
                    h.memory.id,
                    h.memory.user_id or "-",
                    h.memory.kind.value.lower(),
                    shorten(h.memory.content),
                )
                for h in result.hits
            ),
            ctx.out,
        )
    return EXIT_OK


def _ranked(rank: int | None, score: float | None) -> str:
    """One ranking's part of an explanation: "#rank score", or "-" when it did not find the hit."""
    return "-" if rank is None or score is None else f"#{rank} {score:.3f}"


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


def key_rows(keys: Iterable[types.ApiKey]) -> Iterable[Sequence[Any]]:
    for k in keys:
        restricted = ",".join([*k.user_ids, *k.agent_ids]) or "-"
        state = "revoked" if k.revoke_time else "active"
        yield (
            k.id,
            k.role.value.lower(),
            k.tenant,
            k.display_name or "-",
            restricted,
            state,
            when(k.create_time),
        )


KEY_HEADERS = ("ID", "ROLE", "TENANT", "NAME", "RESTRICTED TO", "STATE", "CREATED")


def cmd_keys_create(ctx: Context) -> int:
    a = ctx.args
    created = ctx.client.create_api_key(
        a.role,
        tenant=a.tenant,
        user_ids=a.user_ids,
        agent_ids=a.agent_ids,
        display_name=a.display_name,
        ttl=a.ttl,
    )
    if ctx.json:
        print_json(to_json(created.raw), ctx.out)
    else:
        table(KEY_HEADERS, key_rows([created.api_key]), ctx.out)
        ctx.out.write(f"\nsecret: {created.secret}\n")
        ctx.err.write("the secret is shown only now; store it safely\n")
    return EXIT_OK


def cmd_keys_list(ctx: Context) -> int:
    keys = list(ctx.client.iter_api_keys(show_revoked=ctx.args.show_revoked, tenant=ctx.args.tenant))
    if ctx.json:
        print_json({"apiKeys": [to_json(k.raw) for k in keys]}, ctx.out)
    else:
        table(KEY_HEADERS, key_rows(keys), ctx.out)
    return EXIT_OK


def cmd_keys_revoke(ctx: Context) -> int:
    key = ctx.client.revoke_api_key(ctx.args.id)
    if ctx.json:
        print_json(to_json(key.raw), ctx.out)
    else:
        ctx.out.write(f"revoked {key.id}\n")
    return EXIT_OK


def cmd_health(ctx: Context) -> int:
    status = ctx.client.health(ctx.args.service)
    if ctx.json:
        print_json({"status": status.lower()}, ctx.out)
    else:
        ctx.out.write(status + "\n")
    return EXIT_OK if status == "SERVING" else EXIT_SERVER


def cmd_mcp(ctx: Context) -> int:
    try:
        import mnemo.mcp as mcp_server
    except ImportError as exc:
        raise UsageError(f"mnemo mcp needs the mcp extra: pip install 'mnemo-client[mcp]' ({exc})") from None
    a = ctx.args
    options = mcp_server.Options(
        address=getattr(a, "address", None),
        api_key=getattr(a, "api_key", None),
        tls=True if getattr(a, "tls", False) else None,
        ca_file=getattr(a, "ca_file", None),
        cert_file=getattr(a, "cert_file", None),
        key_file=getattr(a, "key_file", None),
        timeout=getattr(a, "timeout", 30.0),
        scope=mcp_server.Scope(user_id=a.user_id or "", agent_id=a.agent_id or "", run_id=a.run_id or ""),
        http=a.http,
        http_auth=a.http_auth,
    )
    mcp_server.run(options)
    return EXIT_OK


# -- main ---------------------------------------------------------------------


def report(error: MnemoError, address: str, err: TextIO) -> int:
    """Prints a failed call and returns its exit code."""
    if isinstance(error, UnavailableError) and not error.reason:
        err.write(f"error: cannot reach a Mnemo server at {address}: {error.message}\n")
        return EXIT_CONNECTION
    err.write(f"error: {error}\n")
    for violation in error.field_violations:
        err.write(f"  {violation.field}: {violation.description}\n")
    return EXIT_SERVER


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Runs the command line; returns the exit code.

    Args:
        argv: The arguments (sys.argv[1:] when not given).
        out: Where results go (stdout by default).
        err: Where errors and progress go (stderr by default).
    """
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help is 0, a bad command line is 2
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    ctx = Context(args, out, err)
    try:
        code: int = args.run(ctx)
        return code
    except MnemoError as error:
        return report(
            error, getattr(args, "address", None) or os.environ.get("MNEMO_ADDRESS") or "localhost:50051", err
        )
    except (UsageError, ValueError, TypeError) as exc:
        err.write(f"mnemo: error: {exc}\n")
        return EXIT_USAGE
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            return EXIT_OK
        err.write(f"mnemo: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        ctx.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
