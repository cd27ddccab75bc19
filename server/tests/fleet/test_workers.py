"""`mnemo-server --workers 2` as real processes on loopback: every connection
sees every acknowledged write, compare-and-set, request ids and revocation
hold across the workers, the supervisor restarts a killed worker, the
background work moves when its leader dies, SIGTERM drains them all, a crash
loop ends the supervisor, and the fleet's metrics and health are labelled by
worker. Connections are spread over the workers by the kernel (SO_REUSEPORT):
each test uses many channels of their own, and the metrics show that both
workers answered."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mnemo.v1 import admin_service_pb2 as admin_pb
from mnemo.v1 import admin_service_pb2_grpc, memory_service_pb2_grpc
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from ..conftest import error_of
from ..server_proc import SERVER, Proc

BOOTSTRAP = "fleet-bootstrap-key-" + "f" * 40
CHANNELS = 12
CONTENT = field_mask_pb2.FieldMask(paths=["content"])


def free_port() -> int:
    from _harness.process import free_port as port

    return port()


class Fleet:
    """A supervisor with `workers` children; returns once all of them serve."""

    def __init__(self, data_dir: Path, *extra: str, workers: int = 2) -> None:
        self.metrics_port = free_port()
        self.workers = workers
        self.proc = Proc(
            data_dir,
            "--workers",
            str(workers),
            "--metrics-address",
            f"127.0.0.1:{self.metrics_port}",
            "--sweep-interval-s",
            "0.2",
            *extra,
        )
        self.wait_logged(rf"all {workers} workers serving", count=1)
        self.channels = self.proc.channels(CHANNELS)
        self.metadata: tuple[tuple[str, str], ...] = ()

    def wait_logged(self, pattern: str, *, count: int, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while len(self.lines(pattern)) < count:
            assert self.proc.popen.poll() is None, "the supervisor exited:\n" + "".join(self.proc.log)
            assert time.monotonic() < deadline, f"{pattern!r} not logged {count}x:\n" + "".join(self.proc.log)
            time.sleep(0.1)

    def lines(self, pattern: str) -> list[str]:
        return [line for line in list(self.proc.log) if re.search(pattern, line)]

    def memory(self, i: int) -> Any:
        return Keyed(memory_service_pb2_grpc.MemoryServiceStub(self.channels[i % CHANNELS]), self.metadata)

    def admin(self, i: int) -> Any:
        return Keyed(admin_service_pb2_grpc.AdminServiceStub(self.channels[i % CHANNELS]), self.metadata)

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.http("/healthz")[1])
        return result

    def wait_healthy(self, timeout: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status, body = self.http("/healthz")
            if status == 200:
                result: dict[str, Any] = json.loads(body)
                return result
            assert time.monotonic() < deadline, body + "".join(self.proc.log[-30:])
            time.sleep(0.2)

    def handled_by_worker(self) -> dict[str, float]:
        """gRPC calls each worker answered, from the supervisor's /metrics."""
        totals: dict[str, float] = {}
        for line in self.http("/metrics")[1].splitlines():
            found = re.match(r'grpc_server_handled_total\{worker="(\d+)",.*\} (\S+)', line)
            if found:
                totals[found.group(1)] = totals.get(found.group(1), 0) + float(found.group(2))
        return totals

    def close(self) -> None:
        for channel in self.channels:
            channel.close()
        self.proc.close()


class Keyed:
    def __init__(self, stub: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        self._stub, self._metadata = stub, metadata

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._stub, name)
        return lambda request, **kw: method(request, metadata=self._metadata, timeout=30, **kw)


