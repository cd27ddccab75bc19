"""Storage faults: a full disk and a data directory deleted under the server.

The full disk is real SQLite behaviour (SQLITE_FULL, made to happen with
`PRAGMA max_page_count` on the server's writer connection) or an ENOSPC raised
at the snapshot's file-write seam; the tests are about how the server handles
them, not about filling a filesystem (which needs root for a small one).
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from mnemo.v1 import admin_service_pb2 as admin
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server import storage
from mnemo_server.app import build_index, build_store
from mnemo_server.config import load_settings
from mnemo_server.errors import DataDirectoryLostError
from mnemo_server.index import faiss_shard, snapshot
from mnemo_server.models import Principal, Scope
from mnemo_server.service import MemoryDraft, MemoryService, SearchQuery, WriteOp
from mnemo_server.storage import DataDirectoryWatch
from mnemo_server.store import sqlite_checkpoint
from mnemo_server.store.sqlite import SqliteStore
from mnemo_server.store.sqlite_checkpoint import Checkpointer
from mnemo_server.store.sqlite_keys import SqliteKeyStore

from ..conftest import RunningServer, error_of, make_settings, start_server
from ..test_tenancy import HashEmbedder

SCOPE = m.Scope(user_id="u")


@pytest.fixture
def running(tmp_path: Path) -> Iterator[RunningServer]:
    settings = make_settings(tmp_path / "data", server={"storage_check_interval_s": 0.05})
    server = start_server(settings, HashEmbedder())
    yield server
    server.stop()


def create(server: RunningServer, content: str) -> m.Memory:
    return server.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(user_id="u", content=content))
    ).memory


def writer(server: RunningServer) -> sqlite3.Connection:
    store = server.app.service.store
    assert isinstance(store, SqliteStore)
    return store._writer


def retry_delay_s(err: grpc.RpcError) -> float:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.RetryInfo()
    next(d for d in status.details if d.Is(info.DESCRIPTOR)).Unpack(info)
    return info.retry_delay.ToTimedelta().total_seconds()


def big_batch(n: int = 50) -> pb.BatchWriteMemoriesRequest:
    return pb.BatchWriteMemoriesRequest(
        operations=[
            pb.WriteOperation(
                create=pb.CreateMemoryRequest(memory=m.Memory(user_id="u", content=f"{i} " + "x" * 4000))
            )
            for i in range(n)
        ]
    )


def test_a_full_disk_fails_writes_with_storage_full_and_reads_keep_working(running: RunningServer) -> None:
    kept = create(running, "written before the disk filled")
    pages = writer(running).execute("PRAGMA page_count").fetchone()[0]
    writer(running).execute(f"PRAGMA max_page_count = {pages}")
    try:
        for call in (
            lambda: running.memory.BatchWriteMemories(big_batch()),
            lambda: create(running, "y" * 30000),
        ):
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert error_of(err.value)[:2] == (grpc.StatusCode.RESOURCE_EXHAUSTED, "STORAGE_FULL")
            assert retry_delay_s(err.value) > 0
        assert running.memory.GetMemory(pb.GetMemoryRequest(id=kept.id)).memory.content == kept.content
        listed = running.memory.ListMemories(pb.ListMemoriesRequest(scope=SCOPE)).memories
        assert [x.id for x in listed] == [kept.id]
        hits = running.memory.SearchMemories(pb.SearchMemoriesRequest(query=kept.content, scope=SCOPE)).hits
        assert [h.memory.id for h in hits] == [kept.id]
    finally:
        writer(running).execute("PRAGMA max_page_count = 4294967294")
    # Space freed: writes work again without a restart.
    assert running.memory.BatchWriteMemories(big_batch()).results[0].status.code == 0


def test_a_snapshot_on_a_full_disk_fails_with_storage_full(
    running: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(running, "something to snapshot")

    def no_space(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(snapshot, "_fsync_file", no_space)
    with pytest.raises(grpc.RpcError) as err:
        running.admin.CreateSnapshot(admin.CreateSnapshotRequest())
    assert error_of(err.value)[:2] == (grpc.StatusCode.RESOURCE_EXHAUSTED, "STORAGE_FULL")


def test_a_start_on_a_full_disk_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(env={}, overrides={"server.data_dir": str(tmp_path)})
    alice = Principal(tenant="t")

    def open_service() -> MemoryService:
        return MemoryService(
            store=build_store(settings),
            index=build_index(settings, HashEmbedder.dimension),
            embedder=HashEmbedder(),
            settings=settings,
            snapshot_dir=tmp_path / "index",
        )

    first = open_service()
    first.load()
    first.write(alice, [WriteOp("create", draft=MemoryDraft(scope=Scope(user_id="u"), content="kept"))])
    first.store.close()
    assert not (tmp_path / "index").exists()  # so the start rebuilds the index, then snapshots it

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    def no_space(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SqliteStore, "set_meta", disk_full)
    monkeypatch.setattr(snapshot, "_fsync_file", no_space)
    second = open_service()
    try:
        second.load()
        [result] = second.search(alice, [SearchQuery(text="kept", scope=Scope(user_id="u"))])
        assert [h.memory.content for h in result.hits] == ["kept"]
    finally:
        second.store.close()


def health(server: RunningServer, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(server.channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status  # type: ignore[no-any-return]


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_lost_data_directory_refuses_writes_and_turns_not_serving(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    running = start_server(make_settings(data_dir, server={"storage_check_interval_s": 0.05}), HashEmbedder())
    try:
        create(running, "before")
        assert health(running) == health_pb2.HealthCheckResponse.SERVING
        moved = tmp_path / "moved-away"
        data_dir.rename(moved)  # as good as deleted: the server's files are no longer at its path
        if how == "replaced":
            data_dir.mkdir()
        with pytest.raises(grpc.RpcError) as err:
            create(running, "after")
        assert error_of(err.value)[:2] == (grpc.StatusCode.UNAVAILABLE, "DATA_DIRECTORY_LOST")
        deadline = time.monotonic() + 10
        while health(running) != health_pb2.HealthCheckResponse.NOT_SERVING and time.monotonic() < deadline:
            time.sleep(0.05)
        for service in ("", "mnemo.v1.MemoryService"):
            assert health(running, service) == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as err:
            running.memory.BatchWriteMemories(big_batch(2))
        assert error_of(err.value)[:2] == (grpc.StatusCode.UNAVAILABLE, "DATA_DIRECTORY_LOST")
    finally:
        running.stop()
    # Nothing written after the loss reached the database, and the final
    # snapshot did not bring the directory back.
    conn = sqlite3.connect(moved / "mnemo.db")
    assert [r[0] for r in conn.execute("SELECT content FROM memories")] == ["before"]
    conn.close()
    assert not (data_dir / "index").exists()
    assert "refusing writes" in caplog.text


# -- API keys ----------------------------------------------------------------------

BOOTSTRAP = "test-bootstrap-key-" + "b" * 40
AS_BOOTSTRAP = (("authorization", f"Bearer {BOOTSTRAP}"),)


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[RunningServer]:
    settings = make_settings(
        tmp_path / "data",
        server={"storage_check_interval_s": 0.05},
        auth={"enabled": "on", "bootstrap_key": BOOTSTRAP},
    )
    server = start_server(settings, HashEmbedder())
    yield server
    server.stop()


def new_key(server: RunningServer, name: str = "k") -> admin.CreateApiKeyResponse:
    return server.admin.CreateApiKey(  # type: ignore[no-any-return]
        admin.CreateApiKeyRequest(tenant="t", role=admin.API_KEY_ROLE_WRITER, display_name=name),
        metadata=AS_BOOTSTRAP,
    )


def key_conn(server: RunningServer) -> sqlite3.Connection:
    store = server.app.security.keys.store
    assert isinstance(store, SqliteKeyStore)
    return store._conn


def test_an_api_key_on_a_full_disk_fails_with_storage_full(secure: RunningServer) -> None:
    pages = key_conn(secure).execute("PRAGMA page_count").fetchone()[0]
    key_conn(secure).execute(f"PRAGMA max_page_count = {pages}")
    try:
        with pytest.raises(grpc.RpcError) as err:
            for i in range(500):  # until the key table needs a page the disk does not have
                new_key(secure, f"key {i} " + "n" * 100)
        assert error_of(err.value)[:2] == (grpc.StatusCode.RESOURCE_EXHAUSTED, "STORAGE_FULL")
        assert retry_delay_s(err.value) > 0
    finally:
        key_conn(secure).execute("PRAGMA max_page_count = 4294967294")
    assert new_key(secure).secret  # space freed: keys are made again


class _FullDisk:
    """A connection whose writes fail as SQLite's do on a full disk (an
    UPDATE in place needs no new page, so max_page_count cannot stop it)."""

    def __init__(self, conn: sqlite3.Connection, *, failing: str) -> None:
        self.conn = conn
        self.failing = failing
        self.full = True
        self.failures = 0

    def execute(self, sql: str, *args: Any) -> Any:
        if self.full and sql.lstrip().upper().startswith(self.failing):
            self.failures += 1
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, *args)

    def close(self) -> None:
        self.conn.close()


def test_revoking_a_key_on_a_full_disk_fails_with_storage_full(secure: RunningServer) -> None:
    made = new_key(secure)
    store = secure.app.security.keys.store
    assert isinstance(store, SqliteKeyStore)
    full = _FullDisk(store._conn, failing="UPDATE")
    store._conn = full  # type: ignore[assignment]
    try:
        with pytest.raises(grpc.RpcError) as err:
            secure.admin.RevokeApiKey(admin.RevokeApiKeyRequest(id=made.api_key.id), metadata=AS_BOOTSTRAP)
        assert error_of(err.value)[:2] == (grpc.StatusCode.RESOURCE_EXHAUSTED, "STORAGE_FULL")
        assert full.failures == 1
        # The key still works: authenticating records its last use, which fails quietly.
        headers = (("authorization", f"Bearer {made.secret}"),)
        secure.memory.ListMemories(pb.ListMemoriesRequest(scope=SCOPE), metadata=headers)
    finally:
        store._conn = full.conn
    revoked = secure.admin.RevokeApiKey(admin.RevokeApiKeyRequest(id=made.api_key.id), metadata=AS_BOOTSTRAP)
    assert revoked.api_key.revoke_time.seconds > 0


def test_api_keys_are_not_written_once_the_data_directory_is_lost(
    secure: RunningServer, tmp_path: Path
) -> None:
    made = new_key(secure)
    (tmp_path / "data").rename(tmp_path / "moved-away")
    for call in (
        lambda: new_key(secure, "after"),
        lambda: secure.admin.RevokeApiKey(
            admin.RevokeApiKeyRequest(id=made.api_key.id), metadata=AS_BOOTSTRAP
        ),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert error_of(err.value)[:2] == (grpc.StatusCode.UNAVAILABLE, "DATA_DIRECTORY_LOST")
    conn = sqlite3.connect(tmp_path / "moved-away" / "mnemo.db")
    rows = conn.execute("SELECT display_name, revoke_time_us FROM api_keys").fetchall()
    conn.close()
    assert rows == [("k", None)]


# -- the WAL checkpointer ----------------------------------------------------------


def test_the_checkpointer_on_a_full_disk_warns_once_counts_and_keeps_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteStore(tmp_path / "mnemo.db")
    real = store._checkpointer
    real.stop()
    full = _FullDisk(sqlite3.connect(store.path, check_same_thread=False), failing="PRAGMA WAL_CHECKPOINT")
    checkpointer = Checkpointer(lambda: full, interval_s=0.001)  # type: ignore[arg-type,return-value]
    store._checkpointer = checkpointer
    try:
        caplog.set_level(logging.DEBUG, logger=sqlite_checkpoint.__name__)

        def commits_until(done: Callable[[], bool]) -> None:
            deadline = time.monotonic() + 10
            i = 0
            while not done():
                assert time.monotonic() < deadline
                store.set_meta("test.n", str(i))
                i += 1
                with store.write():  # a commit, which wakes the checkpointer
                    pass
                time.sleep(0.005)

        commits_until(lambda: checkpointer.failures >= 5)
        assert store.checkpoint_failures == checkpointer.failures
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1
        assert "disk is full" in warnings[0].getMessage()
        assert warnings[0].exc_info is None
        full.full = False
        commits_until(lambda: "work again" in caplog.text)
        failures = checkpointer.failures
        full.full = True
        commits_until(lambda: checkpointer.failures > failures)
        # A new run of failures is said again.
        assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 2
    finally:
        store.close()


# -- snapshots failing inside FAISS --------------------------------------------------


def fwrite_fails(*args: Any, **kwargs: Any) -> None:
    # What faiss.write_index raises when fwrite comes up short (no errno).
    raise RuntimeError(
        "Error in void faiss::FileIOWriter::operator()(const void*, size_t, size_t) at "
        "faiss/impl/io.cpp:102: Error: 'ret == nitems' failed: write error in index.hnsw: 0 != 1"
    )


@pytest.fixture
def graphed(tmp_path: Path) -> Iterator[RunningServer]:
    """A server whose shards hold an HNSW graph, which FAISS itself writes."""
    settings = make_settings(
        tmp_path / "data",
        server={"storage_check_interval_s": 0.05},
        index={"ann_threshold": 1},
    )
    server = start_server(settings, HashEmbedder())
    for content in ("one", "two", "three"):
        create(server, content)
    assert server.app.service is not None
    assert any(s.kind.name == "HNSW" for s in server.app.service.index.shards())
    yield server
    server.stop()


@pytest.mark.parametrize("free", [0, 4096])
def test_a_snapshot_failing_inside_faiss_on_a_full_disk_fails_with_storage_full(
    graphed: RunningServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, free: int
) -> None:
    monkeypatch.setattr(faiss_shard.faiss, "write_index", fwrite_fails)
    monkeypatch.setattr(storage, "free_bytes", lambda path: free)
    with pytest.raises(grpc.RpcError) as err:
        graphed.admin.CreateSnapshot(admin.CreateSnapshotRequest())
    assert error_of(err.value)[:2] == (grpc.StatusCode.RESOURCE_EXHAUSTED, "STORAGE_FULL")
    assert retry_delay_s(err.value) > 0
    assert not any((tmp_path / "data" / "index").glob(".tmp-*"))  # the partial snapshot is gone
    monkeypatch.undo()
    assert graphed.admin.CreateSnapshot(admin.CreateSnapshotRequest()).revision > 0


def test_a_snapshot_failing_inside_faiss_with_space_left_stays_internal(
    graphed: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faiss_shard.faiss, "write_index", fwrite_fails)
    monkeypatch.setattr(storage, "free_bytes", lambda path: 10 << 30)
    with pytest.raises(grpc.RpcError) as err:
        graphed.admin.CreateSnapshot(admin.CreateSnapshotRequest())
    assert err.value.code() == grpc.StatusCode.INTERNAL


def test_a_background_snapshot_on_a_full_disk_is_logged_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path / "data", index={"ann_threshold": 1, "snapshot_interval_s": 0.05})
    monkeypatch.setattr(faiss_shard.faiss, "write_index", fwrite_fails)
    monkeypatch.setattr(storage, "free_bytes", lambda path: 0)
    caplog.set_level(logging.INFO, logger="mnemo.app")
    running = start_server(settings, HashEmbedder())
    try:
        for content in ("one", "two", "three"):
            create(running, content)
        deadline = time.monotonic() + 10
        while "snapshot failed (STORAGE_FULL); will retry" not in caplog.text:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert not [r for r in caplog.records if "snapshot failed" in r.getMessage() and r.exc_info]
        create(running, "still writing")  # the server goes on
        monkeypatch.undo()
        while "index snapshot at revision" not in caplog.text:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        running.stop()


# -- reads after the data directory is lost --------------------------------------------


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_first_read_on_a_new_thread_after_the_loss_is_data_directory_lost(tmp_path: Path, how: str) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    watch = DataDirectoryWatch(data_dir)
    store = SqliteStore(data_dir / "mnemo.db", guard=watch.check)
    watch.track(data_dir / "mnemo.db")
    try:
        assert store.get("t", "m") is None  # this thread's reader is open
        data_dir.rename(tmp_path / "moved-away")
        if how == "replaced":
            data_dir.mkdir()
        assert store.get("t", "m") is None  # an open reader reads on
        with ThreadPoolExecutor(1) as pool:
            with pytest.raises(DataDirectoryLostError):
                pool.submit(store.get, "t", "m").result()
            with pytest.raises(DataDirectoryLostError):
                pool.submit(store.count).result()
        if how == "replaced":
            assert list(data_dir.iterdir()) == []  # no empty database made in its place
    finally:
        store.close()


def test_a_read_after_the_loss_on_a_thread_new_to_the_store_is_unavailable(
    running: RunningServer, tmp_path: Path
) -> None:
    kept = create(running, "before")
    (tmp_path / "data").rename(tmp_path / "moved-away")
    store = running.app.service.store  # type: ignore[union-attr]
    assert isinstance(store, SqliteStore)
    store._local = threading.local()  # as if every worker thread were new
    with pytest.raises(grpc.RpcError) as err:
        running.memory.GetMemory(pb.GetMemoryRequest(id=kept.id))
    assert error_of(err.value)[:2] == (grpc.StatusCode.UNAVAILABLE, "DATA_DIRECTORY_LOST")
