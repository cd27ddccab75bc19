"""Faults of a three-replica fleet (fault_fleet.py): a real PostgreSQL and a
real Redis of its own, three `mnemo-server --store postgresql://...
--redis-url ...` processes on loopback, under a mixed write and search load
on every replica.

- kill -9 of one replica (the leader): no acknowledged write is lost, no call
  to a survivor fails, and the victim, started again on its port and data
  directory, catches up and serves again;
- PostgreSQL restarted: calls fail with UNAVAILABLE / STORE_UNAVAILABLE and a
  retry hint while it is down and succeed again after; every acknowledged
  write is there once, and every replica's index agrees with the store
  (AdminService.CheckConsistency on each);
- one replica partitioned from Redis: it keeps serving correct results (what
  the other replicas wrote, its own writes) from the store, and after the
  partition heals it uses Redis again. The others see what it wrote during
  the partition, although its cache invalidations could not reach Redis.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from google.protobuf import field_mask_pb2

from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from .fault_fleet import (
    PROXIED,
    REPLICAS,
    FaultFleet,
    Load,
    assert_every_replica_has,
    eventually,
)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultFleet]:
    fleet = FaultFleet(tmp_path_factory.mktemp("faults"))
    try:
        yield fleet
    finally:
        fleet.close()


def test_kill_9_of_a_replica_under_load_loses_nothing_and_the_victim_catches_up(fleet: FaultFleet) -> None:
    victim = fleet.leader()  # the hardest one: the background work moves too
    survivors = [i for i in range(REPLICAS) if i != victim]
    load = Load(fleet, "kill9").start()
    try:
        eventually(lambda: all(load.acked_on(i) >= 5 for i in range(REPLICAS)), "load on every replica")
        fleet.proc(victim).kill()  # SIGKILL: no drain, no snapshot
        killed = time.monotonic()
        eventually(lambda: all(load.acked_on(i, since=killed) >= 10 for i in survivors), "survivors write on")
        fleet.start(victim)  # same port, same data directory
        rejoined = time.monotonic()
        eventually(lambda: load.acked_on(victim, since=rejoined) >= 5, "the victim serves the load again")
        eventually(lambda: fleet.leader() in range(REPLICAS), "one replica leads")
    finally:
        load.stop()
    assert [f for f in load.failures if f.replica in survivors] == []
    assert {(f.code, f.replica) for f in load.failures} <= {("UNAVAILABLE", victim)}
    assert load.wrong == []
    assert load.acked_on(victim, since=killed) > 0 and load.acked_on(survivors[0], since=killed) > 0
    assert_every_replica_has(fleet, load.by_user())  # the victim too: it caught up from the log
    fleet.assert_consistent()


def test_a_postgresql_restart_under_load_is_unavailable_with_a_hint_then_loses_nothing(
    fleet: FaultFleet,
) -> None:
    load = Load(fleet, "pgrestart", retry=True).start()
    try:
        eventually(lambda: all(load.acked_on(i) >= 5 for i in range(REPLICAS)), "load on every replica")
        down = time.monotonic()
        fleet.pg.stop_server()  # pg_ctl stop -m fast: sessions end at once
        eventually(lambda: {f.replica for f in load.failures} == set(range(REPLICAS)), "every replica fails")
        time.sleep(2)  # an outage long enough for the pools' reconnect backoff to matter
        fleet.pg.start_server()
        up = time.monotonic()
        eventually(lambda: all(load.acked_on(i, since=up) >= 10 for i in range(REPLICAS)), "writes again")
    finally:
        load.stop()
    during = [f for f in load.failures if f.at >= down]
    assert during and len(during) == len(load.failures)  # nothing failed before the outage
    assert {(f.code, f.reason) for f in during} == {("UNAVAILABLE", "STORE_UNAVAILABLE")}
    assert all(f.retry_delay_s is not None and f.retry_delay_s > 0 for f in during)
    assert load.wrong == []
    # Every logical write was retried (same request id) until acknowledged: each is
    # there exactly once, on every replica, and nothing a failed attempt left behind.
    assert_every_replica_has(fleet, load.by_user(), exactly=True)
    fleet.assert_consistent()


CACHE_FAILED = r"cache backend redis at \S+ failed"
CACHE_RECOVERED = r"cache backend redis at \S+ recovered"


def _logged(fleet: FaultFleet, i: int, pattern: str) -> int:
    return sum(1 for line in list(fleet.proc(i).log) if re.search(pattern, line))


def _search(fleet: FaultFleet, i: int, query: str, user: str) -> dict[str, str]:
    hits = (
        fleet.memory(i)
        .SearchMemories(
            pb.SearchMemoriesRequest(query=query, scope=m.Scope(user_id=user), top_k=50), timeout=30
        )
        .hits
    )
    return {h.memory.id: h.memory.content for h in hits}


def _get(fleet: FaultFleet, i: int, memory_id: str) -> str:
    return str(fleet.memory(i).GetMemory(pb.GetMemoryRequest(id=memory_id), timeout=30).memory.content)


def test_a_replica_partitioned_from_redis_serves_correct_results_from_the_store(fleet: FaultFleet) -> None:
    user, query = "partition", "the gate code"
    part, other = PROXIED, 0
    assert fleet.proxy.accepted > 0, "the proxied replica never connected to Redis"
    gate = (
        fleet.memory(other)
        .CreateMemory(
            pb.CreateMemoryRequest(memory=m.Memory(user_id=user, content="the gate code is 1234")), timeout=30
        )
        .memory
    )
    for i in (part, other):  # both cache the search and the record (in Redis and in process)
        eventually(lambda i=i: gate.id in _search(fleet, i, query, user), f"replica {i} finds it")  # type: ignore[misc]
        for _ in range(2):
            assert _search(fleet, i, query, user)[gate.id] == "the gate code is 1234"
            assert _get(fleet, i, gate.id) == "the gate code is 1234"

    cache_failed_before = _logged(fleet, part, CACHE_FAILED)
    recovered_before = _logged(fleet, part, CACHE_RECOVERED)
    fleet.proxy.cut()
    try:
        changed = (
            fleet.memory(other)
            .UpdateMemory(
                pb.UpdateMemoryRequest(
                    memory=m.Memory(id=gate.id, content="the gate code is 9876"),
                    update_mask=field_mask_pb2.FieldMask(paths=["content"]),
                ),
                timeout=30,
            )
            .memory
        )
        added = (
            fleet.memory(other)
            .CreateMemory(
                pb.CreateMemoryRequest(memory=m.Memory(user_id=user, content="the back gate code is 5555")),
                timeout=30,
            )
            .memory
        )
        # The partitioned replica cannot read the bumps the writer sent to Redis:
        # it must not serve what it cached before them.
        eventually(
            lambda: _search(fleet, part, query, user).get(gate.id) == "the gate code is 9876",
            "the partitioned replica sees the update",
        )
        for _ in range(3):  # and never the old content again
            found = _search(fleet, part, query, user)
            assert found[gate.id] == "the gate code is 9876" and found[added.id] == added.content
            assert _get(fleet, part, gate.id) == "the gate code is 9876"
        assert changed.revision > gate.revision
        # The writer's searches are cached in Redis under the generations it bumped.
        for _ in range(2):
            assert _search(fleet, other, query, user)[gate.id] == "the gate code is 9876"
        # Its own writes succeed, and it reads them back.
        own = (
            fleet.memory(part)
            .CreateMemory(
                pb.CreateMemoryRequest(memory=m.Memory(user_id=user, content="the side gate code is 4242")),
                timeout=30,
            )
            .memory
        )
        assert _search(fleet, part, query, user)[own.id] == "the side gate code is 4242"
        assert _get(fleet, part, own.id) == "the side gate code is 4242"
        # Its bump of the scope never reached Redis, yet the others, which cached
        # this scope's search in Redis just before, find its write: catching up
        # from the revision log, each bumps the generations of what it applies.
        for i in range(REPLICAS):
            eventually(lambda i=i: own.id in _search(fleet, i, query, user), f"replica {i} finds the write")  # type: ignore[misc]
        failed = _logged(fleet, part, CACHE_FAILED)
    finally:
        fleet.proxy.heal()
    assert failed > cache_failed_before, "the partitioned replica did not notice the partition"
    # Healed: the partitioned replica uses Redis again, and still answers right.
    eventually(lambda: _logged(fleet, part, CACHE_RECOVERED) > recovered_before, "the cache recovers")
    for i in range(REPLICAS):
        found = _search(fleet, i, query, user)
        assert (found[gate.id], found[added.id], found[own.id]) == (
            "the gate code is 9876",
            added.content,
            "the side gate code is 4242",
        ), i
    fleet.assert_consistent()
