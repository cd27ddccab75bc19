"""JobStore: what the runner and the ExtractionService need of a job table.

Two implement it: SqliteJobStore (jobs.py, the store's SQLite file) and
PgJobStore (pg_jobs.py, the PostgreSQL store's database, shared by every
server on it). The methods are blocking; callers run them in an executor.
"""

from __future__ import annotations

import abc

from mnemo_server.extraction.types import FactResult, Job, PlannedFact, State
from mnemo_server.models import Scope


class JobStore(abc.ABC):
    @abc.abstractmethod
    def create(self, job: Job) -> tuple[Job, bool]:
        """Stores a new job (its seq set), or returns the job already stored
        under its tenant and request id (False then: nothing was stored)."""

    @abc.abstractmethod
    def get(self, tenant: str, job_id: str) -> Job | None: ...

    @abc.abstractmethod
    def list_jobs(
        self,
        tenant: str,
        *,
        state: State | None,
        scope: Scope,
        user_ids: tuple[str, ...],
        agent_ids: tuple[str, ...],
        before_seq: int | None,
        limit: int,
    ) -> list[Job]:
        """Newest first (seq descending), below `before_seq` when given; only
        jobs whose scope lies within `user_ids` and `agent_ids` when they are
        given (a restricted key's reach)."""

    @abc.abstractmethod
    def unfinished(self) -> list[Job]:
        """Every job left PENDING or RUNNING, oldest first (to run after a restart)."""

    @abc.abstractmethod
    def started(self, job: Job, now_us: int) -> None:
        """RUNNING, one more LLM attempt counted."""

    @abc.abstractmethod
    def planned(self, job: Job, plan: list[PlannedFact] | None, now_us: int) -> None:
        """Keeps the LLM's plan (None: forget it, to plan again)."""

    @abc.abstractmethod
    def succeeded(self, job: Job, facts: list[FactResult], revision: int, now_us: int) -> None: ...

    @abc.abstractmethod
    def failed(self, job: Job, reason: str, message: str, now_us: int) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...
