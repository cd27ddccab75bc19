"""What every command shares: the exit codes, the usage error and the `Context`
(the arguments, the output streams and the client, made on first use)."""

from __future__ import annotations

import argparse
from typing import TextIO

from mnemo import MnemoClient

EXIT_OK, EXIT_SERVER, EXIT_USAGE, EXIT_CONNECTION, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(Exception):
    """A command line that cannot be run as given (exit code 2)."""


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
