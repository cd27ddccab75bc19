"""The Connect protocol (JSON or binary over HTTP/1.1) for every mnemo.v1 RPC.

Each call is forwarded to this process's own gRPC server over a private Unix
socket, so it passes the very interceptors and servicers a gRPC call does:
API keys and roles, tenant isolation, rate, stream and message-size limits,
quotas, audit, metrics and traces. Nothing here decides anything about a
call; it only changes the wire format:

    HTTP request --connectrpc (decode JSON/proto)--> gRPC stub --unix socket-->
        telemetry + security interceptors -> servicer -> service
    google.rpc.Status (code, message, details) --> Connect error JSON

The endpoints are built from the service descriptors at run time, so an RPC
added to the proto is served over HTTP with no change here.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any, Final

import grpc
from connectrpc.code import Code
from connectrpc.codec import Codec
from connectrpc.compat import google_protobuf_binary_codec
from connectrpc.errors import ConnectError, ErrorDetail
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import ConnectASGIApplication, Endpoint
from google.protobuf import any_pb2, descriptor_pb2, json_format, symbol_database
from google.protobuf.descriptor import FileDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from protobuf.wkt import Any as ConnectAny

from mnemo_server.api.interceptors import FORWARDED_PEER
from mnemo_server.api.status import DOMAIN

log = logging.getLogger("mnemo.http")

#: Request headers passed on to the gRPC call (everything else stays behind).
FORWARDED_HEADERS: Final = ("authorization", "x-request-id", "traceparent", "tracestate")

_IDEMPOTENCY = {
    descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS: IdempotencyLevel.NO_SIDE_EFFECTS,
    descriptor_pb2.MethodOptions.IDEMPOTENT: IdempotencyLevel.IDEMPOTENT,
}


class JsonCodec(Codec[Message, Any]):
    """Proto3 JSON, strict: an unknown field is an error, not silently dropped
    (a misspelt `topK` must not search with the default)."""

    def name(self) -> str:
        return "json"

    def encode(self, message: Message) -> bytes:
        return json_format.MessageToJson(message, indent=None).encode()

    def decode(self, data: bytes | bytearray, message_class: type[Any]) -> Any:
        message = message_class()
        try:
            json_format.Parse(bytes(data) or b"{}", message)
        except json_format.ParseError as exc:
            info = error_details_pb2.ErrorInfo(reason="INVALID_ARGUMENT", domain=DOMAIN)
            raise ConnectError(Code.INVALID_ARGUMENT, f"invalid JSON: {exc}", [_detail(info)]) from None
        return message


def _code_of(code: grpc.StatusCode) -> Code:
    name = code.name
    return Code.CANCELED if name == "CANCELLED" else Code[name]


def error_of(exc: grpc.aio.AioRpcError) -> ConnectError:
    """The Connect error of a failed gRPC call: the same code, message and
    google.rpc.Status details (ErrorInfo, BadRequest, RetryInfo)."""
    details: list[ErrorDetail] = []
    for key, value in exc.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            details = [_detail_of_any(item) for item in status.details]
    return ConnectError(_code_of(exc.code()), exc.details() or "", details)


def _detail(message: Message) -> ErrorDetail:
    packed = any_pb2.Any()
    packed.Pack(message)
    return _detail_of_any(packed)


def _detail_of_any(packed: any_pb2.Any) -> ErrorDetail:
    wire = ConnectAny(type_url=packed.type_url, value=packed.value)
    desc = _debug_types().get(packed.type_url.rpartition("/")[2])
    if desc is not None:
        # Decoded too, so the error JSON carries a readable "debug" copy
        # beside the base64 value (curl users see the reason and fields).
        try:
            decoded = wire.unpack(desc)
            if decoded is not None:
                return ErrorDetail(decoded)
        except Exception:
            log.debug("could not decode %s for the debug copy", packed.type_url, exc_info=True)
    return ErrorDetail(wire)


@functools.cache
def _debug_types() -> Mapping[str, Any]:
    """google.rpc error details as connectrpc's (protobuf-py) message types."""
    try:
        from protobuf._codegen import file_desc
        from protobuf.wkt.google.protobuf import duration_pb

        described = file_desc(_with_json_names(error_details_pb2.DESCRIPTOR), [duration_pb.desc()], {})
        return {desc.type_name: desc for desc in described.messages}
    except Exception:
        log.warning("error details go without their debug JSON copy", exc_info=True)
        return {}


def _with_json_names(file: FileDescriptor) -> bytes:
    """The file's descriptor proto with the JSON names protoc leaves out."""
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)

    def fill(message: descriptor_pb2.DescriptorProto, desc: Any) -> None:
        for field_proto in message.field:
            field_proto.json_name = desc.fields_by_name[field_proto.name].json_name
        for nested in message.nested_type:
            fill(nested, desc.nested_types_by_name[nested.name])

    for message in proto.message_type:
        fill(message, file.message_types_by_name[message.name])
    return proto.SerializeToString()


def _internal() -> ConnectError:
    info = error_details_pb2.ErrorInfo(reason="INTERNAL", domain=DOMAIN)
    return ConnectError(Code.INTERNAL, "internal error", [_detail(info)])


