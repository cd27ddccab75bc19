"""Servers that misbehave on purpose, at the gRPC seam: a proxy in front of the
real server that fails calls as told, and a change feed that drops its watchers."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from mnemo.v1 import memory_service_pb2 as pb
from mnemo.v1 import memory_service_pb2_grpc as pb_grpc


def status(
    code: str,
    reason: str = "",
    message: str = "failed on purpose",
    *,
    retry_after: float | None = None,
    metadata: dict[str, str] | None = None,
    violations: Sequence[tuple[str, str]] = (),
) -> status_pb2.Status:
    """A google.rpc.Status as a Mnemo server would send it."""
    details = []
    if reason:
        info = error_details_pb2.ErrorInfo(reason=reason, domain="mnemo.dev", metadata=metadata or {})
        details.append(_pack(info))
    if violations:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                        for f, d in violations
                    ]
                )
            )
        )
    if retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(retry_after * 1e9))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    return status_pb2.Status(code=getattr(code_pb2, code), message=message, details=details)


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


@dataclass
class Fault:
    """What the proxy does to one call: fail it before forwarding, or forward it
    and then fail it anyway (the response is lost)."""

    status: status_pb2.Status
    after_forwarding: bool = False


@dataclass
class Call:
    method: str
    metadata: dict[str, str]
    request: bytes


@dataclass
class FlakyProxy:
    """Forwards unary calls to `target`, failing them first as `faults` say."""

    target: str
    faults: list[Fault] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    address: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._upstream = grpc.insecure_channel(self.target)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self._server.add_generic_rpc_handlers([_ProxyHandler(self)])
        port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self.address = f"127.0.0.1:{port}"

    def fail(self, *faults: Fault) -> None:
        with self._lock:
            self.faults[:] = list(faults)
            self.calls.clear()

    def next_fault(self) -> Fault | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None

    def handle(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        with self._lock:
            self.calls.append(Call(method, metadata, request))
        fault = self.next_fault()
        if fault is not None and not fault.after_forwarding:
            context.abort_with_status(rpc_status.to_status(fault.status))
        forward = {
            k: v for k, v in metadata.items() if not k.startswith(("grpc-", ":")) and k != "user-agent"
        }
        try:
            response: bytes = self._upstream.unary_unary(method)(request, metadata=tuple(forward.items()))
        except grpc.RpcError as exc:
            context.set_trailing_metadata(exc.trailing_metadata())
            context.abort(exc.code(), exc.details())
        if fault is not None:
            context.abort_with_status(rpc_status.to_status(fault.status))
        return response

    def close(self) -> None:
        self._server.stop(0).wait()
        self._upstream.close()


class _ProxyHandler(grpc.GenericRpcHandler):
    def __init__(self, proxy: FlakyProxy) -> None:
        self.proxy = proxy

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = details.method
        return grpc.unary_unary_rpc_method_handler(
            lambda request, context: self.proxy.handle(method, request, context)
        )


class FeedServicer(pb_grpc.MemoryServiceServicer):
    """A change feed that serves each watch from a script: `scripts[n]` is what the
    n-th connection sends, a list of responses then a final status (or None to
    stay open until cancelled). It records each request's start_revision."""

    def __init__(
        self, scripts: list[tuple[list[pb.WatchMemoriesResponse], status_pb2.Status | None]]
    ) -> None:
        self.scripts = scripts
        self.starts: list[int] = []
        self.connected = threading.Event()

    def WatchMemories(self, request: pb.WatchMemoriesRequest, context: grpc.ServicerContext) -> Iterator[Any]:
        self.starts.append(request.start_revision)
        n = len(self.starts) - 1
        responses, end = self.scripts[n] if n < len(self.scripts) else ([], None)
        self.connected.set()
        yield from responses
        if end is not None:
            context.abort_with_status(rpc_status.to_status(end))
        done = threading.Event()
        context.add_callback(done.set)
        done.wait(30)


def serve(
    servicer: pb_grpc.MemoryServiceServicer,
    credentials: grpc.ServerCredentials | None = None,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=list(interceptors))
    pb_grpc.add_MemoryServiceServicer_to_server(servicer, server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("localhost:0", credentials)
    server.start()
    return server, port


def event(revision: int, memory_id: str, content: str = "x") -> pb.MemoryEvent:
    from mnemo.v1 import memory_pb2

    return pb.MemoryEvent(
        type=pb.EVENT_TYPE_PUT,
        revision=revision,
        memory_id=memory_id,
        memory=memory_pb2.Memory(id=memory_id, content=content, revision=revision),
    )
