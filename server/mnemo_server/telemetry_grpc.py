"""Telemetry of the gRPC server: the interceptor that counts, times and traces
every call, and `Telemetry`, the one object App builds from its settings.

The interceptor is the outermost one, so it sees every call as the client
does, calls refused by later interceptors included. Unary calls are counted
when the handler returns; streams when they end, with the status they ended
with (CANCELLED when the client went away, DEADLINE_EXCEEDED when its
deadline passed). With metrics and tracing both off, App installs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

import grpc

from mnemo_server import telemetry
from mnemo_server.config import Settings
from mnemo_server.embed.base import Embedder
from mnemo_server.telemetry_metrics import MethodMetrics, Metrics

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from mnemo_server.service import MemoryService

log = logging.getLogger("mnemo.telemetry")

#: Codes that mean the server failed (OpenTelemetry's rule for server spans).
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_CODES_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}
# Probes and tools, not work: a kubelet's health check every few seconds would
# bury the traces that matter. They are still counted in the metrics.
UNTRACED_PREFIXES = ("grpc.health.v1.Health/", "grpc.reflection.")


class _Call:
    """One call in flight: its timer, its span and its stage target."""

    __slots__ = ("_metrics", "_span", "_started", "_token", "_tracing")

    def __init__(self, owner: TelemetryInterceptor, m: MethodMetrics | None, name: str, context: Any) -> None:
        self._metrics = m
        self._tracing = owner.tracing
        self._span: Span | None = None
        if m is not None:
            m.started.inc()
        if self._tracing is not None and not name.startswith(UNTRACED_PREFIXES):
            carrier = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
            service, _, method = name.rpartition("/")
            attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
            if carrier.get("x-request-id"):
                attributes["mnemo.request_id"] = carrier["x-request-id"][:128]
            self._span = self._tracing.start_rpc(name, carrier, attributes)
        self._token = telemetry.enter_rpc(
            self._tracing.tracer if self._tracing is not None else None,
            self._span,
            owner.metrics.observe_stage if owner.metrics is not None else None,
        )
        self._started = time.perf_counter()

    def finish(self, code: grpc.StatusCode) -> None:
        elapsed = time.perf_counter() - self._started
        telemetry.leave_rpc(self._token)
        if self._metrics is not None:
            self._metrics.seconds.observe(elapsed)
            self._metrics.handled(code.name).inc()
        if self._span is not None:
            self._span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code in _SERVER_ERRORS:
                from opentelemetry.trace import Status, StatusCode

                self._span.set_status(Status(StatusCode.ERROR, code.name))
            self._span.end()


def _code_of(context: Any, exc: BaseException | None) -> grpc.StatusCode:
    """The status a call ended with, as the client sees it."""
    code = context.code()
    if isinstance(code, int):
        code = _CODES_BY_VALUE.get(code, grpc.StatusCode.UNKNOWN)
    if exc is None:
        return code or grpc.StatusCode.OK
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        remaining = None
        with contextlib.suppress(Exception):
            remaining = context.time_remaining()
        return (
            grpc.StatusCode.DEADLINE_EXCEEDED
            if remaining is not None and remaining <= 0
            else grpc.StatusCode.CANCELLED
        )
    if code is None or code == grpc.StatusCode.OK:
        return grpc.StatusCode.UNKNOWN
    return code


class TelemetryInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Counts, times and traces every call; see the module docstring."""

    def __init__(self, *, metrics: Metrics | None, tracing: telemetry.Tracing | None) -> None:
        self.metrics = metrics
        self.tracing = tracing
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], handler_call_details: Any
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if isinstance(method, bytes):
            method = method.decode()
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: Any) -> Any:
        name = method.lstrip("/")
        kind = {
            (False, False): "unary",
            (False, True): "server_stream",
            (True, False): "client_stream",
            (True, True): "bidi_stream",
        }[(bool(handler.request_streaming), bool(handler.response_streaming))]
        inner = {
            "unary": handler.unary_unary,
            "server_stream": handler.unary_stream,
            "client_stream": handler.stream_unary,
            "bidi_stream": handler.stream_stream,
        }[kind]
        if not (inspect.iscoroutinefunction(inner) or inspect.isasyncgenfunction(inner)):
            return handler  # a synchronous handler: not this server's
        m = self.metrics.rpc.method(method, kind) if self.metrics is not None else None
        requests_stream = kind in ("client_stream", "bidi_stream")

        def incoming(request: Any) -> Any:
            if m is None:
                return request
            if not requests_stream:
                m.received.inc()
                return request
            return _counted(request, m)

        if inspect.isasyncgenfunction(inner):

            async def streaming(request: Any, context: Any) -> AsyncIterator[Any]:
                call = _Call(self, m, name, context)
                code = grpc.StatusCode.UNKNOWN
                responses = inner(incoming(request), context)
                try:
                    async for response in responses:
                        if m is not None:
                            m.sent.inc()
                        yield response
                    code = _code_of(context, None)
                except BaseException as exc:
                    code = _code_of(context, exc)
                    raise
                finally:
                    try:
                        await responses.aclose()
                    finally:
                        call.finish(code)

            behavior: Any = streaming
        else:

            async def unary(request: Any, context: Any) -> Any:
                call = _Call(self, m, name, context)
                try:
                    response = await inner(incoming(request), context)
                except BaseException as exc:
                    call.finish(_code_of(context, exc))
                    raise
                code = _code_of(context, None)
                if m is not None and code == grpc.StatusCode.OK:
                    m.sent.inc()
                call.finish(code)
                return response

            behavior = unary
        make = {
            "unary": grpc.unary_unary_rpc_method_handler,
            "server_stream": grpc.unary_stream_rpc_method_handler,
            "client_stream": grpc.stream_unary_rpc_method_handler,
            "bidi_stream": grpc.stream_stream_rpc_method_handler,
        }[kind]
        return make(
            behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def _counted(requests: AsyncIterator[Any], m: MethodMetrics) -> AsyncIterator[Any]:
    async for request in requests:
        m.received.inc()
        yield request


class Telemetry:
    """Metrics and tracing of one App, as its settings ask; inert when both are off."""

    def __init__(self, settings: Settings, *, executor: Executor, version: str) -> None:
        self.metrics = (
            Metrics(settings.metrics, executor=executor, version=version)
            if settings.metrics.address
            else None
        )
        self.tracing = (
            telemetry.Tracing(settings.tracing, version=version) if settings.tracing.enabled else None
        )
        self.interceptor = (
            TelemetryInterceptor(metrics=self.metrics, tracing=self.tracing)
            if self.metrics is not None or self.tracing is not None
            else None
        )

    @property
    def interceptors(self) -> tuple[grpc.aio.ServerInterceptor, ...]:
        """What App puts first in the server's interceptors."""
        return () if self.interceptor is None else (self.interceptor,)

    @property
    def metrics_port(self) -> int:
        """The bound port of the metrics endpoint; 0 when it is off."""
        return self.metrics.port if self.metrics is not None else 0

    def start(self) -> None:
        if self.metrics is not None:
            self.metrics.start()

    def wrap_model(self, model: Embedder) -> Embedder:
        """The model, timed and its batch sizes recorded when metrics are on."""
        return self.metrics.meter_model(model) if self.metrics is not None else model

    def attach(self, service: MemoryService, *, embedder: Embedder, ready: Callable[[], bool]) -> None:
        """Lets the scrape read the loaded service (and the micro-batcher, when `embedder` is one)."""
        if self.metrics is None:
            return
        from mnemo_server.embed.batching import MicroBatchingEmbedder

        collector = self.metrics.collector
        collector.batcher = embedder if isinstance(embedder, MicroBatchingEmbedder) else None
        collector.ready = ready
        collector.service = service

    def close(self) -> None:
        """Stops the endpoint and flushes the span exporters."""
        if self.metrics is not None:
            self.metrics.close()
        if self.tracing is not None:
            try:
                self.tracing.shutdown()
            except Exception:
                log.exception("flushing spans failed")
