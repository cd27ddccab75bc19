"""The ExtractionService servicer: decode -> ExtractionRunner / job store -> encode.

Validation is synchronous (INVALID_ARGUMENT with field violations, nothing
stored); everything the LLM does happens in the job, whose failures are
reported in its Operation.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc

from mnemo.v1 import extraction_service_pb2 as pb
from mnemo_server import validation
from mnemo_server.api import convert
from mnemo_server.api.envelope import Gate, Servicer, rpc
from mnemo_server.config import Settings
from mnemo_server.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    invalid,
)
from mnemo_server.extraction.job_store import JobStore
from mnemo_server.extraction.runner import ExtractionRunner
from mnemo_server.extraction.types import ROLES, Event, Job, JobSpec, Message, Mode, State
from mnemo_server.models import Principal
from mnemo_server.pagination import decode_token, encode_token
from mnemo_server.pagination import fingerprint as query_fingerprint

log = logging.getLogger("mnemo.api")
T = TypeVar("T")

MODES = {
    pb.EXTRACTION_MODE_UNSPECIFIED: Mode.ADDITIVE,
    pb.EXTRACTION_MODE_ADDITIVE: Mode.ADDITIVE,
    pb.EXTRACTION_MODE_RECONCILE: Mode.RECONCILE,
}
MODE_TO_PROTO = {Mode.ADDITIVE: pb.EXTRACTION_MODE_ADDITIVE, Mode.RECONCILE: pb.EXTRACTION_MODE_RECONCILE}
STATES = {
    pb.OPERATION_STATE_PENDING: State.PENDING,
    pb.OPERATION_STATE_RUNNING: State.RUNNING,
    pb.OPERATION_STATE_SUCCEEDED: State.SUCCEEDED,
    pb.OPERATION_STATE_FAILED: State.FAILED,
}
STATE_TO_PROTO = {v: k for k, v in STATES.items()}
EVENT_TO_PROTO = {
    Event.ADDED: pb.FACT_EVENT_ADDED,
    Event.UPDATED: pb.FACT_EVENT_UPDATED,
    Event.DELETED: pb.FACT_EVENT_DELETED,
    Event.UNCHANGED: pb.FACT_EVENT_UNCHANGED,
}
MAX_NAME_CHARS = 256
DEFAULT_PAGE_SIZE = 50
#: A waiting call answers this long before its deadline, with the job still RUNNING.
_WAIT_MARGIN_S = 0.5
#: The longest a waiting call without a deadline waits.
MAX_WAIT_S = 300.0


class ExtractionServicer(Servicer):
    """ExtractionService. `service`, `jobs` and `runner` are set once the server has loaded."""

    def __init__(self, executor: Executor, gate: Gate, settings: Settings) -> None:
        super().__init__(None, executor, gate)
        self.settings = settings
        self.jobs: JobStore | None = None
        self.runner: ExtractionRunner | None = None

    @rpc
    async def ExtractMemories(
        self, request: pb.ExtractMemoriesRequest, principal: Principal, context: grpc.aio.ServicerContext
    ) -> Any:
        if self.runner is None:
            raise FailedPreconditionError(
                "this server has no extraction LLM configured (extraction.provider)",
                reason="EXTRACTION_NOT_CONFIGURED",
            )
        spec = self.spec_from_proto(request)
        assert self.service is not None
        self.service.confine(principal, spec.scope)
        job = await self.runner.submit(principal, spec)
        if request.wait and not job.state.finished:
            remaining = context.time_remaining()
            budget = MAX_WAIT_S if remaining is None else min(MAX_WAIT_S, remaining - _WAIT_MARGIN_S)
            job = await self.runner.wait(job, budget)
        return pb.ExtractMemoriesResponse(operation=operation_to_proto(job))

    @rpc
    async def GetOperation(
        self, request: pb.GetOperationRequest, principal: Principal, context: grpc.aio.ServicerContext
    ) -> Any:
        validation.check_id(request.id, "id")
        assert self.jobs is not None
        job = await self.run(self.jobs.get, principal.tenant, request.id)
        if job is None or not principal.allows(job.spec.scope):
            raise NotFoundError(
                f"operation {request.id!r} not found",
                reason="OPERATION_NOT_FOUND",
                metadata={"id": request.id},
            )
        return pb.GetOperationResponse(operation=operation_to_proto(job))

    @rpc
    async def ListOperations(
        self, request: pb.ListOperationsRequest, principal: Principal, context: grpc.aio.ServicerContext
    ) -> Any:
        size = validation.check_page_size(
            request.page_size, "page_size", self.settings.limits, DEFAULT_PAGE_SIZE
        )
        state = None
        if request.state:
            if request.state not in STATES:
                raise invalid("INVALID_ENUM_VALUE", "state", f"unknown operation state {request.state}")
            state = STATES[request.state]
        scope = convert.scope_from_proto(request.scope)
        query = query_fingerprint(
            principal.tenant, principal.user_ids, principal.agent_ids, request.state, scope
        )
        cursor = decode_token(request.page_token, query, [int])
        assert self.jobs is not None
        jobs = await self.run(
            self.jobs.list_jobs,
            principal.tenant,
            state=state,
            scope=scope,
            user_ids=principal.user_ids,
            agent_ids=principal.agent_ids,
            before_seq=None if cursor is None else cursor[0],
            limit=size + 1,
        )
        out = pb.ListOperationsResponse(operations=[operation_to_proto(j) for j in jobs[:size]])
        if len(jobs) > size:
            out.next_page_token = encode_token(query, [jobs[size - 1].seq])
        return out

    def spec_from_proto(self, request: pb.ExtractMemoriesRequest) -> JobSpec:
        cfg = self.settings.extraction
        bad: list[FieldViolation] = []
        messages: list[Message] = []
        if not request.messages:
            bad.append(FieldViolation("messages", "give at least one message"))
        elif len(request.messages) > cfg.max_messages:
            bad.append(
                FieldViolation(
                    "messages", f"at most {cfg.max_messages} messages, got {len(request.messages)}"
                )
            )
        total = 0
        for i, m in enumerate(request.messages[: cfg.max_messages]):
            where = f"messages[{i}]"
            if m.role not in ROLES:
                bad.append(FieldViolation(f"{where}.role", f"must be one of {', '.join(ROLES)}"))
            if not m.content.strip():
                bad.append(FieldViolation(f"{where}.content", "must not be empty"))
            if len(m.name) > MAX_NAME_CHARS:
                bad.append(FieldViolation(f"{where}.name", f"must be at most {MAX_NAME_CHARS} characters"))
            total += len(m.content.encode("utf-8"))
            time_us = convert.timestamp_to_us(m.time, f"{where}.time") if m.HasField("time") else None
            messages.append(Message(m.role, m.content, m.name, time_us))
        if total > cfg.max_conversation_bytes:
            bad.append(
                FieldViolation(
                    "messages",
                    f"the contents add up to {total} bytes, more than {cfg.max_conversation_bytes}",
                )
            )
        if bad:
            raise InvalidArgumentError(
                f"{bad[0].field}: {bad[0].description}", reason="CONVERSATION_INVALID", violations=bad
            )
        scope = convert.scope_from_proto(request.scope)
        if scope.is_empty():
            raise invalid(
                "SCOPE_REQUIRED", "scope.user_id", "give at least one of user_id, agent_id and run_id"
            )
        for name in ("user_id", "agent_id", "run_id"):
            validation.check_scope_value(getattr(scope, name), f"scope.{name}")
        metadata = convert.metadata_from_proto(request.metadata, "metadata")
        validation.check_metadata(metadata, "metadata", self.settings.limits)
        if request.mode not in MODES:
            raise invalid("INVALID_ENUM_VALUE", "mode", f"unknown extraction mode {request.mode}")
        validation.check_request_id(request.request_id, "request_id")
        return JobSpec(tuple(messages), scope, metadata, MODES[request.mode], request.request_id)


def operation_to_proto(job: Job) -> pb.Operation:
    out = pb.Operation(
        id=job.id,
        state=STATE_TO_PROTO[job.state],
        mode=MODE_TO_PROTO[job.spec.mode],
        request_id=job.spec.request_id,
        attempts=job.attempts,
    )
    convert.scope_to_proto(job.spec.scope, out.scope)
    convert.us_to_timestamp(job.create_time_us, out.create_time)
    convert.us_to_timestamp(job.update_time_us, out.update_time)
    if job.state is State.FAILED:
        out.error.reason, out.error.message = job.error_reason, job.error_message
    if job.state is State.SUCCEEDED:
        out.result.revision = job.revision
        for fact in job.facts:
            item = out.result.facts.add(
                event=EVENT_TO_PROTO[fact.event], text=fact.text, revision=fact.revision
            )
            for name in ("memory", "before", "after"):
                memory = getattr(fact, name)
                if memory is not None:
                    convert.memory_to_proto(memory, getattr(item, name))
    return out
