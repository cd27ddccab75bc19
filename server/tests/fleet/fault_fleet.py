"""The fleet the fault tests break: a real PostgreSQL of its own (it is
restarted), a real Redis of its own, and three `mnemo-server` replicas on
fixed loopback ports, each with its own data directory. Replica 2 reaches
Redis through a TcpProxy the tests can cut; the others reach it directly.

`Load` runs writers and searchers against every replica, each on a channel of
its own, and records every acknowledged write and every failed call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psycopg
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from mnemo.v1 import admin_service_pb2 as admin_pb
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb
from mnemo.v1 import memory_service_pb2_grpc

from ..cache.redis_procs import RedisProcess
from ..pg_server import PgServer
from ..server_proc import Proc
from .tcp_proxy import TcpProxy

REPLICAS = 3
PROXIED = 2  # the replica whose Redis connection the tests can cut
#: Generous: a bound on a hang, not a latency claim.
DEADLINE_S = 60.0
#: Reconnect quickly to a replica that comes back on its port (gRPC's default backoff grows to 120 s).
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.use_local_subchannel_pool", 1),
]


def free_port() -> int:
    from _harness.process import free_port as port

    return port()


def eventually(check: Callable[[], bool], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.05)


@dataclass(frozen=True)
class Failure:
    replica: int
    method: str
    code: str
    reason: str
    retry_delay_s: float | None
    at: float


def failure_of(replica: int, method: str, exc: grpc.RpcError) -> Failure:
    reason, delay = "", None
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            delay = retry.retry_delay.ToNanoseconds() / 1e9
    return Failure(replica, method, exc.code().name, reason, delay, time.monotonic())


class FaultFleet:
    def __init__(self, root: Path, *, durable: bool = False) -> None:
        """`durable`: PostgreSQL with fsync on, as in production (benchmarks)."""
        self.root = root
        self.pg = PgServer(durable=durable).start()
        self.url = self.pg.create_database()
        self.redis = RedisProcess(root / "redis").start()
        self.proxy = TcpProxy(("127.0.0.1", self.redis.port)).start()
        self.ports = [free_port() for _ in range(REPLICAS)]
        self.procs: list[Proc | None] = [None] * REPLICAS
        with ThreadPoolExecutor(REPLICAS) as pool:  # the model loads in parallel
            list(pool.map(self.start, range(REPLICAS)))

    def redis_url(self, i: int) -> str:
        return self.proxy.url if i == PROXIED else self.redis.url

    def start(self, i: int) -> Proc:
        """Replica `i` on its own port and data directory (again, after a kill)."""
        proc = Proc(
            self.root / f"r{i}",
            "--address",
            f"127.0.0.1:{self.ports[i]}",
            "--store",
            self.url,
            "--redis-url",
            self.redis_url(i),
            "--sweep-interval-s",
            "0.2",
        )
        self.procs[i] = proc
        return proc

    def proc(self, i: int) -> Proc:
        proc = self.procs[i]
        assert proc is not None
        return proc

    def channel(self, i: int) -> grpc.Channel:
        return grpc.insecure_channel(f"127.0.0.1:{self.ports[i]}", options=CHANNEL_OPTIONS)

    def memory(self, i: int) -> memory_service_pb2_grpc.MemoryServiceStub:
        return self.proc(i).memory

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def leader(self) -> int:
        """The index of the replica holding the leader's advisory lock; -1 while none or several do."""
        rows = self.sql(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()"
        )
        pids = [int(str(name).rsplit("-", 1)[1]) for (name,) in rows]
        by_pid = {self.proc(i).popen.pid: i for i in range(REPLICAS)}
        leaders = [by_pid[pid] for pid in pids if pid in by_pid]
        return leaders[0] if len(leaders) == 1 else -1

    def assert_consistent(self) -> None:
        """AdminService.CheckConsistency on every replica: its index agrees with the store."""
        for i in range(REPLICAS):
            report = self.proc(i).admin.CheckConsistency(admin_pb.CheckConsistencyRequest(), timeout=120)
            assert report.consistent, (i, report)
            assert report.store_count == report.index_count, (i, report)

    def close(self) -> None:
        for proc in self.procs:
            if proc is not None:
                proc.close()
        self.proxy.close()
        self.redis.stop()
        self.pg.stop()


