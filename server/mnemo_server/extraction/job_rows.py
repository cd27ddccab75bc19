"""A job as a table row, the same for both job stores (jobs.py, pg_jobs.py):
COLUMNS in order, the values a new job inserts, and a row back to a Job.
Structured fields (messages, metadata, plan, outcome) are JSON text.
"""

from __future__ import annotations

import json
from typing import Any, Final

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

COLUMNS: Final = (
    "seq, id, tenant, api_key_id, key_user_ids, key_agent_ids, user_id, agent_id, run_id, mode,"
    " request_id, fingerprint, messages, metadata, state, attempts, plan, result, revision,"
    " error_reason, error_message, create_time_us, update_time_us"
)
#: Every column but seq, which the table assigns.
INSERT_COLUMNS: Final = COLUMNS.removeprefix("seq, ")


def insert_values(job: Job) -> tuple[Any, ...]:
    """The INSERT_COLUMNS values of a new job (no plan, no outcome yet)."""
    p, s = job.principal, job.spec
    return (
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
    )


def plan_json(plan: list[PlannedFact] | None) -> str | None:
    if plan is None:
        return None
    texts: dict[int, str] = {}
    return "[" + ", ".join(_fact_json(f, texts) for f in plan) + "]"


def result_json(facts: list[FactResult]) -> str:
    texts: dict[int, str] = {}
    return "[" + ", ".join(_result_json(f, texts) for f in facts) + "]"


def _memory_json(memory: Memory | None, texts: dict[int, str]) -> str:
    """A memory's JSON text, spliced in as is (not parsed and encoded again);
    one memory named twice (an added fact's memory and after) is encoded once."""
    if memory is None:
        return "null"
    found = texts.get(id(memory))
    if found is None:
        found = texts[id(memory)] = memory_to_json(memory)
    return found


def _memory(value: Any) -> Memory | None:
    return None if value is None else memory_from_json(json.dumps(value))


def _fact_json(f: PlannedFact, texts: dict[int, str]) -> str:
    fields = {"event": f.event.value, "text": f.text, "memory_id": f.memory_id, "etag": f.etag}
    head = json.dumps({**fields, "links": list(f.links)})
    return f'{head[:-1]}, "before": {_memory_json(f.before, texts)}}}'


def _result_json(f: FactResult, texts: dict[int, str]) -> str:
    head = json.dumps({"event": f.event.value, "text": f.text, "revision": f.revision})
    memories = ", ".join(
        f'"{name}": {_memory_json(getattr(f, name), texts)}' for name in ("memory", "before", "after")
    )
    return f"{head[:-1]}, {memories}}}"


def job_from_row(row: tuple[Any, ...]) -> Job:
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
