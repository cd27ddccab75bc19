"""Extraction on the PostgreSQL store: jobs live in its database, so every
server on it sees them (extraction/pg_jobs.py), whatever its data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnemo.v1 import extraction_service_pb2 as ex
from mnemo.v1 import memory_pb2 as m
from mnemo_server.embed.base import Embedder
from mnemo_server.extraction.pg_jobs import PgJobStore

from ..conftest import make_settings, start_server
from ..pg_server import fresh_database_url
from .conftest import KEY_ENV, Script, extract, extraction_settings, stub
from .fake_llm import KEY, FakeLlm, Reply, memories

pytestmark = pytest.mark.timeout(180)


def test_a_job_extracted_on_one_server_is_seen_by_another_on_the_same_database(
    tmp_path: Path, embedder: Embedder, llm: tuple[FakeLlm, Script], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    fake, script = llm
    script.reply = lambda call: Reply(memories("Alice is allergic to peanuts"))
    url = fresh_database_url()
    store = {"url": url}
    first = start_server(
        make_settings(tmp_path / "a", store=store, extraction=extraction_settings(fake.base_url)), embedder
    )
    try:
        assert isinstance(first.app.extraction.jobs, PgJobStore)
        op = extract(first, "alice", "I can't eat peanuts", request_id="req-pg-1")
        assert op.state == ex.OPERATION_STATE_SUCCEEDED, op.error
        # Another server, another data directory (no SQLite file of the first's).
        second = start_server(
            make_settings(tmp_path / "b", store=store, extraction=extraction_settings(fake.base_url)),
            embedder,
        )
        try:
            got = stub(second).GetOperation(ex.GetOperationRequest(id=op.id)).operation
            assert got.state == ex.OPERATION_STATE_SUCCEEDED
            assert [f.text for f in got.result.facts] == ["Alice is allergic to peanuts"]
            assert got.result.facts[0].memory.id == op.result.facts[0].memory.id
            listed = stub(second).ListOperations(ex.ListOperationsRequest(scope=m.Scope(user_id="alice")))
            assert [o.id for o in listed.operations] == [op.id]
            # The request id is shared too: the second server answers with the
            # first's job instead of extracting again.
            calls = len(fake.calls)
            again = extract(second, "alice", "I can't eat peanuts", request_id="req-pg-1")
            assert again.id == op.id and len(fake.calls) == calls
        finally:
            second.stop()
    finally:
        first.stop()
    assert not (tmp_path / "b" / "mnemo.db").exists()
