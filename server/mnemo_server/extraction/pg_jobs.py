"""PgJobStore: extraction jobs in the `extraction_jobs` table of the
PostgreSQL store's database (schema version 2, store/pg_schema.py).

Every server on the database shares the table: GetOperation and
ListOperations on any of them see every job, and a job outlives the server
that took it. Like PgKeyStore it shares nothing with PostgresStore but the
database (open the store first: it applies the schema) and keeps a small
pool of its own. Each call is one statement, so no lock is needed: a unique
index on (tenant, request_id) makes two servers racing one request id
store one job, and both answer with it.
"""

from __future__ import annotations

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
from mnemo_server.store.pg_connections import PgConnections


class PgJobStore(PgConnections, JobStore):
    def __init__(self, url: str, *, pool_size: int = 2) -> None:
        super().__init__(url, pool_size=pool_size)

    def create(self, job: Job) -> tuple[Job, bool]:
        # ON CONFLICT names the partial unique index extraction_jobs_request
        # (its columns and predicate): a losing racer inserts nothing and
        # reads the winner's job.
        row = self._one(
            f"INSERT INTO extraction_jobs ({INSERT_COLUMNS}) VALUES ({', '.join(['%s'] * 22)})"
            " ON CONFLICT (tenant, request_id) WHERE request_id <> '' DO NOTHING RETURNING seq",
            insert_values(job),
        )
        if row is not None:
            job.seq = int(row[0])
            return job, True
        found = self._one(
            f"SELECT {COLUMNS} FROM extraction_jobs WHERE tenant = %s AND request_id = %s",
            (job.principal.tenant, job.spec.request_id),
        )
        if found is None:  # only a job with that request id conflicts, and jobs are never deleted
            raise RuntimeError(f"extraction job {job.spec.request_id!r} conflicted but is not stored")
        return job_from_row(found), False

    def get(self, tenant: str, job_id: str) -> Job | None:
        row = self._one(
            f"SELECT {COLUMNS} FROM extraction_jobs WHERE tenant = %s AND id = %s", (tenant, job_id)
        )
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
        where: list[str] = ["tenant = %s"]
        params: list[Any] = [tenant]
        if state is not None:
            where.append("state = %s")
            params.append(state.value)
        for name in ("user_id", "agent_id", "run_id"):
            if getattr(scope, name):
                where.append(f"{name} = %s")
                params.append(getattr(scope, name))
        for name, allowed in (("user_id", user_ids), ("agent_id", agent_ids)):
            if allowed:
                where.append(f"{name} = ANY(%s)")
                params.append(list(allowed))
        if before_seq is not None:
            where.append("seq < %s")
            params.append(before_seq)
        rows = self._all(
            f"SELECT {COLUMNS} FROM extraction_jobs WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT %s",
            (*params, limit),
        )
        return [job_from_row(row) for row in rows]

    def unfinished(self) -> list[Job]:
        rows = self._all(
            f"SELECT {COLUMNS} FROM extraction_jobs WHERE state IN ('pending', 'running') ORDER BY seq"
        )
        return [job_from_row(row) for row in rows]

    def started(self, job: Job, now_us: int) -> None:
        job.state, job.update_time_us = State.RUNNING, now_us
        job.attempts += 1
        self._update(job, "state = %s, attempts = %s", (job.state.value, job.attempts))

    def planned(self, job: Job, plan: list[PlannedFact] | None, now_us: int) -> None:
        job.plan, job.update_time_us = plan, now_us
        self._update(job, "plan = %s", (plan_json(plan),))

    def succeeded(self, job: Job, facts: list[FactResult], revision: int, now_us: int) -> None:
        job.state, job.facts, job.revision, job.update_time_us = State.SUCCEEDED, facts, revision, now_us
        self._update(
            job,
            "state = %s, result = %s, revision = %s",
            (job.state.value, result_json(facts), revision),
        )

    def failed(self, job: Job, reason: str, message: str, now_us: int) -> None:
        job.state, job.error_reason, job.error_message = State.FAILED, reason, message
        job.update_time_us = now_us
        self._update(
            job, "state = %s, error_reason = %s, error_message = %s", (job.state.value, reason, message)
        )

    def _update(self, job: Job, sets: str, params: tuple[Any, ...]) -> None:
        self._exec(
            f"UPDATE extraction_jobs SET {sets}, update_time_us = %s WHERE tenant = %s AND id = %s",
            (*params, job.update_time_us, job.principal.tenant, job.id),
        )

    def close(self) -> None:
        if not self._closed:
            self._close_pool()