def bearer(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


def fails(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except grpc.RpcError as exc:
        code, reason, _ = error_of(exc)
        return code, reason
    raise AssertionError("the call succeeded")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    data_dir = tmp_path_factory.mktemp("fleet") / "data"
    fleet = Fleet(data_dir, "--auth-enabled", "on", env_key(BOOTSTRAP))
    fleet.metadata = bearer(BOOTSTRAP)
    yield fleet
    pids = [w["pid"] for w in fleet.health()["workers"] if w["pid"]]
    fleet.close()  # kill -9 of the supervisor: the workers must not outlive it
    deadline = time.monotonic() + 60
    while any(Path(f"/proc/{pid}").exists() and "zombie" not in state(pid) for pid in pids):
        assert time.monotonic() < deadline, f"workers {pids} outlived their supervisor"
        time.sleep(0.1)


def state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split("\n", 1)[0]
    except (FileNotFoundError, IndexError):
        return "zombie"


def env_key(secret: str) -> str:
    return f"--auth-bootstrap-key={secret}"


def create(fleet: Fleet, i: int, content: str, user: str, **kw: Any) -> m.Memory:
    request = pb.CreateMemoryRequest(memory=m.Memory(user_id=user, content=content), **kw)
    memory: m.Memory = fleet.memory(i).CreateMemory(request).memory
    return memory


def test_every_acknowledged_write_is_seen_through_every_other_connection(fleet: Fleet) -> None:
    user = "visible"
    written = []
    for i in range(CHANNELS):
        written.append(create(fleet, i, f"note {i}: the meeting room {i} has a broken projector", user))
        for j in range(CHANNELS):
            got = fleet.memory(j).GetMemory(pb.GetMemoryRequest(id=written[-1].id)).memory
            assert got.revision == written[-1].revision
            found = fleet.memory(j).SearchMemories(
                pb.SearchMemoriesRequest(query="broken projector", scope=m.Scope(user_id=user), top_k=50)
            )
            assert {h.memory.id for h in found.hits} == {w.id for w in written}, (i, j)
    handled = fleet.handled_by_worker()
    assert set(handled) == {"0", "1"} and min(handled.values()) > 0, handled


def test_an_update_on_one_worker_is_not_answered_from_another_workers_cache(fleet: Fleet) -> None:
    user = "cached"
    memory = create(fleet, 0, "the parcel is at the front desk", user)
    for round_ in range(4):
        for j in range(CHANNELS):  # every worker caches the record and the search
            fleet.memory(j).GetMemory(pb.GetMemoryRequest(id=memory.id))
            fleet.memory(j).SearchMemories(
                pb.SearchMemoriesRequest(query="parcel", scope=m.Scope(user_id=user))
            )
        content = f"the parcel moved to locker {round_}"
        memory = (
            fleet.memory(round_)
            .UpdateMemory(
                pb.UpdateMemoryRequest(
                    memory=m.Memory(id=memory.id, content=content), etag=memory.etag, update_mask=CONTENT
                )
            )
            .memory
        )
        for j in range(CHANNELS):
            assert fleet.memory(j).GetMemory(pb.GetMemoryRequest(id=memory.id)).memory.content == content
            hits = (
                fleet.memory(j)
                .SearchMemories(pb.SearchMemoriesRequest(query="parcel", scope=m.Scope(user_id=user)))
                .hits
            )
            assert [(h.memory.content, h.memory.revision) for h in hits] == [(content, memory.revision)]


def test_compare_and_set_across_workers_has_one_winner(fleet: Fleet) -> None:
    memory = create(fleet, 0, "the door code is 1234", "cas")
    outcomes: list[tuple[str, str]] = []
    barrier = threading.Barrier(CHANNELS)

    def race(i: int) -> None:
        request = pb.UpdateMemoryRequest(
            memory=m.Memory(id=memory.id, content=f"code {i}"), etag=memory.etag, update_mask=CONTENT
        )
        barrier.wait()
        try:
            fleet.memory(i).UpdateMemory(request)
            outcomes.append(("won", str(i)))
        except grpc.RpcError as exc:
            outcomes.append(("lost", error_of(exc)[1]))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(CHANNELS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [who for what, who in outcomes if what == "won"]
    assert len(winners) == 1 and len(outcomes) == CHANNELS, outcomes
    assert {why for what, why in outcomes if what == "lost"} == {"ETAG_MISMATCH"}
    for j in range(CHANNELS):
        assert (
            fleet.memory(j).GetMemory(pb.GetMemoryRequest(id=memory.id)).memory.content
            == f"code {winners[0]}"
        )


def test_a_request_id_replays_on_every_worker(fleet: Fleet) -> None:
    ids = {create(fleet, i, "bought milk", "idem", request_id="req-milk-1").id for i in range(CHANNELS)}
    assert len(ids) == 1
    listed = fleet.memory(3).ListMemories(pb.ListMemoriesRequest(scope=m.Scope(user_id="idem"))).memories
    assert [x.id for x in listed] == list(ids)


def test_a_revocation_holds_on_every_worker_at_once(fleet: Fleet) -> None:
    made = fleet.admin(0).CreateApiKey(
        admin_pb.CreateApiKeyRequest(tenant="default", role=admin_pb.API_KEY_ROLE_WRITER)
    )
    stubs = [memory_service_pb2_grpc.MemoryServiceStub(c) for c in fleet.channels]
    request = pb.ListMemoriesRequest(scope=m.Scope(user_id="nobody"))
    for stub in stubs:  # every worker caches the key as valid
        stub.ListMemories(request, metadata=bearer(made.secret), timeout=30)
    fleet.admin(5).RevokeApiKey(admin_pb.RevokeApiKeyRequest(id=made.api_key.id))
    for stub in stubs:
        assert fails(lambda s=stub: s.ListMemories(request, metadata=bearer(made.secret), timeout=30)) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "API_KEY_INVALID",
        )


def test_a_watch_on_any_worker_delivers_every_workers_writes_in_order(fleet: Fleet) -> None:
    user = "watched"
    streams = [
        fleet.memory(j).WatchMemories(pb.WatchMemoriesRequest(scope=m.Scope(user_id=user))) for j in range(4)
    ]
    for stream in streams:  # the first progress notification: the watch is in place
        assert next(stream).progress_notification
    written = [create(fleet, i, f"watched note {i}", user) for i in range(CHANNELS)]
    expected = [(w.id, w.revision) for w in written]
    for stream in streams:
        seen: list[tuple[str, int]] = []
        for response in stream:
            seen += [(e.memory_id, e.revision) for e in response.events]
            if len(seen) >= len(expected):
                break
        stream.cancel()
        assert seen == expected  # every worker's writes, in revision order, once


def test_the_fleet_reports_health_and_metrics_per_worker(fleet: Fleet) -> None:
    health = fleet.wait_healthy()
    assert health["status"] == "SERVING"
    assert [(w["worker"], w["state"], w["running"]) for w in health["workers"]] == [
        (0, "serving", True),
        (1, "serving", True),
    ]
    text = fleet.http("/metrics")[1]
    assert "mnemo_fleet_workers 2" in text
    assert 'mnemo_ready{worker="0"} 1.0' in text and 'mnemo_ready{worker="1"} 1.0' in text
    assert text.count("# TYPE mnemo_ready gauge") == 1
    assert fleet.http("/nothing")[0] == 404


def test_kill_9_of_a_worker_restarts_it_and_loses_no_acknowledged_write(fleet: Fleet) -> None:
    victim = fleet.health()["workers"][1]
    acknowledged: list[m.Memory] = []
    failures: list[str] = []
    stop = threading.Event()

    def write(i: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                acknowledged.append(create(fleet, i, f"load {i}-{n} about the garden shed", f"kill9-{i}"))
                time.sleep(0.01)  # a few hundred per writer: each fits in one page and one search
            except grpc.RpcError as exc:
                failures.append(exc.code().name)  # the victim's connections, until they reconnect
                time.sleep(0.05)

    writers = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in writers:
        t.start()
    time.sleep(1)
    subprocess.run(["kill", "-9", str(victim["pid"])], check=True)
    fleet.wait_logged(r"worker 1 exited \(code -9\)", count=1)
    health = fleet.wait_healthy()
    time.sleep(1)
    stop.set()
    for t in writers:
        t.join(60)
    assert health["workers"][1]["restarts"] == 1 and health["workers"][1]["pid"] != victim["pid"]
    assert set(failures) <= {"UNAVAILABLE"}, failures
    assert len(acknowledged) > 8
    by_user: dict[str, set[str]] = {}
    for x in acknowledged:
        by_user.setdefault(x.user_id, set()).add(x.id)
    assert max(len(ids) for ids in by_user.values()) < 1000, "too many writes for one page: slow the writers"
    for j in range(CHANNELS):  # the restarted worker too: it catches up from the log
        for user, ids in by_user.items():
            found = fleet.memory(j).ListMemories(
                pb.ListMemoriesRequest(scope=m.Scope(user_id=user), page_size=1000)
            )
            assert ids <= {x.id for x in found.memories}, (j, user)
            hits = (
                fleet.memory(j)
                .SearchMemories(
                    pb.SearchMemoriesRequest(query="garden shed", scope=m.Scope(user_id=user), top_k=1000)
                )
                .hits
            )
            assert ids <= {h.memory.id for h in hits}, (j, user)
    report = fleet.admin(0).CheckConsistency(admin_pb.CheckConsistencyRequest())
    assert report.consistent


def test_the_leader_dies_and_expiry_moves_to_a_survivor(fleet: Fleet, tmp_path: Path) -> None:
    leads = r"process (\d+) leads the background work"
    fleet.wait_logged(leads, count=1)
    before = fleet.lines(leads)
    leader_pid = int(re.search(leads, before[-1]).group(1))  # type: ignore[union-attr]
    assert len({re.search(leads, line).group(1) for line in before}) == len(before)  # type: ignore[union-attr]
    subprocess.run(["kill", "-9", str(leader_pid)], check=True)
    fleet.wait_logged(leads, count=len(before) + 1, timeout=60)
    new_leader = int(re.search(leads, fleet.lines(leads)[-1]).group(1))  # type: ignore[union-attr]
    assert new_leader != leader_pid
    fleet.wait_healthy()
    expired = [
        create(fleet, i, f"short-lived {i}", "ttl", ttl=duration_pb2.Duration(seconds=1)).id for i in range(3)
    ]
    swept_before = sum(int(x) for x in re.findall(r"upkeep: expired (\d+)", "".join(fleet.proc.log)))
    deadline = time.monotonic() + 60
    while True:
        swept = sum(int(x) for x in re.findall(r"upkeep: expired (\d+)", "".join(fleet.proc.log)))
        if swept - swept_before >= len(expired):
            break
        assert time.monotonic() < deadline, "no worker swept the expired memories"
        time.sleep(0.2)
    assert swept - swept_before == len(expired)  # once, not once per worker
    history = fleet.memory(0).GetMemoryHistory(pb.GetMemoryHistoryRequest(id=expired[0]))
    assert history.versions[0].change_type == pb.CHANGE_TYPE_EXPIRE  # newest first


def test_sigterm_drains_every_worker_then_exits_0(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path / "data", "--shutdown-drain-s", "3")
    try:
        create(fleet, 0, "stays after the stop", "drain")
        fleet.proc.popen.send_signal(signal.SIGTERM)
        fleet.wait_logged(r"draining: health NOT_SERVING", count=2, timeout=30)
        status = fleet.http("/healthz")[0]
        served = []
        for channel in fleet.proc.channels(4):  # new connections, to whichever worker
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            served.append(answer.status)
            channel.close()
        assert fleet.proc.popen.wait(120) == 0
    finally:
        fleet.close()
    assert status == 503
    assert set(served) == {health_pb2.HealthCheckResponse.NOT_SERVING}
    assert len(fleet.lines(r"mnemo.app: stopped")) == 2
    assert len(fleet.lines(r"worker \d stopped \(exit 0\)")) == 2


def test_a_crash_loop_is_reported_and_ends_the_supervisor_with_1(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("a file where the data directory should be")
    done = subprocess.run(
        [*SERVER, "--workers", "2", "--address", "127.0.0.1:0", "--data-dir", str(not_a_dir)],
        capture_output=True,
        text=True,
        timeout=280,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "crash loop" in done.stderr and "every worker is in a crash loop; giving up" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "workers: counts server processes, expected 1 to"),
        (["--workers", "99999"], "the thread pool is `threads`"),
        (["--workers", "two"], "workers: expected int"),
    ],
)
def test_invalid_workers_values_are_refused_with_a_clear_message(args: list[str], message: str) -> None:
    done = subprocess.run([*SERVER, *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("mnemo-server: invalid setting: workers: ") and message in done.stderr
    assert "Traceback" not in done.stderr
