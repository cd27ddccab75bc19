"""Stage timing and tracing: what the service marks with `span("embed")`.

Each RPC gets an OpenTelemetry span (telemetry_grpc.py starts it), and the
service marks the stages of its work with `span(name)`: embed, cache lookups,
index search and apply, store reads and writes. A stage becomes a child span
when the RPC is traced and an observation of `mnemo_stage_seconds` when
metrics are on. Outside an RPC, or with both off, `span()` costs one
ContextVar lookup and returns a shared no-op context manager, and nothing of
OpenTelemetry is imported.

Tracing is off unless an exporter is configured; then each App has its own
TracerProvider (never the global one, so several servers can share a
process, as the tests do). The service runs in worker threads:
`ContextExecutor` carries the caller's contextvars into them, which is how a
stage finds its RPC.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, ParamSpec, TypeVar

from mnemo_server.config import DEFAULT_SERVICE_NAME, TracingSettings

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger("mnemo.telemetry")

P = ParamSpec("P")
T = TypeVar("T")

#: Called with (stage name, seconds) as each stage ends.
StageObserver = Callable[[str, float], None]

#: The names `span()` is called with in the service (metrics labels; docs/operations.md).
STAGES = (
    "embed",
    "cache.search",
    "cache.records",
    "index.search",
    "keyword.search",
    "rerank",
    "store.read",
    "store.write",
    "publish",
)


class _Active:
    """What the current RPC records stages into."""

    __slots__ = ("context", "observe", "tracer")

    def __init__(self, tracer: Tracer | None, context: Context | None, observe: StageObserver | None) -> None:
        self.tracer = tracer
        self.context = context
        self.observe = observe


_current: contextvars.ContextVar[_Active | None] = contextvars.ContextVar("mnemo_telemetry", default=None)
_NOOP: AbstractContextManager[None] = contextlib.nullcontext()


def span(name: str, **attributes: str | int | float | bool) -> AbstractContextManager[None]:
    """Marks a stage of the current RPC: a child span when it is traced, a
    `mnemo_stage_seconds{stage=name}` observation when metrics are on."""
    active = _current.get()
    if active is None:
        return _NOOP
    return _Stage(active, name, attributes)


class _Stage:
    __slots__ = ("_active", "_attributes", "_name", "_span", "_started", "_token")

    def __init__(self, active: _Active, name: str, attributes: Mapping[str, Any]) -> None:
        self._active = active
        self._name = name
        self._attributes = attributes
        self._span: Span | None = None
        self._token: contextvars.Token[_Active | None] | None = None
        self._started = 0.0

    def __enter__(self) -> None:
        active = self._active
        if active.tracer is not None:
            from opentelemetry import trace

            self._span = active.tracer.start_span(
                self._name,
                context=active.context,
                attributes={f"mnemo.{k}": v for k, v in self._attributes.items()},
            )
            # Stages inside this one become its children.
            self._token = _current.set(
                _Active(active.tracer, trace.set_span_in_context(self._span, active.context), active.observe)
            )
        self._started = time.perf_counter()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        elapsed = time.perf_counter() - self._started
        if self._active.observe is not None:
            self._active.observe(self._name, elapsed)
        if self._span is not None:
            if exc is not None:
                from opentelemetry.trace import Status, StatusCode

                self._span.record_exception(exc)
                self._span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            if self._token is not None:
                with contextlib.suppress(ValueError):
                    _current.reset(self._token)
            self._span.end()


# -- the RPC side (telemetry_grpc.py) -------------------------------------------------


def enter_rpc(
    tracer: Tracer | None, span: Span | None, observe: StageObserver | None
) -> contextvars.Token[_Active | None]:
    """Makes `span` (already started by `tracer`) and `observe` the target of
    the stages the current context runs until `leave_rpc`."""
    context = None
    if tracer is not None and span is not None and span.is_recording():
        from opentelemetry import trace

        context = trace.set_span_in_context(span)
    else:
        tracer = None
    return _current.set(_Active(tracer, context, observe) if tracer or observe else None)


def leave_rpc(token: contextvars.Token[_Active | None]) -> None:
    # A stream finalized outside its task runs in another context; its own is gone anyway.
    with contextlib.suppress(ValueError):
        _current.reset(token)


def resource_attributes(cfg: TracingSettings, version: str) -> dict[str, str]:
    """service.name and service.version. Resource.create adds OTEL_RESOURCE_ATTRIBUTES
    and OTEL_SERVICE_NAME; the latter names the service unless tracing.service_name
    is set to something other than its default, "mnemo"."""
    attributes = {"service.version": version}
    from_env = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    if cfg.service_name != DEFAULT_SERVICE_NAME or not from_env:
        attributes["service.name"] = cfg.service_name
    return attributes


class Tracing:
    """The TracerProvider of one App and its exporters."""

    def __init__(self, cfg: TracingSettings, *, version: str) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        self.provider: TracerProvider = TracerProvider(
            resource=Resource.create(resource_attributes(cfg, version)),
            sampler=ParentBased(TraceIdRatioBased(cfg.sample_ratio)),
            shutdown_on_exit=False,
        )
        self._files: list[IO[str]] = []
        endpoint = cfg.endpoint()[0]
        if endpoint:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            self.provider.add_span_processor(
                BatchSpanProcessor(
                    OTLPSpanExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
                )
            )
        if cfg.console:
            self.add_exporter(_json_lines_exporter(sys.stderr), batch=False)
        if cfg.file:
            stream = open(cfg.file, "a", encoding="utf-8")  # noqa: SIM115 - closed in shutdown()
            self._files.append(stream)
            self.add_exporter(_json_lines_exporter(stream), batch=False)
        self.tracer: Tracer = self.provider.get_tracer("mnemo_server", version)
        log.info(
            "tracing on: %s",
            ", ".join(
                n
                for n, on in (
                    (f"OTLP {endpoint}", endpoint),
                    ("console", cfg.console),
                    (f"file {cfg.file}", cfg.file),
                )
                if on
            ),
        )

    def add_exporter(self, exporter: SpanExporter, *, batch: bool = True) -> None:
        """Sends spans to another exporter too (batched, or each as it ends)."""
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        self.provider.add_span_processor(
            BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        )

    def start_rpc(self, name: str, carrier: Mapping[str, str], attributes: Mapping[str, Any]) -> Span:
        """A SERVER span for one call, the child of the caller's span when the
        metadata carries a W3C traceparent."""
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        parent = TraceContextTextMapPropagator().extract(carrier) if "traceparent" in carrier else None
        return self.tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes)

    def shutdown(self) -> None:
        """Flushes and stops the exporters; closes the span file."""
        try:
            self.provider.shutdown()
        finally:
            for stream in self._files:
                stream.close()


def _json_lines_exporter(stream: IO[str]) -> SpanExporter:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    def one_line(span: ReadableSpan) -> str:
        return str(span.to_json(indent=None)) + os.linesep

    return ConsoleSpanExporter(out=stream, formatter=one_line)


# -- threads -------------------------------------------------------------------------


class ContextExecutor(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose tasks run in a copy of the submitter's
    contextvars, as asyncio.to_thread does and loop.run_in_executor does not."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)  # type: ignore[arg-type]
