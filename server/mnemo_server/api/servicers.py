"""gRPC servicers: decode -> service (in a worker thread) -> encode.

Every handler runs inside `_call`, which gates on readiness, finds the
request id and principal, and turns every exception into a status through
api/status.py. Blocking work never runs on the event loop: a search is
answered there only from in-process caches (service/search.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc

from mnemo.v1 import admin_service_pb2 as admin_pb
from mnemo.v1 import admin_service_pb2_grpc as admin_grpc
from mnemo.v1 import memory_service_pb2 as pb
from mnemo.v1 import memory_service_pb2_grpc as pb_grpc
from mnemo_server import filters
from mnemo_server.api import convert
from mnemo_server.api.interceptors import current_call, current_principal, note_error
from mnemo_server.api.status import OK, grpc_status_of, status_of
from mnemo_server.api.stream_search import StreamSearch
from mnemo_server.auth import ANONYMOUS, ROLES, ApiKeys, Caller
from mnemo_server.errors import (
    AbortedError,
    InvalidArgumentError,
    MnemoError,
    UnavailableError,
    UnimplementedError,
    invalid,
)
from mnemo_server.feed import FeedEvent
from mnemo_server.models import ApiKeyRecord, Principal, Scope
from mnemo_server.service import MemoryService
from mnemo_server.service.types import ImportReport, WriteOutcome

log = logging.getLogger("mnemo.api")
T = TypeVar("T")


class Gate:
    """Whether calls may proceed: not before the index is loaded, not while draining."""

    def __init__(self) -> None:
        self.ready = False
        self.draining = False

    def check(self) -> None:
        if self.draining:
            raise UnavailableError("the server is shutting down", reason="SERVER_DRAINING", retry_after_s=1.0)
        if not self.ready:
            raise UnavailableError(
                "the server is still loading", reason="SERVER_NOT_READY", retry_after_s=1.0
            )


def request_id_of(context: grpc.aio.ServicerContext) -> str:
    state = current_call()
    if state is not None:
        return state.request_id
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and value:
            return str(value)[:128]
    return uuid.uuid4().hex


def principal_of(context: grpc.aio.ServicerContext) -> Principal:
    """The caller's principal, found by the security interceptor from its API key."""
    return current_principal()


def caller_of(context: grpc.aio.ServicerContext) -> Caller:
    state = current_call()
    return state.caller if state is not None and state.caller is not None else ANONYMOUS


class _Base:
    def __init__(self, service: MemoryService | None, executor: Executor, gate: Gate) -> None:
        self.service: MemoryService = service  # type: ignore[assignment]  # set once loaded
        self.executor = executor
        self.gate = gate

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    async def fail(self, context: grpc.aio.ServicerContext, exc: BaseException, request_id: str) -> None:
        note_error(exc)
        if isinstance(exc, MnemoError):
            log.info("%s failed: %s %s (request_id=%s)", _method(context), exc.code, exc.reason, request_id)
        await context.abort_with_status(grpc_status_of(exc, request_id=request_id))


def _method(context: grpc.aio.ServicerContext) -> str:
    with contextlib.suppress(Exception):
        return str(context._rpc_event.call_details.method.decode())
    return "rpc"