@dataclass
class Load:
    """`writers` writers and one searcher per replica until stop().

    Each writer writes into scopes of its own (a new one every `per_scope`
    writes, so a scope fits one page and one search), each write with a
    request id. With `retry`, a write that failed is sent again with the same
    request id until it is acknowledged (so every logical write ends
    acknowledged exactly once); without, the writer moves on. Every searcher
    checks read-your-writes on its replica: the last write acknowledged there
    is found by a search for its content.
    """

    fleet: FaultFleet
    tag: str
    writers: int = 2
    retry: bool = False
    pace_s: float = 0.02
    per_scope: int = 200
    acked: list[tuple[int, str, str, float]] = field(default_factory=list)  # replica, user, id, when
    failures: list[Failure] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    #: (replica, method, started, seconds) of every call that succeeded (bench/fleet_fault_bench.py).
    latencies: list[tuple[int, str, float, float]] = field(default_factory=list)
    _last: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for i in range(REPLICAS):
            for k in range(self.writers):
                self._threads.append(threading.Thread(target=self._write, args=(i, k), daemon=True))
            self._threads.append(threading.Thread(target=self._search, args=(i,), daemon=True))
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(DEADLINE_S * 2)
            assert not t.is_alive(), "a load thread hung"

    def acked_on(self, i: int, since: float = 0.0) -> int:
        return sum(1 for r, _u, _id, at in list(self.acked) if r == i and at >= since)

    def by_user(self) -> dict[str, set[str]]:
        users: dict[str, set[str]] = {}
        for _r, user, memory_id, _at in self.acked:
            users.setdefault(user, set()).add(memory_id)
        return users

    def _write(self, i: int, k: int) -> None:
        channel = self.fleet.channel(i)
        stub = memory_service_pb2_grpc.MemoryServiceStub(channel)
        n = 0
        try:
            while not self._stop.is_set():
                n += 1
                user = f"{self.tag}-r{i}-w{k}-s{n // self.per_scope}"
                content = f"{self.tag} note {n} of writer {k} on replica {i}: the spare key is in pot {n}"
                request = pb.CreateMemoryRequest(
                    memory=m.Memory(user_id=user, content=content), request_id=f"{self.tag}-{i}-{k}-{n}"
                )
                give_up = time.monotonic() + DEADLINE_S
                while True:
                    started = time.monotonic()
                    try:
                        memory = stub.CreateMemory(request, timeout=30).memory
                    except grpc.RpcError as exc:
                        self.failures.append(failure_of(i, "CreateMemory", exc))
                        time.sleep(0.05)
                        if self.retry and time.monotonic() < give_up:
                            continue
                        break
                    done = time.monotonic()
                    self.latencies.append((i, "CreateMemory", started, done - started))
                    self.acked.append((i, user, memory.id, done))
                    self._last[i] = (user, content, memory.id)
                    break
                time.sleep(self.pace_s)
        finally:
            channel.close()

    def _search(self, i: int) -> None:
        channel = self.fleet.channel(i)
        stub = memory_service_pb2_grpc.MemoryServiceStub(channel)
        try:
            while not self._stop.is_set():
                last = self._last.get(i)
                if last is None:
                    time.sleep(0.02)
                    continue
                user, content, memory_id = last
                request = pb.SearchMemoriesRequest(query=content, scope=m.Scope(user_id=user), top_k=10)
                started = time.monotonic()
                try:
                    hits = stub.SearchMemories(request, timeout=30).hits
                except grpc.RpcError as exc:
                    self.failures.append(failure_of(i, "SearchMemories", exc))
                    time.sleep(0.05)
                    continue
                self.latencies.append((i, "SearchMemories", started, time.monotonic() - started))
                if memory_id not in {h.memory.id for h in hits}:
                    self.wrong.append(f"replica {i} did not find its own acknowledged write {memory_id}")
                time.sleep(self.pace_s)
        finally:
            channel.close()


def assert_every_replica_has(fleet: FaultFleet, users: dict[str, set[str]], *, exactly: bool = False) -> None:
    """Every acknowledged write is listed and found by a search on every
    replica (`exactly`: and nothing else is in those scopes)."""
    for i in range(REPLICAS):
        stub = fleet.memory(i)
        for user, ids in users.items():
            assert len(ids) <= 1000, "a scope must fit one page and one search"
            listed = stub.ListMemories(
                pb.ListMemoriesRequest(scope=m.Scope(user_id=user), page_size=1000), timeout=60
            )
            listed_ids = {x.id for x in listed.memories}
            missing = ids - listed_ids
            assert not missing, f"replica {i} lost {len(missing)} acknowledged writes of {user}"
            if exactly:
                assert listed_ids == ids, f"replica {i}: {len(listed_ids - ids)} unacknowledged in {user}"
            hits = stub.SearchMemories(
                pb.SearchMemoriesRequest(query="the spare key", scope=m.Scope(user_id=user), top_k=1000),
                timeout=60,
            ).hits
            unsearchable = ids - {h.memory.id for h in hits}
            assert not unsearchable, f"replica {i}: {len(unsearchable)} of {user} not found by search"
