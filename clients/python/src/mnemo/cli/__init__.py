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

The package holds one module per concern: `parser` (the grammar), `options`
(shared options), `output` (tables and JSON), `context` (exit codes, the client),
and one per command group: `memories`, `search`, `transfer`, `admin`, `keys`, `mcp`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from mnemo.cli.context import (
    EXIT_CONNECTION,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SERVER,
    EXIT_USAGE,
    Context,
    UsageError,
)
from mnemo.cli.parser import parser
from mnemo.errors import MnemoError, UnavailableError

__all__ = ["main"]


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
