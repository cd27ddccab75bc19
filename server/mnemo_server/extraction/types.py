"""The domain of extraction jobs: what a client asks for, what a job plans
and what it did. Plain data, JSON-serializable where it is stored."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from mnemo_server.models import Memory, Principal, Scope

ROLES = ("user", "assistant", "system")


class Mode(enum.Enum):
    """How facts become changes (ExtractionMode in the proto)."""

    ADDITIVE = "additive"
    RECONCILE = "reconcile"


class State(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (State.SUCCEEDED, State.FAILED)


class Event(enum.Enum):
    """What one fact did (FactEvent in the proto)."""

    ADDED = "added"
    UPDATED = "updated"
    DELETED = "deleted"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str
    name: str = ""
    time_us: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "content": self.content, "name": self.name, "time_us": self.time_us}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Message:
        return cls(d["role"], d["content"], d.get("name", ""), d.get("time_us"))


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A conversation accepted for extraction, as validated."""

    messages: tuple[Message, ...]
    scope: Scope
    metadata: dict[str, Any] = field(default_factory=dict)
    mode: Mode = Mode.ADDITIVE
    request_id: str = ""


@dataclass(slots=True)
class PlannedFact:
    """One decision of the LLM, checked against what it was shown.

    `event` is ADDED, UPDATED, DELETED or UNCHANGED; `memory_id` the id to
    create (ADDED) or the stored memory it concerns; `etag` that memory's etag
    when it was shown (the write is a compare-and-set on it); `links` stored
    memories the new one is related to (mem0's linked_memory_ids)."""

    event: Event
    text: str
    memory_id: str
    etag: str = ""
    links: tuple[str, ...] = ()
    #: The stored memory as shown to the LLM (UPDATED, DELETED, UNCHANGED).
    before: Memory | None = None


@dataclass(slots=True)
class FactResult:
    event: Event
    text: str
    memory: Memory | None
    before: Memory | None = None
    after: Memory | None = None
    revision: int = 0


@dataclass(slots=True)
class Job:
    """A stored job (one row of extraction_jobs)."""

    id: str
    principal: Principal
    spec: JobSpec
    fingerprint: str
    state: State
    create_time_us: int
    update_time_us: int
    attempts: int = 0
    error_reason: str = ""
    error_message: str = ""
    plan: list[PlannedFact] | None = None
    facts: list[FactResult] = field(default_factory=list)
    revision: int = 0
    seq: int = 0

    @property
    def order_key(self) -> tuple[str, ...]:
        """Jobs with one key run one at a time, in the order they were accepted:
        the user's (a user's memories are searched across its agents and runs),
        else the agent's, else the run's."""
        s = self.spec.scope
        if s.user_id:
            return (self.principal.tenant, "user", s.user_id)
        if s.agent_id:
            return (self.principal.tenant, "agent", s.agent_id)
        return (self.principal.tenant, "run", s.run_id)
