"""mnemo.v1.MemoryService: its unary RPCs, decode -> service (in a worker
thread) -> encode. The streaming ones are in api/streams.py; every handler
runs inside the call wrapper of api/envelope.py.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from concurrent.futures import Executor
from typing import Any

from mnemo.v1 import memory_service_pb2 as pb
from mnemo.v1 import memory_service_pb2_grpc as pb_grpc
from mnemo_server.api import consistency, convert
from mnemo_server.api.envelope import Gate, Servicer, request_id_of, rpc
from mnemo_server.api.status import OK, status_of
from mnemo_server.api.streams import MemoryStreams
from mnemo_server.errors import AbortedError, InvalidArgumentError, MnemoError, invalid
from mnemo_server.models import Principal
from mnemo_server.service import MemoryService
from mnemo_server.service.types import WriteOutcome

#: Rendered responses of result-cache hits kept (see MemoryServicer._rendered).
RENDERED_RESPONSES = 4096


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


class MemoryServicer(MemoryStreams, Servicer, pb_grpc.MemoryServiceServicer):
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

    @rpc
    async def CreateMemory(self, request: pb.CreateMemoryRequest, principal: Principal, context: Any) -> Any:
        outcome = await self._one(principal, convert.create_op(request, ""))
        return create_response(outcome)

    @rpc
    async def GetMemory(self, request: pb.GetMemoryRequest, principal: Principal, context: Any) -> Any:
        fields = convert.read_mask_fields(
            request.read_mask if request.HasField("read_mask") else None, "read_mask"
        )
        with_embedding = fields is not None and "embedding" in fields
        revision = await self._reach(request.min_revision, context)
        memory = await self.run(self.service.get, principal, request.id, with_embedding=with_embedding)
        response = pb.GetMemoryResponse(revision=revision)
        convert.memory_to_proto(memory, response.memory, fields=fields)
        return response

    @rpc
    async def UpdateMemory(self, request: pb.UpdateMemoryRequest, principal: Principal, context: Any) -> Any:
        outcome = await self._one(principal, convert.update_op(request, ""))
        response = pb.UpdateMemoryResponse()
        convert.memory_to_proto(outcome.memory, response.memory)  # type: ignore[arg-type]
        return response

    @rpc
    async def DeleteMemory(self, request: pb.DeleteMemoryRequest, principal: Principal, context: Any) -> Any:
        outcome = await self._one(principal, convert.delete_op(request, ""))
        return pb.DeleteMemoryResponse(revision=outcome.revision)

    @rpc
    async def ListMemories(self, request: pb.ListMemoriesRequest, principal: Principal, context: Any) -> Any:
        fields = convert.read_mask_fields(
            request.read_mask if request.HasField("read_mask") else None, "read_mask"
        )
        revision = await self._reach(request.min_revision, context)
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
        response = pb.ListMemoriesResponse(next_page_token=token, revision=revision)
        for memory in memories:
            convert.memory_to_proto(memory, response.memories.add(), fields=fields)
        return response

    @rpc
    async def SearchMemories(
        self, request: pb.SearchMemoriesRequest, principal: Principal, context: Any
    ) -> Any:
        query = convert.search_from_proto(request, "")
        # Validated and fingerprinted once, here; answered here only from
        # in-process caches, else in a worker thread with what was looked up.
        prepared = self.service.prepare(principal, [query])
        revision = await self._reach(request.min_revision, context)
        hit = self.service.look_up_inline(prepared)
        if hit is not None:
            rendered = self._rendered(principal, query, hit[0], prepared, revision)
            if rendered is not None:
                return rendered
        result = (await self.run(self.service.search, principal, prepared))[0]
        response = convert.search_result_to_proto(
            result.hits, result.embedding_model, include_embedding=query.include_embedding
        )
        response.revision = revision
        return response

    async def _reach(self, min_revision: int, context: Any) -> int:
        """The revision a read reflects, once it is at least `min_revision`
        (api/consistency.py: waits, bounded, on a replica behind)."""
        consistency.check(min_revision)
        if min_revision <= 0:
            return self.service.applied_revision
        return await consistency.reach(self, min_revision, consistency.remaining_of(context))

    def _rendered(
        self, principal: Principal, query: Any, lookup: Any, prepared: Any, revision: int
    ) -> pb.SearchMemoriesResponse | None:
        """A result-cache hit as a response, rendered once per cache entry;
        None when a memory it shows is not in the record cache.

        The entry's stamp holds the generations it was computed under, and any
        change to a memory it shows bumps them, so the same stamp means the
        same records; only expiry needs checking. The revision the response
        carries is the applied one: an entry rendered at an older one is
        replaced by a copy (responses handed out are never changed).
        """
        key = (principal.tenant, lookup.scope, lookup.fingerprint, lookup.stamp, query.include_embedding)
        now = self.service.clock()
        found = self._responses.get(key)
        if found is not None and found[1] > now:
            self._responses.move_to_end(key)
            self.service.note_retrieved(found[2])
            if found[0].revision != revision:
                fresh = pb.SearchMemoriesResponse()
                fresh.CopyFrom(found[0])
                fresh.revision = revision
                found = self._responses[key] = (fresh, found[1], found[2])
            return found[0]
        answered = self.service.answer_inline(prepared)
        if answered is None:
            return None
        result = answered[0]
        response = convert.search_result_to_proto(
            result.hits, result.embedding_model, include_embedding=query.include_embedding
        )
        response.revision = revision
        expiries = [h.memory.expire_time_us for h in result.hits if h.memory.expire_time_us is not None]
        self._responses[key] = (response, min(expiries, default=2**63), [h.memory.key for h in result.hits])
        if len(self._responses) > RENDERED_RESPONSES:
            self._responses.popitem(last=False)
        return response

    @rpc
    async def BatchSearchMemories(
        self, request: pb.BatchSearchMemoriesRequest, principal: Principal, context: Any
    ) -> Any:
        limit = self.service.limits.max_batch_search
        if not 1 <= len(request.requests) <= limit:
            raise invalid("BATCH_TOO_LARGE", "requests", f"give 1 to {limit} searches")
        queries = [convert.search_from_proto(r, f"requests[{i}]") for i, r in enumerate(request.requests)]
        for i, r in enumerate(request.requests):
            consistency.check(r.min_revision, f"requests[{i}].min_revision")
        revision = await self._reach(max(r.min_revision for r in request.requests), context)
        results = await self.run(self.service.search, principal, queries)
        response = pb.BatchSearchMemoriesResponse(revision=revision)
        for query, result in zip(queries, results, strict=True):
            one = convert.search_result_to_proto(
                result.hits, result.embedding_model, include_embedding=query.include_embedding
            )
            one.revision = revision
            response.results.append(one)
        return response

    @rpc
    async def BatchWriteMemories(
        self, request: pb.BatchWriteMemoriesRequest, principal: Principal, context: Any
    ) -> Any:
        limit = self.service.limits.max_batch_write
        if not 1 <= len(request.operations) <= limit:
            raise invalid("BATCH_TOO_LARGE", "operations", f"give 1 to {limit} operations")
        # Decoding (a vector per create) and the response are built in the
        # worker too: the event loop stays free for other calls.
        return await self.run(self._batch_write, request, principal, request_id_of(context))

    def _batch_write(
        self, request: pb.BatchWriteMemoriesRequest, principal: Principal, request_id: str
    ) -> pb.BatchWriteMemoriesResponse:
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
                self.service.write(principal, valid, atomic=request.atomic, request_id=request.request_id)
            )
            outcomes = [
                WriteOutcome("", error=decode_errors[i]) if op is None else next(applied)
                for i, op in enumerate(ops)
            ]
        response = pb.BatchWriteMemoriesResponse(revision=max((o.revision for o in outcomes), default=0))
        for outcome in outcomes:
            outcome_to_result(outcome, response.results.add(), request_id)
        return response

    @rpc
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

    @rpc
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


def _aborted() -> MnemoError:
    return AbortedError("not applied: another operation of the atomic batch failed")
