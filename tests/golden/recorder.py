"""A server interceptor that records every request as proto-JSON, per case.

The runners tag each call with the metadata `x-golden-case`; the wire test
compares, case by case, what the Python and the Node SDK sent.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import json_format


class RequestRecorder(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def _record(self, case: str, method: str, message: Any) -> None:
        body = json_format.MessageToDict(message)
        with self._lock:
            self.calls[case].append({"method": method.rsplit("/", 1)[-1], "request": body})

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = await continuation(details)
        case = dict(details.invocation_metadata or ()).get("x-golden-case")
        if handler is None or not case or not details.method.startswith("/mnemo."):
            return handler
        method = details.method
        record = self._record

        if handler.unary_unary:
            inner = handler.unary_unary

            async def unary_unary(request: Any, context: Any) -> Any:
                record(case, method, request)
                return await inner(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            inner_us = handler.unary_stream

            async def unary_stream(request: Any, context: Any) -> AsyncIterator[Any]:
                record(case, method, request)
                async for item in inner_us(request, context):
                    yield item

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )

        async def tap(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
            async for request in requests:
                record(case, method, request)
                yield request

        if handler.stream_unary:
            inner_su = handler.stream_unary

            async def stream_unary(requests: AsyncIterator[Any], context: Any) -> Any:
                return await inner_su(tap(requests), context)

            return grpc.stream_unary_rpc_method_handler(
                stream_unary, handler.request_deserializer, handler.response_serializer
            )
        inner_ss = handler.stream_stream

        async def stream_stream(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
            async for item in inner_ss(tap(requests), context):
                yield item

        return grpc.stream_stream_rpc_method_handler(
            stream_stream, handler.request_deserializer, handler.response_serializer
        )
