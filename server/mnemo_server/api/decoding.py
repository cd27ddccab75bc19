"""Requests that do not decode become INVALID_ARGUMENT / REQUEST_UNDECODABLE.

grpc runs a handler's request deserializer itself, before any handler or
interceptor code, and answers a deserializer's exception with UNKNOWN and
the exception's text. So every handler is registered with a deserializer
that never raises: bytes that are not the request message (garbage, a
string that is not UTF-8, nesting deeper than protobuf allows) become an
`Undecodable` sentinel, and the handler's behaviour, wrapped here, answers
it with a status of its own. Interceptors run first (a caller without a
key still gets UNAUTHENTICATED) and must let the sentinel through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import descriptor_pool, message_factory

from mnemo_server.api.interceptors import current_call, note_error
from mnemo_server.api.status import grpc_status_of
from mnemo_server.errors import InvalidArgumentError


class Undecodable:
    """What a wrapped deserializer returns for bytes it cannot decode."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def error(self) -> InvalidArgumentError:
        # A stable message: the parser's own text says nothing a client can use.
        return InvalidArgumentError(
            f"the request is not a valid {self.type_name} message", reason="REQUEST_UNDECODABLE"
        )


def safe_deserializer(message_type: Any) -> Callable[[bytes], Any]:
    """`message_type.FromString` that returns an Undecodable instead of raising."""
    parse = message_type.FromString
    type_name = message_type.DESCRIPTOR.full_name

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception:
            return Undecodable(type_name)

    return deserialize


async def _abort(context: grpc.aio.ServicerContext, exc: InvalidArgumentError) -> None:
    note_error(exc)
    state = current_call()
    await context.abort_with_status(grpc_status_of(exc, request_id=state.request_id if state else ""))


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A request stream that fails (in the handler, which reports it) at an undecodable message."""
    async for request in requests:
        if isinstance(request, Undecodable):
            raise request.error()
        yield request


def _wrap(handler: Any, message_type: Any) -> Any:
    replaced: dict[str, Any] = {"request_deserializer": safe_deserializer(message_type)}
    if handler.unary_unary is not None:
        inner_uu = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, Undecodable):
                await _abort(context, request.error())
            return await inner_uu(request, context)

        replaced["unary_unary"] = unary_unary
    elif handler.unary_stream is not None:
        inner_us = handler.unary_stream

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if isinstance(request, Undecodable):
                await _abort(context, request.error())
            async for response in inner_us(request, context):
                yield response

        replaced["unary_stream"] = unary_stream
    elif handler.stream_unary is not None:
        inner_su = handler.stream_unary

        async def stream_unary(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            return await inner_su(_checked(requests), context)

        replaced["stream_unary"] = stream_unary
    else:
        inner_ss = handler.stream_stream

        async def stream_stream(
            requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            async for response in inner_ss(_checked(requests), context):
                yield response

        replaced["stream_stream"] = stream_stream
    return handler._replace(**replaced)


class _Capture:
    """Stands in for a server to catch the handlers a generated add_*_to_server registers."""

    def __init__(self) -> None:
        self.handlers: dict[str, tuple[str, dict[str, Any]]] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.handlers[service] = (service, handlers)


def add_servicer(add_to_server: Callable[[Any, Any], None], servicer: Any, server: grpc.aio.Server) -> None:
    """Registers `servicer` as the generated `add_to_server` would, with safe deserializers."""
    capture = _Capture()
    add_to_server(servicer, capture)
    for service, handlers in capture.handlers.values():
        methods = descriptor_pool.Default().FindServiceByName(service).methods_by_name
        wrapped = {
            name: _wrap(handler, message_factory.GetMessageClass(methods[name].input_type))
            for name, handler in handlers.items()
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, wrapped),))
        server.add_registered_method_handlers(service, wrapped)
