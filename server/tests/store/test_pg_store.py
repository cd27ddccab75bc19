"""What only the PostgreSQL store has: revisions in commit order across
processes, versioned migrations, and a server that goes away."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from mnemo_server import errors
from mnemo_server.store.pg import PostgresStore
from mnemo_server.store.pg_schema import SCHEMA_VERSION, SchemaTooNewError, migrate, schema_version

from ..pg_server import PgServer, fresh_database_url, shared
from .factory import create, memory

# A writer process: WRITES transactions of 1-3 memories each, sleeping inside
# every transaction after taking its revisions, so that transactions started
# by other processes overlap it (with a plain sequence, a later revision
# would commit first, and the tailer below would see the gap fill).
_WRITER = textwrap.dedent(
    """
    import dataclasses, random, sys, time
    sys.path.insert(0, sys.argv[3])
    from mnemo_server.store.pg import PostgresStore
    from tests.store.factory import memory

    url, name, writes = sys.argv[1], sys.argv[2], int(sys.argv[4])
    store = PostgresStore(url, pool_size=2)
    rng = random.Random(name)
    for i in range(writes):
        with store.write() as txn:
            for j in range(rng.randint(1, 3)):
                m = memory(f"{name}-{i}-{j}")
                txn.insert(dataclasses.replace(m, revision=txn.next_revision()))
                time.sleep(rng.random() * 0.003)
    store.close()
    """
)


@pytest.fixture
def url() -> str:
    return fresh_database_url()


def test_concurrent_writers_in_processes_never_show_a_gap_that_fills(url: str) -> None:
    """A tailer continues after the highest revision it saw: it must never
    later see a lower one (a gap that filled), and ends with every revision."""
    store = PostgresStore(url, pool_size=2)
    server_dir = Path(__file__).resolve().parents[2]
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, url, f"w{n}", str(server_dir), "40"])
        for n in range(4)
    ]
    seen: list[int] = []
    late: list[tuple[int, int]] = []
    done = threading.Event()

    def tail() -> None:
        high = 0
        everything: set[int] = set()
        while True:
            finished = done.is_set()
            # Re-read from 0 each time: any revision at or below `high` that
            # was not there before is a gap that filled.
            revisions = [c.revision for c in store.changes_since(0, limit=100_000)]
            new = set(revisions) - everything
            late.extend((r, high) for r in new if r <= high)
            everything |= new
            high = max(everything, default=0)
            if finished:
                seen.extend(sorted(everything))
                return

    tailer = threading.Thread(target=tail)
    tailer.start()
    try:
        for w in writers:
            assert w.wait(timeout=120) == 0
    finally:
        done.set()
        tailer.join()
    assert late == []
    total = store.count()
    assert total >= 4 * 40
    assert seen == list(range(1, total + 1))
    assert store.current_revision() == total
    store.close()


def test_a_migrated_database_reopens_and_a_newer_one_is_refused(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        assert migrate(conn) == (SCHEMA_VERSION, SCHEMA_VERSION)
        conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaTooNewError, match=f"schema version {SCHEMA_VERSION + 1}"):
        PostgresStore(url)


def test_concurrent_starts_on_an_empty_database_migrate_once() -> None:
    empty = shared().create_database()
    failures: list[BaseException] = []

    def start() -> None:
        try:
            PostgresStore(empty, pool_size=2).close()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    with psycopg.connect(empty, autocommit=True) as conn:
        assert schema_version(conn) == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM revision_counter").fetchone() == (1,)


def test_the_migrate_command(tmp_path: Path) -> None:
    empty = shared().create_database()
    run = [sys.executable, "-m", "mnemo_server", "migrate", "--store", empty]
    first = subprocess.run(run, capture_output=True, text=True, timeout=60, check=False)
    assert first.returncode == 0, first.stderr
    assert f"0 -> {SCHEMA_VERSION}" in first.stdout
    again = subprocess.run(run, capture_output=True, text=True, timeout=60, check=False)
    assert "up to date" in again.stdout
    with psycopg.connect(empty, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = 999")
    newer = subprocess.run(run, capture_output=True, text=True, timeout=60, check=False)
    assert newer.returncode == 1
    assert "schema version 999" in newer.stderr and "Traceback" not in newer.stderr


def test_the_migrate_command_reads_the_url_the_server_reads() -> None:
    empty = shared().create_database()
    run = [sys.executable, "-m", "mnemo_server", "migrate"]
    env = {**os.environ, "MNEMO_STORE_URL": empty}
    done = subprocess.run(run, capture_output=True, text=True, timeout=60, check=False, env=env)
    assert done.returncode == 0, done.stderr
    assert f"0 -> {SCHEMA_VERSION}" in done.stdout
    env.pop("MNEMO_STORE_URL")
    missing = subprocess.run(run, capture_output=True, text=True, timeout=60, check=False, env=env)
    assert missing.returncode == 2 and "--store" in missing.stderr


@pytest.fixture
def own_server() -> Iterator[PgServer]:
    server = PgServer().start()
    try:
        yield server
    finally:
        server.stop()


def test_a_server_that_goes_away_is_unavailable_then_comes_back(own_server: PgServer) -> None:
    url = own_server.create_database()
    store = PostgresStore(url, pool_size=2)
    (stored,) = create(store, memory("m1"))
    own_server.stop_server()
    for call in (
        lambda: store.get("t1", "m1"),
        lambda: create(store, memory("m2")),
        lambda: store.changes_since(0, limit=10),
    ):
        with pytest.raises(errors.UnavailableError) as caught:
            call()
        assert caught.value.reason == "STORE_UNAVAILABLE"
        assert caught.value.retry_after_s
    # An outage of several seconds: long enough for the pool's doubling
    # reconnect delay (1, 2, 4, 8 s) to have carried its next attempt past the
    # 5 s a call waits for a connection, had the slot not been given up.
    time.sleep(8)
    own_server.start_server()
    assert store.get("t1", "m1") == dataclasses.replace(stored, embedding=None)
    create(store, memory("m2"))
    assert [c.memory_id for c in store.changes_since(0, limit=10)] == ["m1", "m2"]
    store.close()
