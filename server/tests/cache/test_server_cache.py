"""The server with a real Redis: hits on repeats, exact invalidation after
every kind of write (also from a second server process sharing store and
Redis), no stale result after a Redis restart or flush, requests served
while Redis is down, and recovery when it returns."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from mnemo.v1 import admin_service_pb2 as admin
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server.embed.base import Embedder

from ..conftest import RunningServer, make_settings, start_server
from ..server_proc import Proc
from .redis_procs import RedisProcess


def caches(server: RunningServer) -> dict[str, admin.CacheStats]:
    return {c.name: c for c in server.admin.GetStats(admin.GetStatsRequest()).caches}


@pytest.fixture
def redis_server(own_redis: RedisProcess, tmp_path: Path, embedder: Embedder) -> Iterator[RunningServer]:
    running = start_server(
        make_settings(tmp_path / "data", server={"redis_url": own_redis.url, "sweep_interval_s": 0.1}),
        embedder,
    )
    yield running
    running.stop()


def search(server: RunningServer, query: str, uid: str, **fields: object) -> list[str]:
    hits = server.memory.SearchMemories(
        pb.SearchMemoriesRequest(query=query, scope=m.Scope(user_id=uid), top_k=10, **fields)  # type: ignore[arg-type]
    ).hits
    return [h.memory.content for h in hits]


def test_repeats_hit_every_cache(redis_server: RunningServer) -> None:
    s, uid = redis_server, f"u-{uuid.uuid4().hex[:8]}"
    created = s.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content="likes jazz"))
    ).memory
    before = caches(s)
    assert before["search"].backend == "redis" and before["search"].state == "ok"
    first = search(s, "music taste", uid)
    second = search(s, "music taste", uid)
    assert first == second == ["likes jazz"]
    after = caches(s)
    assert after["search"].hits == before["search"].hits + 1
    # Another search of the same text misses the result cache, not the embedding.
    assert search(s, "music taste", uid, min_score=-1.0) == ["likes jazz"]
    assert caches(s)["embedding"].hits == after["embedding"].hits + 1
    s.memory.GetMemory(pb.GetMemoryRequest(id=created.id))
    s.memory.GetMemory(pb.GetMemoryRequest(id=created.id))
    assert caches(s)["record"].hits >= after["record"].hits + 1


def test_every_kind_of_write_invalidates_exactly(redis_server: RunningServer) -> None:
    s, uid = redis_server, f"u-{uuid.uuid4().hex[:8]}"
    other = f"u-{uuid.uuid4().hex[:8]}"
    s.memory.CreateMemory(pb.CreateMemoryRequest(memory=m.Memory(user_id=other, content="untouched scope")))
    assert search(s, "untouched", other) == ["untouched scope"]

    def fresh(expected: list[str]) -> None:
        assert search(s, "a memory", uid) == expected
        assert search(s, "a memory", uid) == expected  # and again, from the cache

    fresh([])
    created = s.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content="a memory"))
    ).memory
    fresh(["a memory"])
    s.memory.UpdateMemory(
        pb.UpdateMemoryRequest(
            memory=m.Memory(id=created.id, content="a memory, changed"),
            update_mask=field_mask_pb2.FieldMask(paths=["content"]),
        )
    )
    fresh(["a memory, changed"])
    got = s.memory.GetMemory(pb.GetMemoryRequest(id=created.id)).memory
    assert got.content == "a memory, changed"
    s.memory.UpdateMemory(
        pb.UpdateMemoryRequest(
            memory=m.Memory(id=created.id, tags=["t"]), update_mask=field_mask_pb2.FieldMask(paths=["tags"])
        )
    )
    assert list(s.memory.GetMemory(pb.GetMemoryRequest(id=created.id)).memory.tags) == ["t"]
    assert s.memory.SearchMemories(
        pb.SearchMemoriesRequest(query="a memory", scope=m.Scope(user_id=uid))
    ).hits[0].memory.tags == ["t"]
    s.memory.DeleteMemory(pb.DeleteMemoryRequest(id=created.id))
    fresh([])
    s.memory.BatchWriteMemories(
        pb.BatchWriteMemoriesRequest(
            operations=[
                pb.WriteOperation(
                    create=pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content="a memory again"))
                )
            ]
        )
    )
    fresh(["a memory again"])
    s.memory.DeleteMemories(pb.DeleteMemoriesRequest(scope=m.Scope(user_id=uid)))
    fresh([])
    s.memory.CreateMemory(
        pb.CreateMemoryRequest(
            memory=m.Memory(user_id=uid, content="a memory that expires"),
            ttl=duration_pb2.Duration(nanos=300_000_000),
        )
    )
    fresh(["a memory that expires"])
    time.sleep(0.6)  # expired at once for reads; swept (and invalidated) within 0.1 s
    fresh([])
    assert caches(s)["search"].hits > 0
    assert search(s, "untouched", other) == ["untouched scope"]


def test_a_write_from_a_second_server_process_invalidates_this_ones_cache(
    own_redis: RedisProcess, tmp_path: Path, embedder: Embedder
) -> None:
    data = tmp_path / "shared"
    first = start_server(make_settings(data, server={"redis_url": own_redis.url}), embedder)
    second = Proc(data, "--redis-url", own_redis.url)
    try:
        uid = f"u-{uuid.uuid4().hex[:8]}"
        assert search(first, "shared note", uid) == []
        created = second.memory.CreateMemory(
            pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content="shared note"))
        ).memory
        assert search(first, "shared note", uid) == ["shared note"]
        second.memory.UpdateMemory(
            pb.UpdateMemoryRequest(
                memory=m.Memory(id=created.id, content="shared note, edited"),
                update_mask=field_mask_pb2.FieldMask(paths=["content"]),
            )
        )
        assert search(first, "shared note", uid) == ["shared note, edited"]
        assert (
            first.memory.GetMemory(pb.GetMemoryRequest(id=created.id)).memory.content == "shared note, edited"
        )
        second.memory.DeleteMemory(pb.DeleteMemoryRequest(id=created.id))
        assert search(first, "shared note", uid) == []
    finally:
        second.close()
        first.stop()


def test_no_stale_result_after_a_redis_restart_or_flush(
    redis_server: RunningServer, own_redis: RedisProcess
) -> None:
    s, uid = redis_server, f"u-{uuid.uuid4().hex[:8]}"
    s.memory.CreateMemory(pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content="version one")))
    assert search(s, "version", uid) == ["version one"]
    own_redis.client().flushall()
    s.memory.CreateMemory(pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content="version two")))
    assert sorted(search(s, "version", uid)) == ["version one", "version two"]
    own_redis.stop()
    s.memory.CreateMemory(pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content="version three")))
    own_redis.start()
    deadline = time.monotonic() + 15
    while caches(s)["search"].state != "ok":
        assert time.monotonic() < deadline, "the cache did not recover"
        time.sleep(0.2)
    assert sorted(search(s, "version", uid)) == ["version one", "version three", "version two"]


def test_requests_succeed_while_redis_is_down_and_it_recovers(
    redis_server: RunningServer, own_redis: RedisProcess
) -> None:
    s, uid = redis_server, f"u-{uuid.uuid4().hex[:8]}"
    own_redis.stop(kill=True)
    started = time.monotonic()
    created = s.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content="while down"))
    ).memory
    for _ in range(20):
        assert search(s, "while down", uid) == ["while down"]
        assert s.memory.GetMemory(pb.GetMemoryRequest(id=created.id)).memory.content == "while down"
    assert time.monotonic() - started < 10
    assert caches(s)["search"].state == "down"
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(s.channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    own_redis.start()
    deadline = time.monotonic() + 15
    while caches(s)["search"].state != "ok":
        assert time.monotonic() < deadline, "the cache did not recover"
        time.sleep(0.2)
    hits_before = caches(s)["search"].hits
    search(s, "after recovery", uid)
    search(s, "after recovery", uid)
    assert caches(s)["search"].hits == hits_before + 1
