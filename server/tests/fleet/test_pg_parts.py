"""The PostgreSQL fleet parts on the real test PostgreSQL (tests/pg_server.py):
PgRevisionSignal hears every commit of another store, falls back to polling
and reconnects when its connection is killed; PgAdvisoryLeaderLock admits one
leader, and a holder whose session dies loses the lead to the other."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from mnemo_server.fleet.pg_leader import PgAdvisoryLeaderLock
from mnemo_server.fleet.pg_signal import PgRevisionSignal
from mnemo_server.store.pg import PostgresStore

from ..pg_server import fresh_database_url
from ..store.factory import create, memory

DEADLINE_S = 20.0


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, f"not within {DEADLINE_S}s: {what}"
        time.sleep(0.01)


def terminate(url: str, application: str) -> int:
    """Ends the backends of `application` (pg_terminate_backend); how many."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application,),
        ).fetchall()
    return len(rows)


@pytest.fixture
def url() -> str:
    return fresh_database_url()


@pytest.fixture
def store(url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(url, pool_size=2)
    yield s
    s.close()


_ids = itertools.count()


def write(store: PostgresStore, n: int = 1) -> int:
    """Commits `n` memories in one transaction; its last revision."""
    return create(store, *(memory(f"m{next(_ids)}") for _ in range(n)))[-1].revision


def test_the_signal_hears_every_commit_of_another_store(url: str, store: PostgresStore) -> None:
    before = write(store)
    signal = PgRevisionSignal(url, fallback=lambda: 0).start()
    try:
        assert signal.listening
        assert signal.latest() == before  # read at connect, after LISTEN
        for _ in range(5):
            revision = write(store, 2)
            eventually(lambda r=revision: signal.latest() == r, f"revision {revision} heard")  # type: ignore[misc]
        signal.announce(revision - 1)  # never lowers
        assert signal.latest() == revision
    finally:
        signal.close()


def test_a_killed_listener_polls_the_store_and_reconnects(url: str, store: PostgresStore) -> None:
    polled: list[int] = []

    def fallback() -> int:
        polled.append(1)
        return store.current_revision()

    signal = PgRevisionSignal(url, fallback=fallback).start()
    try:
        assert signal.listening and signal.connections == 1
        assert terminate(url, f"mnemo-listen-{os.getpid()}") == 1
        eventually(lambda: not signal.listening or signal.connections > 1, "the loss noticed")
        revision = write(store)
        # Down or back: either way the write is seen (polled, or notified after reconnecting).
        eventually(lambda: signal.latest() >= revision, "the write seen")
        eventually(lambda: signal.listening and signal.connections == 2, "reconnected")
        later = write(store)
        eventually(lambda: signal.latest() == later, "notifications again")
    finally:
        signal.close()


def test_the_signal_polls_while_postgresql_is_unreachable() -> None:
    calls: list[int] = []
    signal = PgRevisionSignal("postgresql://nobody@127.0.0.1:1/none", fallback=lambda: calls.append(1) or 7)
    signal.start(wait_s=0.2)
    try:
        assert not signal.listening
        assert signal.latest() == 7 and calls
    finally:
        signal.close()


def test_one_leader_and_a_lost_session_hands_the_lead_over(url: str) -> None:
    first, second = PgAdvisoryLeaderLock(url), PgAdvisoryLeaderLock(url)
    try:
        assert first.try_lead()
        assert not second.try_lead()
        assert first.try_lead()  # still leads
        assert terminate(url, f"mnemo-leader-{os.getpid()}") == 2  # both sessions
        assert not first.try_lead()  # lost with its session, and says so
        assert second.try_lead()  # whichever asks first now leads
        assert not first.try_lead()
        second.release()
        assert first.try_lead()
    finally:
        first.release()
        second.release()
