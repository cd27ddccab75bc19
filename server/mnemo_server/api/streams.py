"""mnemo.v1.MemoryService's streaming RPCs: StreamSearchMemories (the
queries themselves are answered in api/stream_search.py), ImportMemories,
ExportMemories and WatchMemories. Each runs inside the call wrapper of
api/envelope.py, which maps an error anywhere in the stream to its status.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server import filters
from mnemo_server.api import convert
from mnemo_server.api.envelope import Servicer, request_id_of, rpc
from mnemo_server.api.interceptors import current_call
from mnemo_server.api.status import status_of
from mnemo_server.api.stream_search import StreamSearch
from mnemo_server.errors import AbortedError, MnemoError, UnavailableError, invalid
from mnemo_server.feed import FeedEvent
from mnemo_server.models import Principal, Scope
from mnemo_server.service.types import ImportReport

EXPORT_FORMAT_VERSION = 1
IMPORT_BATCH = 500
WATCH_BATCH = 1000
#: How often a watch on one worker of a fleet looks for the other workers' writes.
FLEET_POLL_S = 0.05
_CONFLICT = {
    pb.IMPORT_CONFLICT_POLICY_UNSPECIFIED: "skip",
    pb.IMPORT_CONFLICT_POLICY_SKIP: "skip",
    pb.IMPORT_CONFLICT_POLICY_OVERWRITE: "overwrite",
    pb.IMPORT_CONFLICT_POLICY_FAIL: "fail",
}


class MemoryStreams(Servicer):
    """The streaming half of MemoryServicer (api/memory.py)."""

    _stream_slots: asyncio.Semaphore | None

    @rpc
    async def StreamSearchMemories(
        self,
        request_iterator: AsyncIterator[pb.StreamSearchMemoriesRequest],
        principal: Principal,
        context: Any,
    ) -> AsyncIterator[pb.StreamSearchMemoriesResponse]:
        state = current_call()
        limits = self.service.limits
        if self._stream_slots is None:
            self._stream_slots = asyncio.Semaphore(limits.max_stream_queries)
        search = StreamSearch(
            self,
            principal,
            request_id_of(context),
            charge=state.charge if state is not None else None,
            per_stream=limits.max_stream_in_flight,
            server_slots=self._stream_slots,
        )
        async for item in search.run(request_iterator):
            if isinstance(item, BaseException):
                raise item
            yield item

    @rpc
    async def ImportMemories(
        self, request_iterator: AsyncIterator[pb.ImportMemoriesRequest], principal: Principal, context: Any
    ) -> Any:
        options = pb.ImportOptions()
        header: pb.ExportHeader | None = None
        batch: list[tuple[int, Any, bool]] = []
        links: dict[str, Any] = {}
        position = 0
        total = ImportReport()
        if options.on_conflict not in pb.ImportConflictPolicy.values():
            raise invalid("INVALID_ENUM_VALUE", "options.on_conflict", "unknown conflict policy")

        async def flush() -> None:
            if not batch:
                return
            report = await self.run(
                self.service.import_batch,
                principal,
                list(batch),
                source_model=header.embedding_model if header else "",
                on_conflict=_CONFLICT[options.on_conflict],
                force_reembed=options.force_reembed,
            )
            total.merge(report)
            batch.clear()

        async for item in request_iterator:
            which = item.WhichOneof("item")
            if which == "options":
                if header is not None or position:
                    raise invalid("INVALID_ARGUMENT", "options", "options must come before the header")
                if item.options.on_conflict not in pb.ImportConflictPolicy.values():
                    raise invalid("INVALID_ENUM_VALUE", "options.on_conflict", "unknown conflict policy")
                options = item.options
            elif which == "header":
                if item.header.format_version != EXPORT_FORMAT_VERSION:
                    raise invalid(
                        "UNSUPPORTED_FORMAT_VERSION",
                        "header.format_version",
                        f"this server reads export format {EXPORT_FORMAT_VERSION}, "
                        f"not {item.header.format_version}",
                    )
                header = item.header
            elif which == "memory":
                if header is None:
                    raise invalid(
                        "IMPORT_HEADER_REQUIRED", "header", "send the export header before memories"
                    )
                try:
                    draft = convert.import_draft(item.memory, "memory")
                except MnemoError as exc:
                    total.fail(position, item.memory.id, exc)
                else:
                    if draft.links:
                        links[draft.id] = draft.links
                    batch.append((position, draft, bool(item.memory.id)))
                position += 1
                if len(batch) >= IMPORT_BATCH:
                    await flush()
            else:
                raise invalid(
                    "INVALID_ARGUMENT", "item", "each message carries options, a header or a memory"
                )
        await flush()
        # A memory skipped or failed as a conflict keeps the links it has.
        links = {memory_id: ls for memory_id, ls in links.items() if memory_id in total.written}
        await self.run(self.service.import_links, principal, links)
        response = pb.ImportMemoriesResponse(
            imported_count=total.imported,
            skipped_count=total.skipped,
            reembedded_count=total.reembedded,
            failed_count=total.failed,
        )
        request_id = request_id_of(context)
        for index, memory_id, error in total.failures:
            response.failures.add(
                index=index, memory_id=memory_id, status=status_of(error, request_id=request_id)
            )
        return response

    @rpc
    async def ExportMemories(
        self, request: pb.ExportMemoriesRequest, principal: Principal, context: Any
    ) -> AsyncIterator[pb.ExportMemoriesResponse]:
        snapshot = await self.run(
            self.service.export,
            principal,
            scope=convert.scope_from_proto(request.scope),
            filter_text=request.filter,
            with_embeddings=not request.omit_embeddings,
        )
        revision, batches = await self.run(snapshot.__enter__)
        try:
            header = pb.ExportMemoriesResponse()
            header.header.format_version = EXPORT_FORMAT_VERSION
            header.header.embedding_model = self.service.embedder.model_id
            header.header.dimension = self.service.embedder.dimension
            header.header.revision = revision
            convert.us_to_timestamp(self.service.clock(), header.header.export_time)
            yield header
            while True:
                memories = await self.run(next, batches, None)
                if memories is None:
                    break
                for memory in memories:
                    message = pb.ExportMemoriesResponse()
                    convert.memory_to_proto(memory, message.memory, embedding=not request.omit_embeddings)
                    yield message
        finally:
            await self.run(snapshot.__exit__, None, None, None)

    @rpc
    async def WatchMemories(
        self, request: pb.WatchMemoriesRequest, principal: Principal, context: Any
    ) -> AsyncIterator[pb.WatchMemoriesResponse]:
        watch = _WatchSpec.from_request(request)
        self.service.confine(principal, watch.scope)
        feed = self.service.feed
        subscription = feed.subscribe(principal.tenant, watch.scope, asyncio.get_running_loop())
        try:
            replay = request.HasField("start_revision")
            signal = self.service.revision_signal
            last = request.start_revision if replay else feed.latest_revision
            if signal is not None and not replay:
                last = max(last, signal.latest())  # other workers' writes before the watch
            if replay:
                while True:
                    events = await self.run(
                        self.service.feed_batch,
                        principal,
                        after=last,
                        scope=watch.scope,
                        limit=WATCH_BATCH,
                    )
                    if not events:
                        break
                    last = events[-1].change.revision
                    response = watch.response(events)
                    if response is not None:
                        yield response
                    if len(events) < WATCH_BATCH:
                        break
            # Caught up: a first progress notification is the client's sync point.
            last = last if replay else max(last, feed.latest_revision)
            yield pb.WatchMemoriesResponse(revision=last, progress_notification=True)
            if signal is not None:
                async for response in self._tail_fleet(principal, watch, subscription, last):
                    yield response
                return
            while True:
                if subscription.overflowed:
                    raise AbortedError(
                        "the watcher fell too far behind; resume from the last revision it saw",
                        reason="WATCH_TOO_SLOW",
                        metadata={"resume_revision": str(last)},
                    )
                if subscription.closed:
                    raise UnavailableError(
                        "the server is shutting down; resume elsewhere",
                        reason="SERVER_DRAINING",
                        metadata={"resume_revision": str(last)},
                        retry_after_s=1.0,
                    )
                # Read the feed's revision before draining: if the buffer is
                # then empty, every change up to it has been seen.
                latest = feed.latest_revision
                events = [e for e in subscription.drain() if e.change.revision > last]
                if events:
                    last = events[-1].change.revision
                    response = watch.response(events)
                    if response is not None:
                        yield response
                    continue
                last = max(last, latest)
                if not await subscription.wait(watch.interval_s):
                    latest = feed.latest_revision
                    if not subscription.has_events():
                        last = max(last, latest)
                    yield pb.WatchMemoriesResponse(revision=last, progress_notification=True)
        finally:
            subscription.cancel()

    async def _tail_fleet(
        self, principal: Principal, watch: _WatchSpec, subscription: Any, last: int
    ) -> AsyncIterator[pb.WatchMemoriesResponse]:
        """A watch on one worker of a fleet: every worker's writes, read from
        the store's log in revision order whenever the fleet's latest revision
        (fleet/counters.py) moves past the last one sent. Every revision up to
        that counter is committed (SQLite commits them in order), so nothing
        is skipped or sent twice. This worker's own writes wake it at once;
        the others' within FLEET_POLL_S."""
        signal = self.service.revision_signal
        assert signal is not None
        quiet = 0.0
        while True:
            if subscription.closed:
                raise UnavailableError(
                    "the server is shutting down; resume elsewhere",
                    reason="SERVER_DRAINING",
                    metadata={"resume_revision": str(last)},
                    retry_after_s=1.0,
                )
            subscription.drain()  # the log is read instead; the buffer must not overflow
            seen = signal.latest()
            if seen > last:
                events = await self.run(
                    self.service.feed_batch, principal, after=last, scope=watch.scope, limit=WATCH_BATCH
                )
                if events:
                    response = watch.response(events)
                    if response is not None:
                        yield response
                if len(events) == WATCH_BATCH:
                    last = events[-1].change.revision
                else:
                    last = max(seen, events[-1].change.revision if events else last)
                quiet = 0.0
                continue
            if not await subscription.wait(FLEET_POLL_S):
                quiet += FLEET_POLL_S
                if quiet >= watch.interval_s:
                    quiet = 0.0
                    yield pb.WatchMemoriesResponse(revision=last, progress_notification=True)


