"""Extraction: the typed objects of ExtractionService and the one place its
requests are built and its responses decoded (both clients and the command
line call these).

A conversation goes in as messages (`ConversationMessage` or mappings with
"role", "content" and optionally "name" and "time"); an `Operation` comes
back, whose `facts` say what each fact did once it has SUCCEEDED.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from mnemo import types as t
from mnemo._core import conversions as _convert
from mnemo._core import requests as _requests
from mnemo._core.values import MetadataValue, fill_struct
from mnemo.v1 import extraction_service_pb2 as pb

__all__ = [
    "ConversationMessage",
    "ExtractionMode",
    "FactEvent",
    "FactOutcome",
    "Operation",
    "OperationPage",
    "OperationState",
]


class ExtractionMode(StrEnum):
    """How facts become changes: ADDITIVE (mem0 2.x) or RECONCILE (ADD/UPDATE/DELETE/NONE)."""

    UNSPECIFIED = "UNSPECIFIED"
    ADDITIVE = "ADDITIVE"
    RECONCILE = "RECONCILE"


class OperationState(StrEnum):
    UNSPECIFIED = "UNSPECIFIED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class FactEvent(StrEnum):
    UNSPECIFIED = "UNSPECIFIED"
    ADDED = "ADDED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"
    UNCHANGED = "UNCHANGED"


@dataclass(frozen=True, slots=True)
class ConversationMessage:
    """One message of a conversation: role "user", "assistant" or "system"."""

    role: str
    content: str
    name: str = ""
    #: When it was said: an aware datetime or an RFC 3339 string.
    time: datetime | str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FactOutcome:
    event: FactEvent
    text: str
    memory: t.Memory | None
    before: t.Memory | None
    after: t.Memory | None
    revision: int
    raw: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    """A durable extraction job. `error_reason` and `error_message` are set when
    FAILED; `facts` and `revision` when SUCCEEDED."""

    id: str
    state: OperationState
    user_id: str
    agent_id: str
    run_id: str
    mode: ExtractionMode
    request_id: str
    create_time: datetime | None
    update_time: datetime | None
    attempts: int
    error_reason: str
    error_message: str
    facts: tuple[FactOutcome, ...]
    revision: int
    raw: Any = None

    @property
    def done(self) -> bool:
        return self.state in (OperationState.SUCCEEDED, OperationState.FAILED)


@dataclass(frozen=True, slots=True, kw_only=True)
class OperationPage:
    operations: tuple[Operation, ...]
    next_page_token: str
    raw: Any = None


MessageLike = ConversationMessage | Mapping[str, Any]


def _enum_to_proto(prefix: str, cls: type[StrEnum], value: StrEnum | str) -> int:
    name = str(value).upper().removeprefix(prefix)
    if name not in cls.__members__ or name == "UNSPECIFIED":
        choices = ", ".join(m.value.lower() for m in cls if m.value != "UNSPECIFIED")
        raise ValueError(f"unknown {cls.__name__} {value!r}; expected one of {choices}")
    number: int = getattr(pb, prefix + name)
    return number


def _enum_from_proto(prefix: str, cls: type[Any], number: int, proto_enum: Any) -> Any:
    try:
        return cls(proto_enum.Name(number).removeprefix(prefix))
    except ValueError:
        return cls("UNSPECIFIED")


def extract_memories(
    messages: Sequence[MessageLike],
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    metadata: Mapping[str, MetadataValue] | None = None,
    mode: ExtractionMode | str | None = None,
    request_id: str | None = None,
    wait: bool = False,
) -> pb.ExtractMemoriesRequest:
    request = pb.ExtractMemoriesRequest(
        scope=_requests.scope(user_id, agent_id, run_id), request_id=request_id or "", wait=wait
    )
    for given in messages:
        message = given if isinstance(given, ConversationMessage) else ConversationMessage(**dict(given))
        out = request.messages.add(role=message.role, content=message.content, name=message.name)
        if isinstance(message.time, str):
            try:
                when = datetime.fromisoformat(message.time.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(
                    f"messages[{len(request.messages) - 1}].time: not RFC 3339: {message.time!r}"
                ) from None
            _convert.time_to_proto(when, out.time, name="time")
        elif message.time is not None:
            _convert.time_to_proto(message.time, out.time, name="time")
    if metadata:
        fill_struct(metadata, request.metadata)
    if mode is not None:
        request.mode = _enum_to_proto("EXTRACTION_MODE_", ExtractionMode, mode)  # type: ignore[assignment]
    return request


def get_operation(id: str) -> pb.GetOperationRequest:
    return pb.GetOperationRequest(id=id)


def list_operations(
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    state: OperationState | str | None = None,
    page_size: int | None = None,
    page_token: str | None = None,
) -> pb.ListOperationsRequest:
    request = pb.ListOperationsRequest(
        scope=_requests.scope(user_id, agent_id, run_id),
        page_size=page_size or 0,
        page_token=page_token or "",
    )
    if state is not None:
        request.state = _enum_to_proto("OPERATION_STATE_", OperationState, state)  # type: ignore[assignment]
    return request


def _memory(parent: Any, name: str) -> t.Memory | None:
    return _convert.memory(getattr(parent, name)) if parent.HasField(name) else None


def operation(o: pb.Operation) -> Operation:
    return Operation(
        id=o.id,
        state=_enum_from_proto("OPERATION_STATE_", OperationState, o.state, pb.OperationState),
        user_id=o.scope.user_id,
        agent_id=o.scope.agent_id,
        run_id=o.scope.run_id,
        mode=_enum_from_proto("EXTRACTION_MODE_", ExtractionMode, o.mode, pb.ExtractionMode),
        request_id=o.request_id,
        create_time=_convert.time_from_proto(o, "create_time"),
        update_time=_convert.time_from_proto(o, "update_time"),
        attempts=o.attempts,
        error_reason=o.error.reason,
        error_message=o.error.message,
        facts=tuple(
            FactOutcome(
                event=_enum_from_proto("FACT_EVENT_", FactEvent, f.event, pb.FactEvent),
                text=f.text,
                memory=_memory(f, "memory"),
                before=_memory(f, "before"),
                after=_memory(f, "after"),
                revision=f.revision,
                raw=f,
            )
            for f in o.result.facts
        ),
        revision=o.result.revision,
        raw=o,
    )


def operation_page(r: pb.ListOperationsResponse) -> OperationPage:
    return OperationPage(
        operations=tuple(operation(o) for o in r.operations), next_page_token=r.next_page_token, raw=r
    )
