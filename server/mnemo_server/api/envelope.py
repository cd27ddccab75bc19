"""The one call wrapper every servicer method runs in, of all four RPC kinds.

`rpc` wraps a handler `(self, request, principal, context)`: a coroutine
for unary-unary and stream-unary calls (the request is then the request
iterator), an async generator for unary-stream and stream-stream calls.
Around it, the same envelope for each kind:

- the `Gate`: no call before the index has loaded (SERVER_NOT_READY), none
  while draining (SERVER_DRAINING);
- the request id and principal the security interceptor found
  (api/interceptors.py; the default tenant when there is no interceptor);
- every exception, before the first message or in the middle of a stream,
  becomes a status through api/status.py, noted for the audit record; a
  cancelled call stays cancelled.

Metrics, deadlines and rate limits are the interceptors' (telemetry_grpc.py,
api/interceptors.py). Blocking work never runs on the event loop: handlers
call `Servicer.run`, which runs it in the worker pool; a search is answered
on the loop only from in-process caches (service/search.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc

from mnemo_server.api.interceptors import current_call, current_principal, note_error
from mnemo_server.api.status import grpc_status_of
from mnemo_server.auth import ANONYMOUS, Caller
from mnemo_server.errors import MnemoError, UnavailableError
from mnemo_server.models import Principal
from mnemo_server.service import MemoryService

log = logging.getLogger("mnemo.api")
T = TypeVar("T")

#: A handler as written: a coroutine (one response) or an async generator (a stream of them).
Handler = Callable[[Any, Any, Principal, grpc.aio.ServicerContext], Any]


class Gate:
    """Whether calls may proceed: not before the index is loaded, not while draining."""

    def __init__(self) -> None:
        self.ready = False
        self.draining = False

    def check(self) -> None:
        if self.draining:
            raise UnavailableError("the server is shutting down", reason="SERVER_DRAINING", retry_after_s=1.0)
        if not self.ready:
            raise UnavailableError(
                "the server is still loading", reason="SERVER_NOT_READY", retry_after_s=1.0
            )


def request_id_of(context: grpc.aio.ServicerContext) -> str:
    state = current_call()
    if state is not None:
        return state.request_id
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and value:
            return str(value)[:128]
    return uuid.uuid4().hex


def principal_of(context: grpc.aio.ServicerContext) -> Principal:
    """The caller's principal, found by the security interceptor from its API key."""
    return current_principal()


def caller_of(context: grpc.aio.ServicerContext) -> Caller:
    state = current_call()
    return state.caller if state is not None and state.caller is not None else ANONYMOUS


class Servicer:
    """What every servicer holds: the service (set once loaded), the worker pool and the gate."""

    def __init__(self, service: MemoryService | None, executor: Executor, gate: Gate) -> None:
        self.service: MemoryService = service  # type: ignore[assignment]  # set once loaded
        self.executor = executor
        self.gate = gate

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` in the worker pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    async def fail(self, context: grpc.aio.ServicerContext, exc: BaseException, request_id: str) -> None:
        """Ends the call with the status of `exc` (raises grpc's AbortError)."""
        note_error(exc)
        if isinstance(exc, MnemoError):
            log.info("%s failed: %s %s (request_id=%s)", _method(context), exc.code, exc.reason, request_id)
        await context.abort_with_status(grpc_status_of(exc, request_id=request_id))


def _method(context: grpc.aio.ServicerContext) -> str:
    with contextlib.suppress(Exception):
        return str(context._rpc_event.call_details.method.decode())
    return "rpc"


def rpc(handler: Handler) -> Callable[[Any, Any, grpc.aio.ServicerContext], Any]:
    """Wraps a handler of any RPC kind with gating, request ids and error mapping."""
    if inspect.isasyncgenfunction(handler):
        return _streaming(handler)
    return _single(handler)


def _single(
    handler: Callable[[Any, Any, Principal, grpc.aio.ServicerContext], Awaitable[Any]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    @functools.wraps(handler)
    async def wrapper(self: Servicer, request: Any, context: grpc.aio.ServicerContext) -> Any:
        request_id = request_id_of(context)
        try:
            self.gate.check()
            return await handler(self, request, principal_of(context), context)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self.fail(context, exc, request_id)

    return wrapper


def _streaming(
    handler: Callable[[Any, Any, Principal, grpc.aio.ServicerContext], AsyncGenerator[Any, None]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
    @functools.wraps(handler)
    async def wrapper(self: Servicer, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        request_id = request_id_of(context)
        try:
            self.gate.check()
            # aclosing: a stream that ends early closes the handler at once,
            # so its `finally` (a snapshot to release) does not wait for GC.
            async with contextlib.aclosing(handler(self, request, principal_of(context), context)) as items:
                async for item in items:
                    yield item
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self.fail(context, exc, request_id)

    return wrapper
