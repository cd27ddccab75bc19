"""Tracing of a real server: a SERVER span per RPC, continuing the caller's
trace, with child spans for its stages; off (and free) unless configured."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server import telemetry
from mnemo_server.embed.base import Embedder

from ..conftest import RunningServer, make_settings, start_server

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def traced(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Iterator[tuple[RunningServer, Path]]:
    data = tmp_path_factory.mktemp("traced")
    spans = data / "spans.jsonl"
    running = start_server(make_settings(data, tracing={"file": str(spans)}), embedder)
    yield running, spans
    running.stop()


def spans_of(path: Path, trace_id: str) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        span = json.loads(line)
        if span["context"]["trace_id"] == "0x" + trace_id:
            out.append(span)
    return out


def wait_for_spans(path: Path, trace_id: str, timeout: float = 10) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while not (found := spans_of(path, trace_id)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def traceparent(trace_id: str, sampled: bool = True) -> tuple[tuple[str, str], ...]:
    return (("traceparent", f"00-{trace_id}-{PARENT_ID}-{'01' if sampled else '00'}"),)


def new_trace() -> str:
    return uuid.uuid4().hex


def test_search_has_an_rpc_span_with_stage_children(traced: tuple[RunningServer, Path]) -> None:
    server, path = traced
    uid = f"u-{uuid.uuid4().hex[:8]}"
    server.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content="Kim grows tomatoes"))
    )
    trace_id = new_trace()
    server.memory.SearchMemories(
        pb.SearchMemoriesRequest(query="what does kim grow", scope=m.Scope(user_id=uid)),
        metadata=(*traceparent(trace_id), ("x-request-id", "req-123")),
    )
    spans = spans_of(path, trace_id)
    (rpc,) = [s for s in spans if s["kind"] == "SpanKind.SERVER"]
    assert rpc["name"] == "mnemo.v1.MemoryService/SearchMemories"
    # It continues the caller's trace.
    assert rpc["parent_id"] == "0x" + PARENT_ID
    assert rpc["attributes"]["rpc.system"] == "grpc"
    assert rpc["attributes"]["rpc.method"] == "SearchMemories"
    assert rpc["attributes"]["rpc.grpc.status_code"] == 0
    assert rpc["attributes"]["mnemo.request_id"] == "req-123"
    assert rpc["resource"]["attributes"]["service.name"] == "mnemo"
    children = {s["name"]: s for s in spans if s["parent_id"] == rpc["context"]["span_id"]}
    assert {"cache.search", "embed", "index.search", "store.read"} <= set(children)
    assert children["embed"]["attributes"]["mnemo.texts"] == 1
    for child in children.values():
        assert rpc["start_time"] <= child["start_time"] <= child["end_time"] <= rpc["end_time"]


def test_write_stages_and_error_codes(traced: tuple[RunningServer, Path]) -> None:
    server, path = traced
    trace_id = new_trace()
    server.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(user_id="lee", content="Lee speaks Korean")),
        metadata=traceparent(trace_id),
    )
    spans = spans_of(path, trace_id)
    (rpc,) = [s for s in spans if s["kind"] == "SpanKind.SERVER"]
    assert rpc["name"] == "mnemo.v1.MemoryService/CreateMemory"
    names = {s["name"] for s in spans if s["parent_id"] == rpc["context"]["span_id"]}
    assert {"embed", "store.write", "publish"} <= names

    # A client error is recorded with its code but is not a server error.
    missing = new_trace()
    with pytest.raises(grpc.RpcError) as failed:
        server.memory.GetMemory(pb.GetMemoryRequest(id="nope"), metadata=traceparent(missing))
    assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    # An aborted call's status reaches the client just before its span ends.
    (rpc,) = wait_for_spans(path, missing)
    assert rpc["attributes"]["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert rpc["status"]["status_code"] == "UNSET"


def test_a_cancelled_stream_ends_its_span(traced: tuple[RunningServer, Path]) -> None:
    server, _ = traced
    memory = InMemorySpanExporter()
    tracing = server.app.telemetry.tracing
    assert tracing is not None
    tracing.add_exporter(memory, batch=False)
    trace_id = new_trace()
    call = server.memory.WatchMemories(
        pb.WatchMemoriesRequest(scope=m.Scope(user_id="mo")), metadata=traceparent(trace_id)
    )
    reader = threading.Thread(target=lambda: _drain(call), daemon=True)
    reader.start()
    time.sleep(0.3)
    call.cancel()
    reader.join(10)
    deadline = time.monotonic() + 10
    found: list[Any] = []
    while not found and time.monotonic() < deadline:
        found = [s for s in memory.get_finished_spans() if f"{s.context.trace_id:032x}" == trace_id]
        time.sleep(0.05)
    (rpc,) = found
    assert rpc.name == "mnemo.v1.MemoryService/WatchMemories"
    assert rpc.attributes is not None
    assert rpc.attributes["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0]


def _drain(call: Any) -> None:
    with contextlib.suppress(grpc.RpcError):
        for _ in call:
            pass


def test_sampling_follows_the_caller_else_the_ratio(tmp_path: Path, embedder: Embedder) -> None:
    path = tmp_path / "spans.jsonl"
    running = start_server(
        make_settings(tmp_path, tracing={"file": str(path), "sample_ratio": 0.0}), embedder
    )
    try:
        unsampled, sampled, fresh = new_trace(), new_trace(), new_trace()
        request = pb.GetMemoryRequest(id="nothing-here")
        for trace_id, flag in ((unsampled, False), (sampled, True)):
            with pytest.raises(grpc.RpcError):
                running.memory.GetMemory(request, metadata=traceparent(trace_id, flag))
        with pytest.raises(grpc.RpcError):
            running.memory.GetMemory(request, metadata=(("x-request-id", fresh),))
    finally:
        running.stop()
    lines = path.read_text().splitlines()
    assert len(spans_of(path, sampled)) == 1  # the server has stopped: every span is written
    assert spans_of(path, unsampled) == []
    # With ratio 0 and no caller decision, nothing at all is recorded.
    assert len(lines) == 1


def test_tracing_off_costs_nothing(tmp_path: Path, embedder: Embedder) -> None:
    # Outside an RPC, and with tracing and metrics off, a stage is the shared no-op.
    assert telemetry.span("embed") is telemetry.span("index.search")
    running = start_server(make_settings(tmp_path), embedder)
    try:
        assert running.app.telemetry.tracing is None
        assert running.app.telemetry.interceptor is None
    finally:
        running.stop()


def test_stage_names_are_the_documented_ones() -> None:
    source = "".join(
        p.read_text() for p in sorted((Path(telemetry.__file__).parent / "service").glob("*.py"))
    )
    used = {
        line.split('telemetry.span("', 1)[1].split('"', 1)[0]
        for line in source.splitlines()
        if 'telemetry.span("' in line
    }
    assert used == set(telemetry.STAGES)


class Collector(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    """An OpenTelemetry collector's OTLP/gRPC trace endpoint, keeping what it gets."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.resources: list[dict[str, Any]] = []

    def Export(self, request: Any, context: Any) -> Any:
        for resource_spans in request.resource_spans:
            self.resources.append({a.key: a.value.string_value for a in resource_spans.resource.attributes})
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