class Forwarder:
    """Calls this process's gRPC server for the HTTP side."""

    def __init__(self, channel: grpc.aio.Channel, *, secret: str) -> None:
        self.channel = channel
        self.secret = secret

    def metadata(self, ctx: RequestContext[Any, Any]) -> list[tuple[str, str]]:
        headers = ctx.request_headers
        out = [(name, value) for name in FORWARDED_HEADERS if (value := headers.get(name))]
        peer = _grpc_peer(ctx.client_address)
        if peer:
            out.append((FORWARDED_PEER, f"{self.secret} {peer}"))
        return out

    def timeout(self, ctx: RequestContext[Any, Any]) -> float | None:
        ms = ctx.timeout_ms
        return None if ms is None else ms / 1000


def _grpc_peer(address: str | None) -> str:
    """An HTTP client address in gRPC's spelling of peers: 10.0.0.7:51234 -> ipv4:10.0.0.7:51234."""
    if not address:
        return ""
    host = address.rpartition(":")[0]
    return f"ipv6:[{host.strip('[]')}]:{address.rpartition(':')[2]}" if ":" in host else f"ipv4:{address}"


def _endpoint(method: MethodDescriptor, forward: Forwarder) -> Any:
    """The connectrpc Endpoint of one RPC, forwarding to the gRPC server."""
    db = symbol_database.Default()
    request_type = db.GetSymbol(method.input_type.full_name)
    response_type = db.GetSymbol(method.output_type.full_name)
    path = f"/{method.containing_service.full_name}/{method.name}"
    streams = (method.client_streaming, method.server_streaming)
    kind = {
        (False, False): StreamType.UNARY,
        (True, False): StreamType.CLIENT_STREAM,
        (False, True): StreamType.SERVER_STREAM,
        (True, True): StreamType.BIDI_STREAM,
    }[streams]
    info = MethodInfo(
        name=method.name,
        service_name=method.containing_service.full_name,
        input=request_type,
        output=response_type,
        idempotency_level=_IDEMPOTENCY.get(method.GetOptions().idempotency_level, IdempotencyLevel.UNKNOWN),
        stream_type=kind,
    )
    encode, decode = request_type.SerializeToString, response_type.FromString
    if kind is StreamType.UNARY:
        unary = forward.channel.unary_unary(path, request_serializer=encode, response_deserializer=decode)

        async def call_unary(request: Any, ctx: RequestContext[Any, Any]) -> Any:
            with _translating(path):
                return await unary(request, metadata=forward.metadata(ctx), timeout=forward.timeout(ctx))

        return Endpoint.unary(info, call_unary)
    if kind is StreamType.SERVER_STREAM:
        server_stream = forward.channel.unary_stream(
            path, request_serializer=encode, response_deserializer=decode
        )

        async def call_server_stream(request: Any, ctx: RequestContext[Any, Any]) -> AsyncIterator[Any]:
            call = server_stream(request, metadata=forward.metadata(ctx), timeout=forward.timeout(ctx))
            async for item in _relay(call, path):
                yield item

        return Endpoint.server_stream(info, call_server_stream)
    if kind is StreamType.CLIENT_STREAM:
        client_stream = forward.channel.stream_unary(
            path, request_serializer=encode, response_deserializer=decode
        )

        async def call_client_stream(requests: AsyncIterator[Any], ctx: RequestContext[Any, Any]) -> Any:
            with _translating(path):
                return await client_stream(
                    requests, metadata=forward.metadata(ctx), timeout=forward.timeout(ctx)
                )

        return Endpoint.client_stream(info, call_client_stream)
    bidi = forward.channel.stream_stream(path, request_serializer=encode, response_deserializer=decode)

    async def call_bidi(requests: AsyncIterator[Any], ctx: RequestContext[Any, Any]) -> AsyncIterator[Any]:
        call = bidi(requests, metadata=forward.metadata(ctx), timeout=forward.timeout(ctx))
        async for item in _relay(call, path):
            yield item

    return Endpoint.bidi_stream(info, call_bidi)


async def _relay(call: Any, path: str) -> AsyncIterator[Any]:
    """The messages of a streaming gRPC call; cancels it when the HTTP
    client goes away."""
    try:
        with _translating(path):
            async for item in call:
                yield item
    finally:
        call.cancel()


@contextlib.contextmanager
def _translating(path: str) -> Iterator[None]:
    """Turns a forwarded call's failure into the Connect error the HTTP
    client gets: a gRPC status keeps its code and details, anything else is
    logged and answered as INTERNAL."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        raise error_of(exc) from None
    except ConnectError:
        raise
    except Exception:
        log.exception("forwarding %s failed", path)
        raise _internal() from None


class ServiceApp(ConnectASGIApplication[Forwarder]):
    """The Connect (and gRPC-Web) endpoints of one gRPC service."""

    def __init__(self, service: ServiceDescriptor, forward: Forwarder, *, read_max_bytes: int) -> None:
        self._path = f"/{service.full_name}"
        endpoints = {f"{self._path}/{m.name}": _endpoint(m, forward) for m in service.methods}
        super().__init__(
            service=forward,
            endpoints=lambda _forward: endpoints,
            read_max_bytes=read_max_bytes,
            codecs=[google_protobuf_binary_codec(), JsonCodec()],
        )

    @property
    def path(self) -> str:
        return self._path


def service_apps(
    services: Iterable[ServiceDescriptor], forward: Forwarder, *, read_max_bytes: int
) -> dict[str, ServiceApp]:
    """URL prefix ("/mnemo.v1.MemoryService") -> its app."""
    apps = [ServiceApp(s, forward, read_max_bytes=read_max_bytes) for s in services]
    return {app.path: app for app in apps}
