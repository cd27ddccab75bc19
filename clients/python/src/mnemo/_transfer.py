"""`Transfer`: the clients' import and export methods (ImportMemories,
ExportMemories and their JSON Lines files); `MnemoClient` inherits them.

`mnemo._atransfer` is generated from this module (clients/python/scripts/gen_aio.py).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator
from typing import Any

import grpc

from mnemo import types as t
from mnemo._calls import Calls
from mnemo._core import conversions as _convert
from mnemo._core import jsonl as _jsonl
from mnemo._core import requests as _requests
from mnemo._core.progress import Progress
from mnemo._core.requests import HeaderLike, MemoryLike
from mnemo._core.settings import PathLike, call_timeout
from mnemo._streams import ExportStream
from mnemo.errors import from_rpc_error


class Transfer(Calls):
    """Import and export over one stream each."""

    def import_memories(
        self,
        memories: Iterable[MemoryLike],
        *,
        header: HeaderLike | None = None,
        on_conflict: t.ImportConflictPolicy | str | None = None,
        force_reembed: bool = False,
        timeout: float | None = None,
    ) -> t.ImportResult:
        """Loads memories in the export format over one stream (ImportMemories).

        Args:
            memories: `Memory` objects (as `export` yields them), mnemo.v1.Memory
                messages or their proto-JSON dicts.
            header: The export's header (`ExportStream.header`); embeddings are reused
                when its model is the server's. A version-1 header without a model
                (so everything is re-embedded) when not given.
            on_conflict: "skip" (the default), "overwrite" or "fail" for ids that exist.
            force_reembed: Re-embed even when the models match.

        Per-memory failures are reported in the result, not raised.
        """
        return self._import(
            _requests.import_memories_head(
                header=header, on_conflict=on_conflict, force_reembed=force_reembed
            ),
            memories,
            timeout,
            progress=None,
        )

    def _import(
        self,
        head: builtins.list[Any],
        memories: Iterable[MemoryLike],
        timeout: float | None,
        progress: Progress | None,
    ) -> t.ImportResult:
        def requests() -> Iterator[Any]:
            yield from head
            for memory in memories:
                yield _requests.import_memories_item(memory)
                if progress is not None:
                    progress.advance()

        try:
            response = self._stub.ImportMemories(
                requests(),
                timeout=call_timeout(self._settings, timeout, stream=True),
                metadata=self._settings.call_metadata(),
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return _convert.import_result(response)

    def import_jsonl(
        self,
        path: PathLike,
        *,
        on_conflict: t.ImportConflictPolicy | str | None = None,
        force_reembed: bool = False,
        progress: bool | None = False,
        timeout: float | None = None,
    ) -> t.ImportResult:
        """Imports a JSON Lines file written by `export_jsonl` (or `mnemo export`).

        Every line is checked before the first is sent: a malformed file raises
        ValueError("line N: why") and imports nothing.

        Args:
            path: The file.
            on_conflict: As in `import_memories`.
            force_reembed: As in `import_memories`.
            progress: Draw a progress bar on stderr; None means when stderr is a terminal.
        """
        with open(path, encoding="utf-8") as stream:
            total = _jsonl.validate(stream)  # a bad line imports nothing
            header, memories = _jsonl.read(stream)
            head = _requests.import_memories_head(
                header=header, on_conflict=on_conflict, force_reembed=force_reembed
            )
            with Progress("imported", total=total, enabled=progress) as bar:
                return self._import(head, memories, timeout, bar)

    def export(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filter: str | None = None,
        omit_embeddings: bool = False,
        timeout: float | None = None,
    ) -> ExportStream:
        """Streams the memories of a scope or filter, or all of them (ExportMemories).

        Returns:
            An iterable of `Memory`, whose `header` is the export's header.
        """
        request = _requests.export_memories(
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            filter=filter,
            omit_embeddings=omit_embeddings,
        )
        return ExportStream(self._server_stream(self._stub.ExportMemories, request, timeout))

    def export_jsonl(
        self,
        path: PathLike,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filter: str | None = None,
        omit_embeddings: bool = False,
        progress: bool | None = False,
        timeout: float | None = None,
    ) -> int:
        """Writes an export to a JSON Lines file; returns how many memories it holds.

        The file is the export stream as it came: a header line, then one line per
        memory (see `import_jsonl`).
        """
        request = _requests.export_memories(
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            filter=filter,
            omit_embeddings=omit_embeddings,
        )
        count = 0
        with (
            open(path, "w", encoding="utf-8") as out,
            Progress("exported", enabled=progress) as bar,
        ):
            for message in self._server_stream(self._stub.ExportMemories, request, timeout):
                out.write(_jsonl.line(message) + "\n")
                if message.WhichOneof("item") == "memory":
                    count += 1
                    bar.advance()
        return count
