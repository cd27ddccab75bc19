"""SqliteJobStore: extraction jobs in the `extraction_jobs` table of the
store's SQLite file (schema version 3, sqlite_schema.py).

Like SqliteKeyStore it opens its own connection to the file SqliteStore
created, one connection behind a lock: job rows change a few times per job,
far less often than memories. A job's row holds everything needed to run it
again after a crash: the conversation, the caller's principal, the plan the
LLM made (once made) and, when finished, its outcome.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from mnemo_server import storage
from mnemo_server.extraction.types import (
    Event,
    FactResult,
    Job,
    JobSpec,
    Message,
    Mode,
    PlannedFact,
    State,
)
from mnemo_server.models import Memory, Principal, Scope
from mnemo_server.store.sqlite_codec import memory_from_json, memory_to_json
from mnemo_server.store.sqlite_schema import ensure_schema

_COLUMNS: Final = (
    "seq, id, tenant, api_key_id, key_user_ids, key_agent_ids, user_id, agent_id, run_id, mode,"
    " request_id, fingerprint, messages, metadata, state, attempts, plan, result, revision,"
    " error_reason, error_message, create_time_us, update_time_us"
)
_BUSY_TIMEOUT_MS: Final = 10_000


class SqliteJobStore:
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
        self._guard = guard
        self._synchronous = synchronous
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        # A job's progress (RUNNING, its plan, its outcome) is committed without
        # an fsync of its own: WAL frames are appended in order, so the fsync of
        # the job's write through the store (store.synchronous) makes the plan
        # before it durable too, and an outcome lost to a power cut only makes
        # the job replay that write. Creating a job, which the client is told
        # about, is committed with the store's mode.
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._lock = threading.Lock()
        try:
            ensure_schema(self._conn)
        except BaseException:
            self._conn.close()
            raise

    @contextmanager
    def _writing(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._guard is not None:
                self._guard()
            with storage.disk_full_as_error(what):
                yield self._conn

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
        p, s = job.principal, job.spec
        if s.request_id:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM extraction_jobs WHERE tenant = ? AND request_id = ?",
                (p.tenant, s.request_id),
            ).fetchone()
            if row is not None:
                return _job(row), False
        cursor = conn.execute(
            f"INSERT INTO extraction_jobs ({_COLUMNS.removeprefix('seq, ')})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job.id,
                p.tenant,
                p.api_key_id,
                json.dumps(list(p.user_ids)),
                json.dumps(list(p.agent_ids)),
                s.scope.user_id,
                s.scope.agent_id,
                s.scope.run_id,
                s.mode.value,
                s.request_id,
                job.fingerprint,
                json.dumps([m.to_json() for m in s.messages]),
                json.dumps(s.metadata),
                job.state.value,
                job.attempts,
                None,
                None,
                0,
                "",
                "",
                job.create_time_us,
                job.update_time_us,
            ),
        )
        job.seq = int(cursor.lastrowid or 0)
        return job, True

    def get(self, tenant: str, job_id: str) -> Job | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_COLUMNS} FROM extraction_jobs WHERE tenant = ? AND id = ?", (tenant, job_id)
            ).fetchone()
        return None if row is None else _job(row)

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
                f"SELECT {_COLUMNS} FROM extraction_jobs WHERE {' AND '.join(where)}"
                " ORDER BY seq DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [_job(row) for row in rows]

    def unfinished(self) -> list[Job]:
        """Every job left PENDING or RUNNING, oldest first (to run after a restart)."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM extraction_jobs WHERE state IN ('pending', 'running') ORDER BY seq"
            ).fetchall()
        return [_job(row) for row in rows]

    def started(self, job: Job, now_us: int) -> None:
        """RUNNING, one more LLM attempt counted."""
        job.state, job.update_time_us = State.RUNNING, now_us
        job.attempts += 1
        self._update(job, "state = ?, attempts = ?", (job.state.value, job.attempts))

    def planned(self, job: Job, plan: list[PlannedFact] | None, now_us: int) -> None:
        """Keeps the LLM's plan (None: forget it, to plan again)."""
        job.plan, job.update_time_us = plan, now_us
        self._update(job, "plan = ?", (None if plan is None else json.dumps([_fact_json(f) for f in plan]),))

    def succeeded(self, job: Job, facts: list[FactResult], revision: int, now_us: int) -> None:
        job.state, job.facts, job.revision, job.update_time_us = State.SUCCEEDED, facts, revision, now_us
        self._update(
            job,
            "state = ?, result = ?, revision = ?",
            (job.state.value, json.dumps([_result_json(f) for f in facts]), revision),
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

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _memory_json(memory: Memory | None) -> Any:
    return None if memory is None else json.loads(memory_to_json(memory))


def _memory(value: Any) -> Memory | None:
    return None if value is None else memory_from_json(json.dumps(value))


def _fact_json(f: PlannedFact) -> dict[str, Any]:
    return {
        "event": f.event.value,
        "text": f.text,
        "memory_id": f.memory_id,
        "etag": f.etag,
        "links": list(f.links),
        "before": _memory_json(f.before),
    }


def _result_json(f: FactResult) -> dict[str, Any]:
    return {
        "event": f.event.value,
        "text": f.text,
        "memory": _memory_json(f.memory),
        "before": _memory_json(f.before),
        "after": _memory_json(f.after),
        "revision": f.revision,
    }


def _job(row: tuple[Any, ...]) -> Job:
    plan = None
    if row[16] is not None:
        plan = [
            PlannedFact(
                Event(d["event"]),
                d["text"],
                d["memory_id"],
                d["etag"],
                tuple(d["links"]),
                _memory(d["before"]),
            )
            for d in json.loads(row[16])
        ]
    facts = [
        FactResult(
            Event(d["event"]),
            d["text"],
            _memory(d["memory"]),
            _memory(d["before"]),
            _memory(d["after"]),
            d["revision"],
        )
        for d in json.loads(row[17] or "[]")
    ]
    return Job(
        seq=row[0],
        id=row[1],
        principal=Principal(
            tenant=row[2],
            api_key_id=row[3],
            user_ids=tuple(json.loads(row[4])),
            agent_ids=tuple(json.loads(row[5])),
        ),
        spec=JobSpec(
            messages=tuple(Message.from_json(m) for m in json.loads(row[12])),
            scope=Scope(row[6], row[7], row[8]),
            metadata=json.loads(row[13]),
            mode=Mode(row[9]),
            request_id=row[10],
        ),
        fingerprint=row[11],
        state=State(row[14]),
        attempts=row[15],
        plan=plan,
        facts=facts,
        revision=row[18],
        error_reason=row[19],
        error_message=row[20],
        create_time_us=row[21],
        update_time_us=row[22],
    )
