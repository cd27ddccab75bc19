"""StreamSearchMemories: many queries on one stream, answered as they finish.

A stream is no way around the limits a unary call has:

- every query after the first takes a token from the caller's rate limit
  (the call itself took the first); a query that finds none is answered
  with its own RATE_LIMITED status and RetryInfo, and the stream goes on;
- at most `limits.max_stream_in_flight` queries of one stream are being
  answered (or wait to be sent) at a time, and at most
  `limits.max_stream_queries` of all streams of the server together. The
  stream is not read further until a slot frees, so gRPC flow control
  pushes back on a client that sends faster than it is answered: memory
  stays bounded, and a unary search of another caller waits behind at
  most `max_stream_queries` stream queries in the worker pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server.api import convert
from mnemo_server.api.status import status_of
from mnemo_server.errors import invalid
from mnemo_server.models import Principal

#: Takes one token of the caller's rate limit (raises RATE_LIMITED).
Charge = Callable[[], Awaitable[None]]


async def _free() -> None:
    return None


class StreamSearch:
    """One StreamSearchMemories call."""

    def __init__(
        self,
        servicer: Any,
        principal: Principal,
        request_id: str,
        *,
        charge: Charge | None,
        per_stream: int,
        server_slots: asyncio.Semaphore,
    ) -> None:
        self._servicer = servicer
        self._principal = principal
        self._request_id = request_id
        self._charge = charge or _free
        self._own_slots = asyncio.Semaphore(per_stream)
        self._server_slots = server_slots
        self._results: asyncio.Queue[pb.StreamSearchMemoriesResponse | BaseException | None] = asyncio.Queue()
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(
        self, requests: AsyncIterator[pb.StreamSearchMemoriesRequest]
    ) -> AsyncIterator[pb.StreamSearchMemoriesResponse | BaseException]:
        """Answers, in the order they finish; an exception ends the stream."""
        reader = asyncio.create_task(self._read(requests))
        try:
            while True:
                item = await self._results.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    yield item
                    return
                # A query holds its slots until its answer leaves for gRPC.
                self._release(item.query_id)
                yield item
        finally:
            reader.cancel()
            for task in list(self._tasks):
                task.cancel()
            for _ in range(len(self._in_flight)):
                self._server_slots.release()
            self._in_flight.clear()

    def _release(self, query_id: str) -> None:
        if query_id in self._in_flight:
            self._in_flight.discard(query_id)
            self._own_slots.release()
            self._server_slots.release()

    async def _read(self, requests: AsyncIterator[pb.StreamSearchMemoriesRequest]) -> None:
        first = True
        try:
            async for item in requests:
                if not item.query_id or item.query_id in self._in_flight:
                    raise invalid(
                        "INVALID_ARGUMENT",
                        "query_id",
                        "is required" if not item.query_id else f"{item.query_id!r} is already in flight",
                    )
                await self._own_slots.acquire()
                try:
                    await self._server_slots.acquire()
                except BaseException:
                    self._own_slots.release()
                    raise
                self._in_flight.add(item.query_id)
                charged = first
                first = False
                task = asyncio.create_task(self._answer(item.query_id, item.search, charged=charged))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if self._tasks:
                await asyncio.gather(*self._tasks)
            await self._results.put(None)
        except Exception as exc:
            await self._results.put(exc)

    async def _answer(self, query_id: str, request: pb.SearchMemoriesRequest, *, charged: bool) -> None:
        try:
            if not charged:
                await self._charge()
            query = convert.search_from_proto(request, "search")
            servicer = self._servicer
            result = (await servicer.run(servicer.service.search, self._principal, [query]))[0]
            message = pb.StreamSearchMemoriesResponse(
                query_id=query_id,
                result=convert.search_result_to_proto(
                    result.hits, result.embedding_model, include_embedding=query.include_embedding
                ),
            )
        except Exception as exc:
            message = pb.StreamSearchMemoriesResponse(
                query_id=query_id, error=status_of(exc, request_id=self._request_id)
            )
        await self._results.put(message)
