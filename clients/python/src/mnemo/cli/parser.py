"""The command line grammar: every command, its options and the function that runs it."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from mnemo import __version__
from mnemo.cli import extract, mem0
from mnemo.cli.admin import cmd_check, cmd_health, cmd_reembed, cmd_snapshot, cmd_stats
from mnemo.cli.keys import cmd_keys_create, cmd_keys_list, cmd_keys_revoke
from mnemo.cli.mcp import cmd_mcp
from mnemo.cli.memories import (
    cmd_add,
    cmd_delete,
    cmd_forget,
    cmd_get,
    cmd_history,
    cmd_list,
    cmd_update,
    cmd_watch,
)
from mnemo.cli.options import add_filter, add_scope, connection_options
from mnemo.cli.search import cmd_search
from mnemo.cli.transfer import cmd_export, cmd_import


def add_min_revision(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--min-revision",
        type=int,
        metavar="REVISION",
        help="read at least this revision (a write's): a server behind waits, bounded, to catch up",
    )

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
    add_min_revision(p)

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
    add_min_revision(p)

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
    p.add_argument("--explain", action="store_true", help="show each hit's rank and score in each ranking")
    p.add_argument(
        "--recency-half-life",
        type=float,
        metavar="SECONDS",
        help="decay scores by age with this half-life (docs/retrieval.md)",
    )
    p.add_argument(
        "--recency-basis",
        choices=("create_time", "update_time", "last_retrieve_time"),
        help="the time a memory's age counts from [update_time]",
    )
    p.add_argument("--recency-weight", type=float, help="how much of a score the decay may take, 0 to 1 [1]")
    p.add_argument("--importance-key", help="boost by this metadata key's number in [0, 1]")
    p.add_argument("--importance-weight", type=float, help="the importance boost's weight, 0 to 100 [1]")
    p.add_argument("--pin-boost", type=float, help="multiply pinned memories' scores by 1 + this")
    p.add_argument(
        "--rerank",
        action=argparse.BooleanOptionalAction,
        help="rerank the best candidates with the server's cross-encoder [the server's default]",
    )
    add_min_revision(p)

    p = command("history", "show the versions of a memory", cmd_history)
    p.add_argument("id")
    p.add_argument("--limit", "-n", type=int, default=0, help="at most this many; 0 for all [0]")

    p = command("watch", "follow changes as they happen", cmd_watch)
    add_scope(p)
    add_filter(p)
    p.add_argument(
        "--from-revision",
        type=int,
        default=None,
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

    p = command("import", "import a JSON Lines export, or a mem0 store (--from-mem0)", cmd_import)
    p.add_argument("file", nargs="?", help='an export file ("-" for stdin)')
    mem0.add_arguments(p)
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

    extract.register(command)

    p = command("health", "check that the server is serving", cmd_health)
    p.add_argument("--service", default="", help='a service name, e.g. "mnemo.v1.MemoryService"')
    return root
