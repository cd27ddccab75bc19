"""The two streams the blocking client returns: `ExportStream` and `Watch`.

`mnemo._astreams` is generated from this module (clients/python/scripts/gen_aio.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Generator, Iterator
from types import TracebackType
from typing import Any

import grpc

from mnemo import types as t
from mnemo._core import conversions as _convert
from mnemo._core.retry import RetryPolicy, resume_revision
from mnemo.errors import MnemoError, from_rpc_error

log = logging.getLogger("mnemo")



class ExportStream(Iterator[t.Memory]):
    """The memories of an export, in order; `header` is the export's header."""

    def __init__(self, messages: Generator[Any, None, None]) -> None:
        self._messages = messages
        self._header: t.ExportHeader | None = None
        self._pending: Any = None
        self._started = False

    @property
    def header(self) -> t.ExportHeader:
        """The export's header (reads it from the stream if needed)."""
        self._start()
        if self._header is None:
            raise MnemoError("the export stream ended without a header", code="DATA_LOSS")
        return self._header

    def _start(self) -> None:
        if not self._started:
            self._started = True
            first = next(self._messages, None)
            if first is not None and first.WhichOneof("item") == "header":
                self._header = _convert.export_header(first.header)
            elif first is not None:
                self._pending = first

    def __next__(self) -> t.Memory:
        self._start()
        message = self._pending if self._pending is not None else next(self._messages)
        self._pending = None
        return _convert.memory(message.memory)

    def close(self) -> None:
        """Stops the export; the call is cancelled."""
        self._messages.close()


class Watch(Iterator[t.MemoryEvent]):
    """The change feed, as an iterator of `MemoryEvent`s that reconnects by itself.

    Attributes:
        revision: The revision to resume from: the watcher has seen every change
            up to it. Save it to resume later with `watch(start_revision=...)`.
    """

    def __init__(
        self,
        open_call: Callable[[int | None], Any],
        *,
        start_revision: int | None,
        reconnect: bool,
        retry: RetryPolicy,
    ) -> None:
        self.revision = start_revision
        self._open_call = open_call
        self._reconnect = reconnect
        self._retry = retry
        self._closed = False
        self._call: Any = None
        self._events = self._run()

    def __next__(self) -> t.MemoryEvent:
        return next(self._events)

    def _run(self) -> Generator[t.MemoryEvent, None, None]:
        failures = 0
        while not self._closed:
            call = self._call = self._open_call(self.revision)
            error: MnemoError | None = None
            try:
                for response in call:
                    failures = 0
                    for event in response.events:
                        self.revision = max(self.revision or 0, event.revision)
                        yield _convert.memory_event(event)
                    self.revision = max(self.revision or 0, response.revision)
            except grpc.RpcError as exc:
                error = from_rpc_error(exc)
            finally:
                call.cancel()
            if self._closed:
                return
            if error is not None:
                resume = resume_revision(error)
                if resume is not None:
                    self.revision = resume
                if not self._reconnect or (resume is None and not self._retry.retryable(error)):
                    raise error
            elif not self._reconnect:
                return
            failures += 1
            delay = self._retry.backoff(failures, error)
            log.info(
                "watch disconnected (%s); resuming after revision %d in %.2fs",
                error,
                self.revision,
                delay,
            )
            time.sleep(delay)

    def close(self) -> None:
        """Stops watching; the call is cancelled."""
        self._closed = True
        if self._call is not None:
            self._call.cancel()
        with contextlib.suppress(ValueError):  # iterated in another thread: the cancel ends it
            self._events.close()

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
