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

Queries are answered in batches: whatever has arrived while earlier queries
were being answered goes to the worker pool as one `service.search` (one
index call, one hydration, one thread hand-off), with at most
`_BATCHES` batches of a stream in the pool at once. Each query is decoded,
charged and prepared on its own, so a bad one gets its own error; when the
batch as a whole fails (an embedder down for one text query, say), its
queries are answered again one by one, so each gets its own outcome.
A batch whose queries carry a `min_revision` first waits for the highest
(api/consistency.py); each result carries the revision it reflects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server.api import consistency, convert
from mnemo_server.api.status import status_of
from mnemo_server.errors import invalid
from mnemo_server.models import Principal
from mnemo_server.service.query import PreparedSearch

#: Takes one token of the caller's rate limit (raises RATE_LIMITED).
Charge = Callable[[], Awaitable[None]]

#: Batches of one stream in the worker pool at a time: two keep both cores
#: busy (FAISS releases the GIL) while the next batch gathers.
_BATCHES = 2

Response = pb.StreamSearchMemoriesResponse


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
        self._results: asyncio.Queue[Response | BaseException | None] = asyncio.Queue()
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Read and holding slots, not yet taken by a batch: (id, search, charged).
        self._waiting: list[tuple[str, pb.SearchMemoriesRequest, bool]] = []
        self._batches = 0

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
                self._waiting.append((item.query_id, item.search, first))
                first = False
                self._start_batch()
            while self._tasks:
                await asyncio.gather(*list(self._tasks))
            await self._results.put(None)
        except Exception as exc:
            await self._results.put(exc)

    def _start_batch(self) -> None:
        if self._waiting and self._batches < _BATCHES:
            self._batches += 1
            task = asyncio.create_task(self._answer_waiting())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer_waiting(self) -> None:
        """Answers what is waiting, batch after batch, until nothing is."""
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                for message in await self._answer(batch):
                    await self._results.put(message)
        finally:
            self._batches -= 1
        self._start_batch()  # what arrived as this task was ending

    async def _answer(self, batch: list[tuple[str, pb.SearchMemoriesRequest, bool]]) -> list[Response]:
        servicer = self._servicer
        service = servicer.service
        answers: list[Response | None] = [None] * len(batch)
        good: list[tuple[int, Any, PreparedSearch]] = []
        for i, (query_id, request, charged) in enumerate(batch):
            try:
                if not charged:
                    await self._charge()
                query = convert.search_from_proto(request, "search")
                consistency.check(request.min_revision, "search.min_revision")
                good.append((i, query, service.prepare(self._principal, [query])))
            except Exception as exc:
                answers[i] = self._error(query_id, exc)
        wanted = max((batch[i][1].min_revision for i, _, _ in good), default=0)
        if wanted > 0:
            # One wait for the batch (the server's consistency_wait_ms: a
            # stream's deadline is the stream's); on failure only the
            # queries asking for more than was reached get the error.
            try:
                await consistency.reach(servicer, wanted)
            except Exception as exc:
                applied = service.applied_revision
                for i, _, _ in good:
                    if batch[i][1].min_revision > applied:
                        answers[i] = self._error(batch[i][0], exc)
                good = [g for g in good if answers[g[0]] is None]
        revision = service.applied_revision
        if good:
            merged = PreparedSearch(self._principal, [p for _, _, one in good for p in one.queries])
            try:
                results = await servicer.run(service.search, self._principal, merged)
            except Exception:
                # Each alone, from scratch (the batch may have taken lookups).
                results = None
            for n, (i, query, _) in enumerate(good):
                query_id = batch[i][0]
                try:
                    if results is None:
                        result = (await servicer.run(service.search, self._principal, [query]))[0]
                    else:
                        result = results[n]
                    one = convert.search_result_to_proto(
                        result.hits, result.embedding_model, include_embedding=query.include_embedding
                    )
                    one.revision = revision
                    answers[i] = Response(query_id=query_id, result=one)
                except Exception as exc:
                    answers[i] = self._error(query_id, exc)
        return [a for a in answers if a is not None]

    def _error(self, query_id: str, exc: BaseException) -> Response:
        return Response(query_id=query_id, error=status_of(exc, request_id=self._request_id))