def test_spans_reach_an_otlp_collector(tmp_path: Path, embedder: Embedder) -> None:
    collector = Collector()
    otlp = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, otlp)
    port = otlp.add_insecure_port("127.0.0.1:0")
    otlp.start()
    try:
        running = start_server(
            make_settings(
                tmp_path,
                tracing={"otlp_endpoint": f"http://127.0.0.1:{port}", "service_name": "mnemo-test"},
            ),
            embedder,
        )
        trace_id = new_trace()
        try:
            running.memory.CreateMemory(
                pb.CreateMemoryRequest(memory=m.Memory(user_id="nia", content="Nia bakes bread")),
                metadata=traceparent(trace_id),
            )
        finally:
            running.stop()  # flushes the batch
        ours = [s for s in collector.spans if s.trace_id.hex() == trace_id]
        names = {s.name for s in ours}
        assert "mnemo.v1.MemoryService/CreateMemory" in names
        assert {"embed", "store.write", "publish"} <= names
        assert {"service.name": "mnemo-test"}.items() <= collector.resources[0].items()
    finally:
        otlp.stop(0)


def test_the_standard_otlp_variable_alone_turns_tracing_on(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = Collector()
    otlp = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, otlp)
    port = otlp.add_insecure_port("127.0.0.1:0")
    otlp.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    try:
        running = start_server(make_settings(tmp_path), embedder)
        trace_id = new_trace()
        try:
            running.memory.CreateMemory(
                pb.CreateMemoryRequest(memory=m.Memory(user_id="ola", content="Ola rows at dawn")),
                metadata=traceparent(trace_id),
            )
        finally:
            running.stop()  # flushes the batch
        assert "mnemo.v1.MemoryService/CreateMemory" in {
            s.name for s in collector.spans if s.trace_id.hex() == trace_id
        }
    finally:
        otlp.stop(0)


def test_which_otlp_endpoint_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from mnemo_server.config import ConfigError, TracingSettings

    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert not TracingSettings().enabled
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
    assert TracingSettings().endpoint() == ("http://collector:4317", "OTEL_EXPORTER_OTLP_ENDPOINT")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://traces:4317")
    assert TracingSettings().endpoint()[0] == "https://traces:4317"
    assert TracingSettings(otlp_endpoint="http://mine:4317").endpoint()[0] == "http://mine:4317"
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not TracingSettings().enabled
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not TracingSettings().enabled
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "traces:4317")
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: expected http://"):
        TracingSettings().validate()


def test_health_checks_and_reflection_make_no_spans(traced: tuple[RunningServer, Path]) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    server, path = traced
    probe, tool, work = new_trace(), new_trace(), new_trace()
    health_pb2_grpc.HealthStub(server.channel).Check(
        health_pb2.HealthCheckRequest(), metadata=traceparent(probe)
    )
    listed = reflection_pb2_grpc.ServerReflectionStub(server.channel).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), metadata=traceparent(tool)
    )
    assert list(listed)
    server.memory.ListMemories(pb.ListMemoriesRequest(scope=m.Scope(user_id="u")), metadata=traceparent(work))
    assert wait_for_spans(path, work), "the control call was not traced"
    assert spans_of(path, probe) == [] and spans_of(path, tool) == []


def test_otel_service_name_names_the_service_unless_the_setting_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from mnemo_server.config import TracingSettings

    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)

    def named(cfg: TracingSettings) -> str:
        tracing = telemetry.Tracing(cfg, version="1.2.3")
        try:
            attributes = tracing.provider.resource.attributes
            assert attributes["service.version"] == "1.2.3"
            return str(attributes["service.name"])
        finally:
            tracing.shutdown()

    assert named(TracingSettings()) == "mnemo"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "memory-prod")
    assert named(TracingSettings()) == "memory-prod"
    assert named(TracingSettings(service_name="explicit")) == "explicit"
    monkeypatch.delenv("OTEL_SERVICE_NAME")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs,deployment.environment=prod")
    assert named(TracingSettings()) == "from-attrs"
