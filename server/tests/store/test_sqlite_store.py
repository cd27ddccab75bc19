"""What only the SQLite store promises: its file format, durability and speed."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mnemo_server import errors
from mnemo_server.filters import parse_filter
from mnemo_server.models import Memory, Scope
from mnemo_server.store.sqlite import SqliteStore

from .factory import T0, create, memory

SERVER_DIR = Path(__file__).resolve().parents[2]


def test_file_is_wal_with_a_versioned_schema(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "data" / "mnemo.db")  # the directory is created
    create(store, memory("m1"))
    store.close()
    conn = sqlite3.connect(tmp_path / "data" / "mnemo.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        assert meta["schema_version"] == "3" and meta["revision"] == "1"
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {
            "memories_user",
            "memories_create",
            "memories_update",
            "memories_hash",
            "memories_expire",
        } <= indexes
    finally:
        conn.close()


def test_an_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "mnemo.db").close()
    conn = sqlite3.connect(tmp_path / "mnemo.db")
    conn.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(errors.MnemoError, match="schema version 99"):
        SqliteStore(tmp_path / "mnemo.db")


def test_synchronous_must_be_a_known_level(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SqliteStore(tmp_path / "mnemo.db", synchronous="SOMETIMES")


def test_closed_store_refuses_use(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "mnemo.db")
    store.close()
    store.close()  # idempotent
    with pytest.raises(RuntimeError):
        store.get("t1", "m1")
    with pytest.raises(RuntimeError), store.write():
        pass


def test_user_values_are_data_not_sql(tmp_path: Path) -> None:
    hostile = "x'); DROP TABLE memories; --"
    store = SqliteStore(tmp_path / "mnemo.db")
    try:
        [m] = create(
            store,
            memory(hostile, scope=Scope(hostile), metadata={hostile: hostile}, tags=[hostile]),
        )
        for text in (
            f'user_id = "{hostile}"',
            f'tags:"{hostile}"',
            f'metadata."{hostile}" = "{hostile}"',
            f'id = "{hostile}"',
        ):
            assert store.match_keys("t1", scope=Scope(), filter=parse_filter(text), now_us=T0) == [m.key], (
                text
            )
        assert store.get("t1", hostile) == m
    finally:
        store.close()


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np
    from mnemo_server.models import Memory, Scope
    from mnemo_server.store.sqlite import SqliteStore

    store = SqliteStore(Path(sys.argv[1]))
    def draft(id, revision):
        return Memory(tenant="t1", id=id, scope=Scope("alice"), content=id, version=1,
                      revision=revision, embedding=np.ones(4, dtype=np.float32))
    with store.write() as txn:
        txn.insert(draft("acknowledged", txn.next_revision()))
    print("ok", flush=True)
    with store.write() as txn:
        txn.insert(draft("in-flight", txn.next_revision()))
        print("writing", flush=True)
        time.sleep(120)
    """
)


def test_a_committed_write_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "mnemo.db"
    env = {**os.environ, "PYTHONPATH": str(SERVER_DIR)}
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True, env=env
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ok"
            assert child.stdout.readline().strip() == "writing"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(30)
    assert child.returncode == -signal.SIGKILL
    store = SqliteStore(path)
    try:
        got = store.get("t1", "acknowledged", with_embedding=True)
        assert got is not None and got.embedding is not None and got.embedding.tolist() == [1.0] * 4
        assert store.get("t1", "in-flight") is None
        assert store.current_revision() == 1
        assert [c.memory_id for c in store.changes_since(0, limit=10)] == ["acknowledged"]
        # The keyword index committed (and rolled back) with the records.
        store.check_keyword_index()
        found = store.keyword_search(
            "t1", "acknowledged in-flight", scope=Scope(), filter=None, now_us=T0, limit=10
        )
        assert [h.key for h in found] == [got.key]
    finally:
        store.close()


def test_a_thousand_memories_insert_in_one_write_with_one_commit(tmp_path: Path) -> None:
    """A write of many memories is one transaction: one COMMIT (and so one
    fsync), not one per row. Speed itself is measured in bench/, not here."""
    store = SqliteStore(tmp_path / "mnemo.db")
    try:
        rng = np.random.default_rng(0)
        vectors = rng.standard_normal((1000, 384)).astype(np.float32)
        base = store.current_revision()
        drafts = [
            dataclasses.replace(
                memory(f"m{i}", scope=Scope(f"u{i % 20}"), metadata={"n": i}, tags=["a"]),
                embedding=vectors[i],
                revision=base + i + 1,
            )
            for i in range(1000)
        ]
        statements: list[str] = []
        store._writer.set_trace_callback(statements.append)
        with store.write() as txn:
            for d in drafts:
                txn.next_revision()
                txn.insert(d)
        store._writer.set_trace_callback(None)
        assert store.count() == 1000
        commits = [s for s in statements if s.strip().upper().startswith(("COMMIT", "END"))]
        assert len(commits) == 1, commits
        assert sum(s.lstrip().upper().startswith("BEGIN") for s in statements) == 1
    finally:
        store.close()


def test_iter_vectors_streams_batches_as_views_of_one_buffer(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "mnemo.db")
    try:
        stored: list[Memory] = create(store, *[memory(f"m{i}", seed=i) for i in range(50)])
        [batch] = list(store.iter_vectors(batch_size=100))
        assert len(batch) == 50
        # Stored vectors are views of the fetched bytes and cannot be edited.
        assert all(not row.vector.flags.writeable for row in batch)
        expected = np.stack([m.embedding for m in stored if m.embedding is not None])
        assert np.array_equal(np.stack([r.vector for r in batch]), expected)
    finally:
        store.close()


def test_leaving_an_export_snapshot_while_a_batch_is_fetched_does_not_crash(tmp_path: Path) -> None:
    """A client cancelling an export made the server close the snapshot's
    connection under a running fetch: SIGSEGV in libsqlite3 (found by the
    fuzzer). Run in a child process, so a crash fails this test only."""
    script = textwrap.dedent(
        f"""
        import sqlite3, sys, threading
        sys.path[:0] = {sys.path!r}
        from mnemo_server.models import Scope
        from mnemo_server.store.sqlite import SqliteStore
        from tests.store.factory import create, memory

        store = SqliteStore({str(tmp_path / "mnemo.db")!r})
        create(store, *(memory(f"m{{i}}", content="x" * 200) for i in range(3000)))

        def fetch(batches):
            try:
                for _ in batches:
                    pass
            except sqlite3.ProgrammingError:
                pass  # closed: what a fetch after the snapshot was left sees

        for _ in range(150):
            snapshot = store.export_snapshot("t1", scope=Scope(), filter=None, now_us=0, with_embedding=False)
            _, batches = snapshot.__enter__()
            worker = threading.Thread(target=fetch, args=(batches,))
            worker.start()
            snapshot.__exit__(None, None, None)
            worker.join()
        store.close()
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
