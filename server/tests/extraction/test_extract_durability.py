"""Jobs are durable: a kill -9 mid-run, or between the write and the job's
own bookkeeping, and the restarted server finishes the job, writing once."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnemo.v1 import extraction_service_pb2 as ex
from mnemo.v1 import extraction_service_pb2_grpc as ex_grpc
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server.store.sqlite import SqliteStore

from ..server_proc import Proc
from .conftest import KEY_ENV, conversation
from .fake_llm import KEY, FakeLlm, Reply, memories

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def fake() -> Iterator[FakeLlm]:
    llm = FakeLlm(lambda call: Reply(memories("Jo rides a red bike", "Jo lives by the sea")))
    yield llm
    llm.close()


def start(data: Path, llm: FakeLlm) -> Proc:
    return Proc(
        data,
        "--extraction-provider",
        "openai",
        "--extraction-base-url",
        llm.base_url,
        "--extraction-api-key-env",
        KEY_ENV,
        "--extraction-retry-backoff-s",
        "0.05",
        env={KEY_ENV: KEY},
    )


def wait_done(proc: Proc, op_id: str) -> ex.Operation:
    stub = ex_grpc.ExtractionServiceStub(proc.channel)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        op = stub.GetOperation(ex.GetOperationRequest(id=op_id)).operation
        if op.state in (ex.OPERATION_STATE_SUCCEEDED, ex.OPERATION_STATE_FAILED):
            return op
        time.sleep(0.05)
    raise AssertionError("the operation did not finish")


def contents(proc: Proc) -> list[str]:
    listed = proc.memory.ListMemories(pb.ListMemoriesRequest(scope=m.Scope(user_id="jo"), page_size=100))
    return sorted(x.content for x in listed.memories)


def test_a_job_killed_mid_run_completes_after_restart(tmp_path: Path, fake: FakeLlm) -> None:
    release = threading.Event()
    fake.script = lambda call: Reply(memories("never sent"), block=release)
    proc = start(tmp_path, fake)
    try:
        request = ex.ExtractMemoriesRequest(
            messages=conversation("I ride a red bike"), scope=m.Scope(user_id="jo")
        )
        op = ex_grpc.ExtractionServiceStub(proc.channel).ExtractMemories(request).operation
        deadline = time.monotonic() + 30
        while not fake.calls and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fake.calls, "the LLM was never called"
        proc.popen.kill()  # SIGKILL while the LLM call hangs
        proc.popen.wait(30)
    finally:
        proc.close()
    release.set()
    fake.script = lambda call: Reply(memories("Jo rides a red bike", "Jo lives by the sea"))
    again = start(tmp_path, fake)
    try:
        done = wait_done(again, op.id)
        assert done.state == ex.OPERATION_STATE_SUCCEEDED, done.error
        assert done.attempts == 2
        assert [f.event for f in done.result.facts] == [ex.FACT_EVENT_ADDED] * 2
        assert contents(again) == ["Jo lives by the sea", "Jo rides a red bike"]
    finally:
        again.close()


def test_a_job_rerun_after_its_write_replays_it_instead_of_writing_twice(
    tmp_path: Path, fake: FakeLlm
) -> None:
    proc = start(tmp_path, fake)
    try:
        request = ex.ExtractMemoriesRequest(
            messages=conversation("I ride a red bike"), scope=m.Scope(user_id="jo"), wait=True
        )
        first = ex_grpc.ExtractionServiceStub(proc.channel).ExtractMemories(request, timeout=60).operation
        assert first.state == ex.OPERATION_STATE_SUCCEEDED
        revision = (
            proc.memory.ListMemories(pb.ListMemoriesRequest(scope=m.Scope(user_id="jo"))).memories[0].revision
        )
    finally:
        proc.close()
    # As if the process died after the write committed and before the job was marked done.
    conn = sqlite3.connect(tmp_path / "mnemo.db")
    conn.execute("UPDATE extraction_jobs SET state = 'running', result = NULL, revision = 0")
    conn.commit()
    conn.close()
    fake.calls.clear()
    fake.script = lambda call: Reply(memories("a different answer"))
    again = start(tmp_path, fake)
    try:
        done = wait_done(again, first.id)
        assert done.state == ex.OPERATION_STATE_SUCCEEDED, done.error
        assert fake.calls == []  # the stored plan, not a new LLM answer
        assert [f.memory.id for f in done.result.facts] == [f.memory.id for f in first.result.facts]
        assert done.result.revision == first.result.revision
        assert contents(again) == ["Jo lives by the sea", "Jo rides a red bike"]
        now = again.memory.ListMemories(pb.ListMemoriesRequest(scope=m.Scope(user_id="jo"))).memories
        assert max(x.revision for x in now) >= revision and all(x.version == 1 for x in now)
    finally:
        again.close()


def test_a_version_2_file_gets_the_job_table(tmp_path: Path) -> None:
    path = tmp_path / "mnemo.db"
    SqliteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE extraction_jobs")
    conn.execute("UPDATE meta SET value = '2' WHERE name = 'schema_version'")
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    try:
        assert store.get_meta("schema_version") == "3"
    finally:
        store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM extraction_jobs").fetchone() == (0,)
    conn.close()
