"""SqliteJobStore: extraction jobs in the `extraction_jobs` table of the
store's SQLite file (schema version 3, sqlite_schema.py).

Like SqliteKeyStore it writes through a side connection to the file
SqliteStore created (store/sqlite_side.py), one connection behind a lock:
job rows change a few times per job, far less often than memories. A job's
row holds everything needed to run it again after a crash: the
conversation, the caller's principal, the plan the LLM made (once made) and,
when finished, its outcome.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mnemo_server.extraction.job_rows import (
    COLUMNS,
    INSERT_COLUMNS,
    insert_values,
    job_from_row,
    plan_json,
    result_json,
)
from mnemo_server.extraction.job_store import JobStore
from mnemo_server.extraction.types import FactResult, Job, PlannedFact, State
from mnemo_server.models import Scope
from mnemo_server.store.sqlite_side import SqliteSideConnection


class SqliteJobStore(SqliteSideConnection, JobStore):
    def __init__(
        self, path: Path, *, guard: Callable[[], None] | None = None, synchronous: str = "FULL"
    ) -> None:
        """Opens the job table of the database file at `path` (open the store first).

        Args:
            guard: called before each write; raises to refuse it (a lost data directory).
            synchronous: SQLite's synchronous mode, the store's (store.synchronous).
        """
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous: FULL or NORMAL, not {synchronous!r}")
        super().__init__(path, guard=guard)
        self._synchronous = synchronous
        # A job's progress (RUNNING, its plan, its outcome) is committed without
        # an fsync of its own: WAL frames are appended in order, so the fsync of
        # the job's write through the store (store.synchronous) makes the plan
        # before it durable too, and an outcome lost to a power cut only makes
        # the job replay that write. Creating a job, which the client is told
        # about, is committed with the store's mode.
        self._conn.execute("PRAGMA synchronous = NORMAL")

    def create(self, job: Job) -> tuple[Job, bool]:
        """Stores a new job, or returns the job already stored under its
        request id (False then: nothing was stored)."""
        with self._writing("the extraction job") as conn:
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            try:
                return self._create(conn, job)
            finally:
                conn.execute("PRAGMA synchronous = NORMAL")

    def _create(self, conn: sqlite3.Connection, job: Job) -> tuple[Job, bool]:
        # ON CONFLICT names the partial unique index extraction_jobs_request:
        # another connection (a fleet worker) racing the same request id
        # inserts nothing, and both answer with the one job stored.
        cursor = conn.execute(
            f"INSERT INTO extraction_jobs ({INSERT_COLUMNS}) VALUES ({', '.join('?' * 22)})"
            " ON CONFLICT (tenant, request_id) WHERE request_id != '' DO NOTHING",
            insert_values(job),
        )
        if cursor.rowcount == 0:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM extraction_jobs WHERE tenant = ? AND request_id = ?",
                (job.principal.tenant, job.spec.request_id),
            ).fetchone()
            return job_from_row(row), False
        job.seq = int(cursor.lastrowid or 0)
        return job, True

    def get(self, tenant: str, job_id: str) -> Job | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {COLUMNS} FROM extraction_jobs WHERE tenant = ? AND id = ?", (tenant, job_id)
            ).fetchone()
        return None if row is None else job_from_row(row)

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
        """Newest first; only jobs whose scope lies within `user_ids` and
        `agent_ids` when they are given (a restricted key's reach)."""
        where: list[str] = ["tenant = ?"]
        params: list[Any] = [tenant]
        if state is not None:
            where.append("state = ?")
            params.append(state.value)
        for name in ("user_id", "agent_id", "run_id"):
            if getattr(scope, name):
                where.append(f"{name} = ?")
                params.append(getattr(scope, name))
        for name, allowed in (("user_id", user_ids), ("agent_id", agent_ids)):
            if allowed:
                where.append(f"{name} IN ({', '.join('?' * len(allowed))})")
                params.extend(allowed)
        if before_seq is not None:
            where.append("seq < ?")
            params.append(before_seq)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {COLUMNS} FROM extraction_jobs WHERE {' AND '.join(where)}"
                " ORDER BY seq DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [job_from_row(row) for row in rows]

    def unfinished(self) -> list[Job]:
        """Every job left PENDING or RUNNING, oldest first (to run after a restart)."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {COLUMNS} FROM extraction_jobs WHERE state IN ('pending', 'running') ORDER BY seq"
            ).fetchall()
        return [job_from_row(row) for row in rows]

    def started(self, job: Job, now_us: int) -> None:
        """RUNNING, one more LLM attempt counted."""
        job.state, job.update_time_us = State.RUNNING, now_us
        job.attempts += 1
        self._update(job, "state = ?, attempts = ?", (job.state.value, job.attempts))

    def planned(self, job: Job, plan: list[PlannedFact] | None, now_us: int) -> None:
        """Keeps the LLM's plan (None: forget it, to plan again)."""
        job.plan, job.update_time_us = plan, now_us
        self._update(job, "plan = ?", (plan_json(plan),))

    def succeeded(self, job: Job, facts: list[FactResult], revision: int, now_us: int) -> None:
        job.state, job.facts, job.revision, job.update_time_us = State.SUCCEEDED, facts, revision, now_us
        self._update(
            job,
            "state = ?, result = ?, revision = ?",
            (job.state.value, result_json(facts), revision),
        )

    def failed(self, job: Job, reason: str, message: str, now_us: int) -> None:
        job.state, job.error_reason, job.error_message = State.FAILED, reason, message
        job.update_time_us = now_us
        self._update(
            job, "state = ?, error_reason = ?, error_message = ?", (job.state.value, reason, message)
        )

    def _update(self, job: Job, sets: str, params: tuple[Any, ...]) -> None:
        with self._writing("the extraction job") as conn:
            conn.execute(
                f"UPDATE extraction_jobs SET {sets}, update_time_us = ? WHERE tenant = ? AND id = ?",
                (*params, job.update_time_us, job.principal.tenant, job.id),
            )
