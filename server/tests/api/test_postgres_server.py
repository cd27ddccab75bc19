"""`mnemo-server --store postgresql://...` end to end: a real process on the
test PostgreSQL (tests/pg_server.py), over gRPC."""

from __future__ import annotations

import signal
from pathlib import Path

import grpc
import pytest

from mnemo.v1 import admin_service_pb2 as admin
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from ..pg_server import fresh_database_url
from ..server_proc import Proc


def _watch(proc: Proc, after: int, count: int) -> list[tuple[int, str]]:
    """The first `count` events after revision `after`: (revision, memory id)."""
    call = proc.memory.WatchMemories(
        pb.WatchMemoriesRequest(scope=m.Scope(user_id="pg"), start_revision=after), timeout=30
    )
    events: list[tuple[int, str]] = []
    try:
        for response in call:
            events += [(e.revision, e.memory_id) for e in response.events]
            if len(events) >= count:
                break
    finally:
        call.cancel()
    return events


def test_create_search_watch_and_restart_on_postgresql(tmp_path: Path) -> None:
    url = fresh_database_url()
    first = Proc(tmp_path / "a", "--store", url)
    try:
        ids = [
            first.memory.CreateMemory(
                pb.CreateMemoryRequest(memory=m.Memory(user_id="pg", content=text))
            ).memory.id
            for text in (
                "Booked flight LH440 to Boston",
                "Alice prefers window seats",
                "Order A-7731 shipped",
            )
        ]
        hits = first.memory.SearchMemories(
            pb.SearchMemoriesRequest(query="window seat preference", scope=m.Scope(user_id="pg"), top_k=3)
        ).hits
        assert hits[0].memory.id == ids[1]
        assert [i for _, i in _watch(first, 0, 3)] == ids
        first.popen.send_signal(signal.SIGTERM)
        assert first.popen.wait(60) == 0
    finally:
        first.close()
    # Another data directory: no SQLite file, no index snapshot. Everything
    # comes from PostgreSQL, and the index is rebuilt from it.
    second = Proc(tmp_path / "b", "--store", url)
    try:
        report = second.admin.CheckConsistency(admin.CheckConsistencyRequest())
        assert report.consistent and report.index_count == 3
        got = second.memory.GetMemory(pb.GetMemoryRequest(id=ids[2])).memory
        assert got.content == "Order A-7731 shipped"
        hits = second.memory.SearchMemories(
            pb.SearchMemoriesRequest(query="A-7731", scope=m.Scope(user_id="pg"), top_k=1)
        ).hits
        assert [h.memory.id for h in hits] == [ids[2]]
        later = second.memory.CreateMemory(
            pb.CreateMemoryRequest(memory=m.Memory(user_id="pg", content="written after the restart"))
        ).memory
        events = _watch(second, 0, 4)
        assert [i for _, i in events] == [*ids, later.id]
        assert [r for r, _ in events] == sorted(r for r, _ in events)
        with pytest.raises(grpc.RpcError) as caught:
            second.memory.GetMemory(pb.GetMemoryRequest(id="nope"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        second.close()
