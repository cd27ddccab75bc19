"""The JobStore contract, over both job stores: SqliteJobStore (the store's
SQLite file) and PgJobStore (the PostgreSQL store, tests/pg_server.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mnemo_server.extraction.job_store import JobStore
from mnemo_server.extraction.jobs import SqliteJobStore
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
from mnemo_server.models import Principal, Scope
from mnemo_server.store.sqlite import SqliteStore

from ..store.factory import T0, memory

Opener = Callable[[], JobStore]


def _sqlite(path: Path) -> Opener:
    SqliteStore(path / "mnemo.db").close()  # the store creates the file and its schema
    return lambda: SqliteJobStore(path / "mnemo.db")


def _postgres(path: Path) -> Opener:
    from mnemo_server.extraction.pg_jobs import PgJobStore

    from ..pg_server import fresh_database_url

    url = fresh_database_url()
    return lambda: PgJobStore(url)


@pytest.fixture(params=[_sqlite, _postgres], ids=["sqlite", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    make: Callable[[Path], Opener] = request.param
    return make(tmp_path)


@pytest.fixture
def jobs(opener: Opener) -> Iterator[JobStore]:
    store = opener()
    yield store
    store.close()


_COUNT = [0]


def job(
    *,
    tenant: str = "t1",
    scope: Scope = Scope("alice"),
    request_id: str = "",
    fingerprint: str = "fp",
    principal: Principal | None = None,
) -> Job:
    _COUNT[0] += 1
    return Job(
        id=f"job-{_COUNT[0]}",
        principal=principal or Principal(tenant=tenant, api_key_id="k1"),
        spec=JobSpec(
            messages=(Message("user", f"I like tea {_COUNT[0]}", name="al", time_us=T0),),
            scope=scope,
            metadata={"src": "chat", "n": _COUNT[0]},
            mode=Mode.ADDITIVE,
            request_id=request_id,
        ),
        fingerprint=fingerprint,
        state=State.PENDING,
        create_time_us=T0 + _COUNT[0],
        update_time_us=T0 + _COUNT[0],
    )


def test_create_then_get_returns_every_field(jobs: JobStore) -> None:
    principal = Principal(tenant="t1", api_key_id="k9", user_ids=("alice", "bob"), agent_ids=("a1",))
    new = job(principal=principal, scope=Scope("alice", "a1", "r1"), request_id="req-1")
    stored, created = jobs.create(new)
    assert created and stored.seq > 0
    got = jobs.get("t1", new.id)
    assert got == stored
    assert got is not None and got.principal == principal and got.spec == new.spec
    assert jobs.get("t2", new.id) is None  # another tenant's job is not there
    assert jobs.get("t1", "nope") is None


def test_a_request_id_seen_before_returns_its_job(jobs: JobStore) -> None:
    first, created = jobs.create(job(request_id="req", fingerprint="a"))
    again, created_again = jobs.create(job(request_id="req", fingerprint="b"))
    assert created and not created_again
    assert again.id == first.id and again.fingerprint == "a"
    other, created_other = jobs.create(job(tenant="t2", request_id="req"))  # per tenant
    assert created_other and other.id != first.id
    # An empty request id never deduplicates.
    assert jobs.create(job())[1] and jobs.create(job())[1]


def test_list_filters_and_pages_newest_first(jobs: JobStore) -> None:
    made = [
        jobs.create(job(scope=scope))[0]
        for scope in (Scope("alice"), Scope("bob", "a1"), Scope("alice", "a2", "r1"), Scope("", "a1"))
    ]
    jobs.create(job(tenant="t2"))
    jobs.started(made[1], T0 + 100)

    def ids(
        *,
        state: State | None = None,
        scope: Scope = Scope(),
        user_ids: tuple[str, ...] = (),
        agent_ids: tuple[str, ...] = (),
        before_seq: int | None = None,
        limit: int = 10,
    ) -> list[str]:
        found = jobs.list_jobs(
            "t1",
            state=state,
            scope=scope,
            user_ids=user_ids,
            agent_ids=agent_ids,
            before_seq=before_seq,
            limit=limit,
        )
        return [j.id for j in found]

    newest_first = [j.id for j in reversed(made)]
    assert ids() == newest_first
    assert ids(state=State.RUNNING) == [made[1].id]
    assert ids(state=State.PENDING) == [made[3].id, made[2].id, made[0].id]
    assert ids(scope=Scope("alice")) == [made[2].id, made[0].id]
    assert ids(scope=Scope("", "a1")) == [made[3].id, made[1].id]
    assert ids(scope=Scope("", "", "r1")) == [made[2].id]
    assert ids(user_ids=("bob", "alice")) == [made[2].id, made[1].id, made[0].id]
    assert ids(agent_ids=("a1",)) == [made[3].id, made[1].id]
    page = ids(limit=2)
    assert page == newest_first[:2]
    last = jobs.get("t1", page[-1])
    assert last is not None
    assert ids(before_seq=last.seq, limit=2) == newest_first[2:]
    assert ids(before_seq=made[0].seq) == []


def test_progress_and_outcomes_are_stored_and_unfinished_lists_the_rest(jobs: JobStore) -> None:
    a, b, c = (jobs.create(job())[0] for _ in range(3))
    jobs.started(a, T0 + 10)
    jobs.started(a, T0 + 11)
    before = memory("m1")
    plan = [
        PlannedFact(Event.ADDED, "likes tea", "m2", links=("m1",)),
        PlannedFact(Event.UPDATED, "likes green tea", "m1", etag="e1", before=before),
    ]
    jobs.planned(a, plan, T0 + 12)
    got = jobs.get("t1", a.id)
    assert got is not None
    assert (got.state, got.attempts, got.plan, got.update_time_us) == (State.RUNNING, 2, plan, T0 + 12)
    assert [j.id for j in jobs.unfinished()] == [a.id, b.id, c.id]

    jobs.planned(a, None, T0 + 13)
    got = jobs.get("t1", a.id)
    assert got is not None and got.plan is None

    facts = [FactResult(Event.UPDATED, "likes green tea", memory("m1"), before, memory("m1"), 7)]
    jobs.succeeded(a, facts, 7, T0 + 14)
    jobs.failed(b, "LLM_UNAVAILABLE", "the LLM did not answer", T0 + 15)
    got_a, got_b = jobs.get("t1", a.id), jobs.get("t1", b.id)
    assert got_a is not None and got_b is not None
    assert (got_a.state, got_a.facts, got_a.revision) == (State.SUCCEEDED, facts, 7)
    assert (got_b.state, got_b.error_reason, got_b.error_message, got_b.update_time_us) == (
        State.FAILED,
        "LLM_UNAVAILABLE",
        "the LLM did not answer",
        T0 + 15,
    )
    assert [j.id for j in jobs.unfinished()] == [c.id]


def test_jobs_survive_reopening(opener: Opener) -> None:
    first = opener()
    try:
        stored, _ = first.create(job(request_id="req"))
        first.started(stored, T0 + 5)
    finally:
        first.close()
    second = opener()
    try:
        got = second.get("t1", stored.id)
        assert got is not None and (got.state, got.attempts) == (State.RUNNING, 1)
        assert [j.id for j in second.unfinished()] == [stored.id]
        assert second.create(job(request_id="req"))[0].id == stored.id
        assert second.create(job())[0].seq > stored.seq
    finally:
        second.close()


def test_servers_racing_one_request_id_store_one_job(opener: Opener) -> None:
    """Two stores on one database (two servers) create the same request id at once."""
    stores = [opener() for _ in range(2)]
    barrier = threading.Barrier(len(stores) * 4)
    results: list[tuple[Job, bool]] = []
    lock = threading.Lock()

    def race(store: JobStore) -> None:
        barrier.wait()
        outcome = store.create(job(request_id="raced"))
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=race, args=(s,)) for s in stores for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        for s in stores:
            s.close()
    assert len(results) == 8
    assert sum(created for _, created in results) == 1
    assert len({j.id for j, _ in results}) == 1


def test_a_version_1_postgresql_database_gets_the_job_table() -> None:
    """A database migrated before jobs moved to PostgreSQL keeps its memories
    and gains extraction_jobs at the next start (migration step 2)."""
    import psycopg

    from mnemo_server.extraction.pg_jobs import PgJobStore
    from mnemo_server.store.pg import PostgresStore
    from mnemo_server.store.pg_schema import MIGRATIONS, SCHEMA_VERSION

    from ..pg_server import shared

    url = shared().create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("UPDATE schema_version SET version = 1")
        assert conn.execute("SELECT to_regclass('extraction_jobs')").fetchone() == (None,)
    PostgresStore(url, pool_size=1).close()  # migrates
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (SCHEMA_VERSION,)
    jobs = PgJobStore(url)
    try:
        stored, created = jobs.create(job(request_id="after-migration"))
        assert created and jobs.get("t1", stored.id) == stored
    finally:
        jobs.close()