class _WatchSpec:
    """A watch request, validated: what to send and how often to report progress."""

    def __init__(self, scope: Scope, predicate: Any, types: set[int], interval_s: float) -> None:
        self.scope = scope
        self.predicate = predicate
        self.types = types
        self.interval_s = interval_s

    @classmethod
    def from_request(cls, request: pb.WatchMemoriesRequest) -> _WatchSpec:
        if request.start_revision < 0:
            raise invalid("INVALID_ARGUMENT", "start_revision", "must not be negative")
        for i, kind in enumerate(request.event_types):
            if kind not in (pb.EVENT_TYPE_PUT, pb.EVENT_TYPE_DELETE, pb.EVENT_TYPE_EXPIRED):
                raise invalid("INVALID_ENUM_VALUE", f"event_types[{i}]", f"unknown event type {kind}")
        interval = 10.0
        if request.HasField("progress_interval"):
            given = convert.duration_to_us(request.progress_interval, "progress_interval") / 1e6
            if given and given < 0.1:
                raise invalid("INVALID_ARGUMENT", "progress_interval", "must be at least 100 milliseconds")
            interval = given or interval
        expr = filters.parse_filter(request.filter)
        return cls(
            convert.scope_from_proto(request.scope),
            filters.to_predicate(expr) if expr else None,
            set(request.event_types),
            interval,
        )

    def response(self, events: list[FeedEvent]) -> pb.WatchMemoriesResponse | None:
        response = pb.WatchMemoriesResponse(revision=events[-1].change.revision)
        for event in events:
            kind = convert.EVENT_TYPES[event.change.change_type]
            if self.types and kind not in self.types:
                continue
            # A change whose memory was since forgotten has nothing to show.
            if kind == pb.EVENT_TYPE_PUT and (
                event.memory is None or (self.predicate is not None and not self.predicate(event.memory))
            ):
                continue
            convert.event_to_proto(event, response.events.add())
        return response if response.events else None
