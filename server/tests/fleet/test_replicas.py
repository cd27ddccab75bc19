"""Replicas: three `mnemo-server --store postgresql://...` processes on
loopback, each with its own data directory, sharing one real PostgreSQL
(tests/pg_server.py) and nothing else. A write acknowledged by one is found
by a search on another; a watch on one delivers every replica's writes in
revision order; a replica whose listening connection is killed reconnects and
still converges; exactly one leads the background work, and after a kill -9
of the leader a survivor leads and expires memories (once)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from google.protobuf import duration_pb2

from mnemo.v1 import admin_service_pb2 as admin_pb
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from ..pg_server import fresh_database_url
from ..server_proc import Proc

REPLICAS = 3
#: Generous: a bound on a hang, not a latency claim (bench/replica_bench.py measures).
DEADLINE_S = 30.0


class Replicas:
    def __init__(self, root: Path) -> None:
        self.url = fresh_database_url()
        self.procs: list[Proc] = []
        for i in range(REPLICAS):
            self.procs.append(Proc(root / f"r{i}", "--store", self.url, "--sweep-interval-s", "0.2"))

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def leaders(self) -> list[int]:
        """The OS pids whose session holds the leader's advisory lock."""
        rows = self.sql(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()"
        )
        return sorted(int(str(name).rsplit("-", 1)[1]) for (name,) in rows)

    def close(self) -> None:
        for proc in self.procs:
            proc.close()


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    fleet = Replicas(tmp_path_factory.mktemp("replicas"))
    try:
        yield fleet
    finally:
        fleet.close()


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, f"not within {DEADLINE_S}s: {what}"
        time.sleep(0.02)


def create(proc: Proc, content: str, user: str, **kw: Any) -> m.Memory:
    request = pb.CreateMemoryRequest(memory=m.Memory(user_id=user, content=content), **kw)
    memory: m.Memory = proc.memory.CreateMemory(request, timeout=30).memory
    return memory


def found(proc: Proc, query: str, user: str, memory_id: str) -> bool:
    hits = proc.memory.SearchMemories(
        pb.SearchMemoriesRequest(query=query, scope=m.Scope(user_id=user), top_k=100), timeout=30
    ).hits
    return memory_id in {h.memory.id for h in hits}


def test_a_write_acknowledged_by_one_replica_is_searchable_on_the_others(replicas: Replicas) -> None:
    for i, writer in enumerate(replicas.procs):
        written = create(writer, f"replica {i} booked the blue conference room", "visible")
        for j, reader in enumerate(replicas.procs):
            eventually(
                lambda r=reader, w=written: found(r, "blue conference room", "visible", w.id),  # type: ignore[misc]
                f"replica {j} finds replica {i}'s write",
            )
    for proc in replicas.procs:
        report = proc.admin.CheckConsistency(admin_pb.CheckConsistencyRequest(), timeout=60)
        assert report.consistent


def _watch(proc: Proc, user: str, count: int, started: threading.Event) -> list[tuple[int, str]]:
    call = proc.memory.WatchMemories(
        pb.WatchMemoriesRequest(scope=m.Scope(user_id=user)), timeout=DEADLINE_S * 2
    )
    events: list[tuple[int, str]] = []
    try:
        for response in call:
            if response.progress_notification:
                started.set()
            events += [(e.revision, e.memory_id) for e in response.events]
            if len(events) >= count:
                break
    finally:
        call.cancel()
    return events


def test_a_watch_on_one_replica_delivers_every_replicas_writes_in_order(replicas: Replicas) -> None:
    user, count = "watched", 24
    started = threading.Event()
    result: list[list[tuple[int, str]]] = []
    watcher = threading.Thread(target=lambda: result.append(_watch(replicas.procs[1], user, count, started)))
    watcher.start()
    assert started.wait(DEADLINE_S)
    written: list[m.Memory] = []
    lock = threading.Lock()

    def writer(proc: Proc, n: int) -> None:
        for k in range(n):
            memory = create(proc, f"note {k} from {proc.port}", user)
            with lock:
                written.append(memory)

    writers = [threading.Thread(target=writer, args=(p, count // REPLICAS)) for p in replicas.procs]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    watcher.join(DEADLINE_S * 2)
    assert result, "the watch did not deliver every write"
    events = result[0]
    assert [r for r, _ in events] == sorted({r for r, _ in events})  # in order, no duplicate
    assert sorted(events) == sorted((w.revision, w.id) for w in written)  # no gap


def test_a_killed_listener_reconnects_and_the_replica_still_converges(replicas: Replicas) -> None:
    reader = replicas.procs[2]
    name = f"mnemo-listen-{reader.popen.pid}"
    before = replicas.sql("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (name,))
    assert len(before) == 1
    assert replicas.sql("SELECT pg_terminate_backend(%s)", (before[0][0],)) == [(True,)]
    written = create(replicas.procs[0], "the parcel for Zoe arrived at the front desk", "listener")
    eventually(lambda: found(reader, "parcel front desk", "listener", written.id), "found while reconnecting")
    eventually(lambda: reader.logged("revision listener is back") != "", "the listener reconnected")
    after = replicas.sql("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (name,))
    assert len(after) == 1 and after != before
    later = create(replicas.procs[0], "the parcel for Yann arrived too", "listener")
    eventually(lambda: found(reader, "parcel arrived", "listener", later.id), "found after reconnecting")


def test_one_replica_leads_and_a_survivor_takes_over_after_kill_9(replicas: Replicas) -> None:
    pids = {p.popen.pid: p for p in replicas.procs}
    eventually(lambda: len(replicas.leaders()) == 1, "one leader")
    leader = replicas.leaders()[0]
    assert leader in pids
    for _ in range(10):  # stays one, the same
        assert replicas.leaders() == [leader]
        time.sleep(0.05)
    pids.pop(leader).kill()
    eventually(lambda: len(replicas.leaders()) == 1 and replicas.leaders()[0] in pids, "a survivor leads")
    survivors = list(pids.values())
    expired = [
        create(survivors[i % 2], f"short-lived {i}", "ttl", ttl=duration_pb2.Duration(seconds=1)).id
        for i in range(3)
    ]

    def swept() -> int:
        return sum(int(x) for p in survivors for x in re.findall(r"upkeep: expired (\d+)", "".join(p.log)))

    eventually(lambda: swept() >= len(expired), "a survivor swept the expired memories")
    time.sleep(1.0)  # a second sweeper would have swept them by now too
    assert swept() == len(expired)  # once, not once per replica
    history = survivors[1].memory.GetMemoryHistory(pb.GetMemoryHistoryRequest(id=expired[0]), timeout=30)
    assert history.versions[0].change_type == pb.CHANGE_TYPE_EXPIRE
