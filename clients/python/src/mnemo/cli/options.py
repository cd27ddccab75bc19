"""Options several commands share: the connection, the scope, the filter and metadata."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from mnemo.cli.context import UsageError


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
