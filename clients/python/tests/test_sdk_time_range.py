"""Times outside the RFC 3339 range, as a server that stored them before it
checked times may still send them: every call whose result holds one works,
with the time clamped to the nearest end of 0001-01-01 .. 9999-12-31."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sdk_fakes import serve

from mnemo import MnemoClient, _convert, _jsonl
from mnemo.v1 import memory_pb2
from mnemo.v1 import memory_service_pb2 as pb
from mnemo.v1 import memory_service_pb2_grpc as pb_grpc

YEAR_33715 = 10**12 + 1_700_000_000  # what a ttl of 10^12 s stored


def far_memory(memory_id: str) -> memory_pb2.Memory:
    memory = memory_pb2.Memory(id=memory_id, user_id="u", content="from far away", version=1)
    memory.create_time.seconds = -(10**13)
    memory.update_time.seconds = 2**62
    memory.update_time.nanos = -5
    memory.expire_time.seconds = YEAR_33715
    memory.last_retrieve_time.nanos = 2_000_000_000
    return memory


class FarTimes(pb_grpc.MemoryServiceServicer):
    def GetMemory(self, request: Any, context: Any) -> Any:
        return pb.GetMemoryResponse(memory=far_memory(request.id))

    def ListMemories(self, request: Any, context: Any) -> Any:
        return pb.ListMemoriesResponse(memories=[far_memory(f"m{i}") for i in range(3)])

    def SearchMemories(self, request: Any, context: Any) -> Any:
        return pb.SearchMemoriesResponse(hits=[pb.SearchHit(score=0.5, memory=far_memory("m1"))])

    def ExportMemories(self, request: Any, context: Any) -> Iterator[Any]:
        yield pb.ExportMemoriesResponse(header=pb.ExportHeader(format_version=1))
        for i in range(10):
            yield pb.ExportMemoriesResponse(memory=far_memory(f"m{i}"))


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    server, port = serve(FarTimes())
    yield f"127.0.0.1:{port}"
    server.stop(0)


LATEST = datetime.max.replace(tzinfo=UTC)
EARLIEST = datetime.min.replace(tzinfo=UTC)


def test_get_list_and_search_clamp_times_out_of_range(address: str) -> None:
    with MnemoClient(address) as client:
        memory = client.get("m1")
        assert memory.expire_time == LATEST
        assert memory.create_time == EARLIEST
        assert memory.update_time == LATEST
        assert [m.expire_time for m in client.list().memories] == [LATEST] * 3
        assert client.search("far").hits[0].memory.expire_time == LATEST


def test_export_writes_every_memory_whatever_its_times(address: str, tmp_path: Path) -> None:
    """Before: `mnemo export` stopped at the first memory with such a time."""
    path = tmp_path / "export.jsonl"
    with MnemoClient(address) as client:
        assert client.export_jsonl(path) == 10
    lines = path.read_text().splitlines()
    assert len(lines) == 11
    memory = json.loads(lines[1])["memory"]
    assert memory["expireTime"] == "9999-12-31T23:59:59.999999999Z"
    assert memory["createTime"] == "0001-01-01T00:00:00Z"


def test_a_time_inside_the_range_is_kept_to_the_microsecond() -> None:
    message = memory_pb2.Memory()
    message.expire_time.seconds = 253_402_300_799
    message.expire_time.nanos = 999_999_999
    assert _convert.time_from_proto(message, "expire_time") == LATEST
    message.expire_time.seconds, message.expire_time.nanos = -62_135_596_800, 0
    assert _convert.time_from_proto(message, "expire_time") == EARLIEST
    message.expire_time.seconds, message.expire_time.nanos = 1_700_000_000, 123_456_789
    expected = datetime.fromtimestamp(1_700_000_000, UTC) + timedelta(microseconds=123_456)
    assert _convert.time_from_proto(message, "expire_time") == expected


def test_durations_out_of_range_are_clamped() -> None:
    from mnemo.v1 import admin_service_pb2 as admin_pb

    policy = admin_pb.RetentionPolicy()
    policy.max_age.seconds = 2**62
    assert _convert.duration_from_proto(policy, "max_age") == timedelta.max
    policy.max_age.seconds = -(2**62)
    assert _convert.duration_from_proto(policy, "max_age") == timedelta.min
    line = json.loads(_jsonl.line(pb.ExportMemoriesResponse(memory=far_memory("x"))))
    assert line["memory"]["updateTime"] == "9999-12-31T23:59:59.999999999Z"