def unary(
    handler: Callable[[Any, Any, Principal, grpc.aio.ServicerContext], Awaitable[Any]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    """Wraps a unary handler with gating, request ids and error mapping."""

    @functools.wraps(handler)
    async def wrapper(self: _Base, request: Any, context: grpc.aio.ServicerContext) -> Any:
        request_id = request_id_of(context)
        try:
            self.gate.check()
            return await handler(self, request, principal_of(context), context)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self.fail(context, exc, request_id)

    return wrapper


def outcome_to_result(outcome: WriteOutcome, out: pb.WriteResult, request_id: str) -> None:
    if outcome.error is not None:
        out.status.CopyFrom(status_of(outcome.error, request_id=request_id))
        return
    out.status.CopyFrom(OK)
    if outcome.kind == "create":
        out.create.CopyFrom(create_response(outcome))
    elif outcome.kind == "update":
        out.update.memory.CopyFrom(convert.memory_to_proto(outcome.memory, out.update.memory))  # type: ignore[arg-type]
    else:
        out.delete.revision = outcome.revision


def create_response(outcome: WriteOutcome) -> pb.CreateMemoryResponse:
    response = pb.CreateMemoryResponse(deduplicated=outcome.deduplicated, similarity=outcome.similarity)
    convert.memory_to_proto(outcome.memory, response.memory)  # type: ignore[arg-type]
    return response


class MemoryServicer(_Base, pb_grpc.MemoryServiceServicer):
    """mnemo.v1.MemoryService."""

    def __init__(self, service: MemoryService | None, executor: Executor, gate: Gate) -> None:
        super().__init__(service, executor, gate)
        # Event-loop only: rendered responses of result-cache hits (see _rendered).
        self._responses: OrderedDict[tuple[Any, ...], tuple[pb.SearchMemoriesResponse, int, list[int]]] = (
            OrderedDict()
        )
        # Queries of all StreamSearchMemories calls in flight (made on first use, in the loop).
        self._stream_slots: asyncio.Semaphore | None = None

    async def _one(self, principal: Principal, op: Any) -> WriteOutcome:
        outcome = (await self.run(self.service.write, principal, [op]))[0]
        if outcome.error is not None:
            raise outcome.error
        return outcome

    @unary
    async def CreateMemory(self, request: pb.CreateMemoryRequest, principal: Principal, context: Any) -> Any:
        outcome = await self._one(principal, convert.create_op(request, ""))
        return create_response(outcome)

    @unary
    async def GetMemory(self, request: pb.GetMemoryRequest, principal: Principal, context: Any) -> Any:
        fields = convert.read_mask_fields(
            request.read_mask if request.HasField("read_mask") else None, "read_mask"
        )
        with_embedding = fields is not None and "embedding" in fields
        memory = await self.run(self.service.get, principal, request.id, with_embedding=with_embedding)
        response = pb.GetMemoryResponse()
        convert.memory_to_proto(memory, response.memory, fields=fields)
        return response

    @unary
    async def UpdateMemory(self, request: pb.UpdateMemoryRequest, principal: Principal, context: Any) -> Any:
        outcome = await self._one(principal, convert.update_op(request, ""))
        response = pb.UpdateMemoryResponse()
        convert.memory_to_proto(outcome.memory, response.memory)  # type: ignore[arg-type]
        return response

    @unary
    async def DeleteMemory(self, request: pb.DeleteMemoryRequest, principal: Principal, context: Any) -> Any:
        outcome = await self._one(principal, convert.delete_op(request, ""))
        return pb.DeleteMemoryResponse(revision=outcome.revision)

    @unary
    async def ListMemories(self, request: pb.ListMemoriesRequest, principal: Principal, context: Any) -> Any:
        fields = convert.read_mask_fields(
            request.read_mask if request.HasField("read_mask") else None, "read_mask"
        )
        memories, token = await self.run(
            self.service.list_memories,
            principal,
            scope=convert.scope_from_proto(request.scope),
            filter_text=request.filter,
            order_by=request.order_by,
            page_size=request.page_size,
            page_token=request.page_token,
            with_embedding=fields is not None and "embedding" in fields,
        )
        response = pb.ListMemoriesResponse(next_page_token=token)
        for memory in memories:
            convert.memory_to_proto(memory, response.memories.add(), fields=fields)
        return response

    @unary
    async def SearchMemories(
        self, request: pb.SearchMemoriesRequest, principal: Principal, context: Any
    ) -> Any:
        query = convert.search_from_proto(request, "")
        # Validated and fingerprinted once, here; answered here only from
        # in-process caches, else in a worker thread with what was looked up.
        prepared = self.service.prepare(principal, [query])
        hit = self.service.look_up_inline(prepared)
        if hit is not None:
            rendered = self._rendered(principal, query, hit[0], prepared)
            if rendered is not None:
                return rendered
        result = (await self.run(self.service.search, principal, prepared))[0]
        return convert.search_result_to_proto(
            result.hits, result.embedding_model, include_embedding=query.include_embedding
        )

    def _rendered(
        self, principal: Principal, query: Any, lookup: Any, prepared: Any
    ) -> pb.SearchMemoriesResponse | None:
        """A result-cache hit as a response, rendered once per cache entry;
        None when a memory it shows is not in the record cache.

        The entry's stamp holds the generations it was computed under, and any
        change to a memory it shows bumps them, so the same stamp means the
        same records; only expiry needs checking.
        """
        key = (principal.tenant, lookup.scope, lookup.fingerprint, lookup.stamp, query.include_embedding)
        now = self.service.clock()
        found = self._responses.get(key)
        if found is not None and found[1] > now:
            self._responses.move_to_end(key)
            self.service.note_retrieved(found[2])
            return found[0]
        answered = self.service.answer_inline(prepared)
        if answered is None:
            return None
        result = answered[0]
        response = convert.search_result_to_proto(
            result.hits, result.embedding_model, include_embedding=query.include_embedding
        )
        expiries = [h.memory.expire_time_us for h in result.hits if h.memory.expire_time_us is not None]
        self._responses[key] = (response, min(expiries, default=2**63), [h.memory.key for h in result.hits])
        if len(self._responses) > RENDERED_RESPONSES:
            self._responses.popitem(last=False)
        return response

    @unary
    async def BatchSearchMemories(
        self, request: pb.BatchSearchMemoriesRequest, principal: Principal, context: Any
    ) -> Any:
        limit = self.service.limits.max_batch_search
        if not 1 <= len(request.requests) <= limit:
            raise invalid("BATCH_TOO_LARGE", "requests", f"give 1 to {limit} searches")
        queries = [convert.search_from_proto(r, f"requests[{i}]") for i, r in enumerate(request.requests)]
        results = await self.run(self.service.search, principal, queries)
        response = pb.BatchSearchMemoriesResponse()
        for query, result in zip(queries, results, strict=True):
            response.results.append(
                convert.search_result_to_proto(
                    result.hits, result.embedding_model, include_embedding=query.include_embedding
                )
            )
        return response

    async def StreamSearchMemories(
        self,
        request_iterator: AsyncIterator[pb.StreamSearchMemoriesRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.StreamSearchMemoriesResponse]:
        request_id = request_id_of(context)
        try:
            self.gate.check()
        except MnemoError as exc:
            await self.fail(context, exc, request_id)
            return
        principal = principal_of(context)
        state = current_call()
        limits = self.service.limits
        if self._stream_slots is None:
            self._stream_slots = asyncio.Semaphore(limits.max_stream_queries)
        search = StreamSearch(
            self,
            principal,
            request_id,
            charge=state.charge if state is not None else None,
            per_stream=limits.max_stream_in_flight,
            server_slots=self._stream_slots,
        )
        async for item in search.run(request_iterator):
            if isinstance(item, BaseException):
                await self.fail(context, item, request_id)
                return
            yield item

    @unary
    async def BatchWriteMemories(
        self, request: pb.BatchWriteMemoriesRequest, principal: Principal, context: Any
    ) -> Any:
        limit = self.service.limits.max_batch_write
        if not 1 <= len(request.operations) <= limit:
            raise invalid("BATCH_TOO_LARGE", "operations", f"give 1 to {limit} operations")
        ops: list[Any] = []
        decode_errors: dict[int, MnemoError] = {}
        for i, op in enumerate(request.operations):
            try:
                ops.append(convert.write_op_from_proto(op, f"operations[{i}]"))
            except InvalidArgumentError as exc:
                decode_errors[i] = exc
                ops.append(None)
        if decode_errors and request.atomic:
            outcomes = [WriteOutcome("", error=decode_errors.get(i) or _aborted()) for i in range(len(ops))]
        else:
            valid = [op for op in ops if op is not None]
            applied = iter(
                await self.run(
                    self.service.write, principal, valid, atomic=request.atomic, request_id=request.request_id
                )
            )
            outcomes = [
                WriteOutcome("", error=decode_errors[i]) if op is None else next(applied)
                for i, op in enumerate(ops)
            ]
        request_id = request_id_of(context)
        response = pb.BatchWriteMemoriesResponse(revision=max((o.revision for o in outcomes), default=0))
        for outcome in outcomes:
            outcome_to_result(outcome, response.results.add(), request_id)
        return response

    @unary
    async def GetMemoryHistory(
        self, request: pb.GetMemoryHistoryRequest, principal: Principal, context: Any
    ) -> Any:
        records, token = await self.run(
            self.service.history,
            principal,
            request.id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        response = pb.GetMemoryHistoryResponse(next_page_token=token)
        for record in records:
            convert.version_to_proto(record, response.versions.add())
        return response

    @unary
    async def DeleteMemories(
        self, request: pb.DeleteMemoriesRequest, principal: Principal, context: Any
    ) -> Any:
        result = await self.run(
            self.service.forget,
            principal,
            scope=convert.scope_from_proto(request.scope),
            filter_text=request.filter,
            dry_run=request.dry_run,
            request_id=request.request_id,
        )
        return pb.DeleteMemoriesResponse(
            deleted_count=result.deleted_count, memory_ids=result.memory_ids, revision=result.revision
        )

    @unary
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

    async def ExportMemories(
        self, request: pb.ExportMemoriesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ExportMemoriesResponse]:
        request_id = request_id_of(context)
        try:
            self.gate.check()
            principal = principal_of(context)
            snapshot = await self.run(
                self.service.export,
                principal,
                scope=convert.scope_from_proto(request.scope),
                filter_text=request.filter,
                with_embeddings=not request.omit_embeddings,
            )
            revision, batches = await self.run(snapshot.__enter__)
        except Exception as exc:
            await self.fail(context, exc, request_id)
            return
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

    async def WatchMemories(
        self, request: pb.WatchMemoriesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchMemoriesResponse]:
        request_id = request_id_of(context)
        try:
            self.gate.check()
            principal = principal_of(context)
            watch = _WatchSpec.from_request(request)
            self.service.confine(principal, watch.scope)
        except Exception as exc:
            await self.fail(context, exc, request_id)
            return
        feed = self.service.feed
        subscription = feed.subscribe(principal.tenant, watch.scope, asyncio.get_running_loop())
        try:
            replay = request.HasField("start_revision")
            last = request.start_revision if replay else feed.latest_revision
            if replay:
                while True:
                    try:
                        events = await self.run(
                            self.service.feed_batch,
                            principal,
                            after=last,
                            scope=watch.scope,
                            limit=WATCH_BATCH,
                        )
                    except Exception as exc:
                        await self.fail(context, exc, request_id)
                        return
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
        except MnemoError as exc:
            await self.fail(context, exc, request_id)
        finally:
            subscription.cancel()


EXPORT_FORMAT_VERSION = 1
RENDERED_RESPONSES = 4096
REEMBED_BATCH = 64
IMPORT_BATCH = 500
WATCH_BATCH = 1000
_CONFLICT = {
    pb.IMPORT_CONFLICT_POLICY_UNSPECIFIED: "skip",
    pb.IMPORT_CONFLICT_POLICY_SKIP: "skip",
    pb.IMPORT_CONFLICT_POLICY_OVERWRITE: "overwrite",
    pb.IMPORT_CONFLICT_POLICY_FAIL: "fail",
}


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


def _aborted() -> MnemoError:
    return AbortedError("not applied: another operation of the atomic batch failed")


class AdminServicer(_Base, admin_grpc.AdminServiceServicer):
    """mnemo.v1.AdminService."""

    #: Set by the App once the key store is open.
    api_keys: ApiKeys | None = None

    @unary
    async def GetStats(self, request: admin_pb.GetStatsRequest, principal: Principal, context: Any) -> Any:
        caller = caller_of(context)
        stats = await self.run(
            self.service.stats,
            principal,
            scope=convert.scope_from_proto(request.scope),
            scope_limit=request.scope_limit,
            # An admin of the system tenant sees every tenant (with auth on).
            all_tenants=caller.system and caller is not ANONYMOUS,
        )
        return convert.stats_to_proto(stats)

    @unary
    async def CheckConsistency(
        self, request: admin_pb.CheckConsistencyRequest, principal: Principal, context: Any
    ) -> Any:
        report = await self.run(self.service.check_consistency, repair=request.repair)
        kinds = {
            "missing": admin_pb.INCONSISTENCY_KIND_MISSING_FROM_INDEX,
            "orphan": admin_pb.INCONSISTENCY_KIND_ORPHAN_IN_INDEX,
            "stale": admin_pb.INCONSISTENCY_KIND_STALE_IN_INDEX,
        }
        response = admin_pb.CheckConsistencyResponse(
            consistent=not report.inconsistencies,
            store_count=report.store_count,
            index_count=report.index_count,
            repaired_count=report.repaired,
        )
        for item in report.inconsistencies[:1000]:
            response.inconsistencies.add(kind=kinds[item.kind], memory_id=item.memory_id, tenant=item.tenant)
        return response

    @unary
    async def CreateSnapshot(
        self, request: admin_pb.CreateSnapshotRequest, principal: Principal, context: Any
    ) -> Any:
        info = await self.run(self.service.snapshot)
        response = admin_pb.CreateSnapshotResponse(
            revision=info.revision, bytes=info.bytes, shard_count=info.shard_count
        )
        convert.us_to_timestamp(info.time_us, response.snapshot_time)
        return response

    async def ReembedMemories(
        self, request: admin_pb.ReembedMemoriesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[admin_pb.ReembedMemoriesResponse]:
        request_id = request_id_of(context)
        try:
            self.gate.check()
            principal = principal_of(context)
            ids = await self.run(
                self.service.reembed_candidates,
                principal,
                scope=convert.scope_from_proto(request.scope),
                filter_text=request.filter,
                force=request.force,
            )
            model = self.service.embedder.model_id
            done = 0
            yield admin_pb.ReembedMemoriesResponse(total_count=len(ids), embedding_model=model)
            if not request.dry_run:
                for start in range(0, len(ids), REEMBED_BATCH):
                    done += await self.run(
                        self.service.reembed, principal, ids[start : start + REEMBED_BATCH]
                    )
                    yield admin_pb.ReembedMemoriesResponse(
                        total_count=len(ids), reembedded_count=done, embedding_model=model
                    )
            yield admin_pb.ReembedMemoriesResponse(
                total_count=len(ids), reembedded_count=done, done=True, embedding_model=model
            )
        except Exception as exc:
            await self.fail(context, exc, request_id)

    def _keys(self) -> ApiKeys:
        if self.api_keys is None:
            raise UnimplementedError("this server has no key store")
        return self.api_keys

    @unary
    async def CreateApiKey(
        self, request: admin_pb.CreateApiKeyRequest, principal: Principal, context: Any
    ) -> Any:
        role = request.role
        if role not in admin_pb.ApiKeyRole.values():
            raise invalid("INVALID_ENUM_VALUE", "role", f"unknown role {role}")
        record, secret = await self.run(
            self._keys().create_key,
            caller_of(context),
            tenant=request.tenant,
            role=ROLES[role - 1] if role else "",
            user_ids=tuple(request.user_ids),
            agent_ids=tuple(request.agent_ids),
            display_name=request.display_name,
            ttl_us=convert.duration_to_us(request.ttl, "ttl") if request.HasField("ttl") else None,
        )
        response = admin_pb.CreateApiKeyResponse(secret=secret)
        _api_key_to_proto(record, response.api_key)
        return response

    @unary
    async def ListApiKeys(
        self, request: admin_pb.ListApiKeysRequest, principal: Principal, context: Any
    ) -> Any:
        records, token = await self.run(
            self._keys().list_keys,
            caller_of(context),
            page_size=request.page_size,
            page_token=request.page_token,
            show_revoked=request.show_revoked,
            tenant=request.tenant,
        )
        response = admin_pb.ListApiKeysResponse(next_page_token=token)
        for record in records:
            _api_key_to_proto(record, response.api_keys.add())
        return response

    @unary
    async def RevokeApiKey(
        self, request: admin_pb.RevokeApiKeyRequest, principal: Principal, context: Any
    ) -> Any:
        record = await self.run(self._keys().revoke_key, caller_of(context), request.id)
        response = admin_pb.RevokeApiKeyResponse()
        _api_key_to_proto(record, response.api_key)
        return response


def _api_key_to_proto(record: ApiKeyRecord, out: admin_pb.ApiKey) -> None:
    """An API key without its secret or hash."""
    out.id = record.id
    out.tenant = record.tenant
    out.role = admin_pb.ApiKeyRole.Value(f"API_KEY_ROLE_{record.role.upper()}")  # type: ignore[assignment]
    out.user_ids.extend(record.user_ids)
    out.agent_ids.extend(record.agent_ids)
    out.display_name = record.display_name
    convert.us_to_timestamp(record.create_time_us, out.create_time)
    for value, stamp in (
        (record.expire_time_us, out.expire_time),
        (record.revoke_time_us, out.revoke_time),
        (record.last_use_time_us, out.last_use_time),
    ):
        if value is not None:
            convert.us_to_timestamp(value, stamp)
