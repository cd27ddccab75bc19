"""The mnemo-server process: start-up, health, reflection, SIGTERM, kill -9."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from mnemo.v1 import admin_service_pb2 as admin
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from ..server_proc import SERVER, Proc


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def proc(data_dir: Path) -> Iterator[Proc]:
    p = Proc(data_dir)
    yield p
    p.close()


def test_health_is_serving_for_every_service(proc: Proc) -> None:
    health = health_pb2_grpc.HealthStub(proc.channel)
    for name in ("", "mnemo.v1.MemoryService", "mnemo.v1.AdminService"):
        status = health.Check(health_pb2.HealthCheckRequest(service=name)).status
        assert status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_both_services(proc: Proc) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(proc.channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"mnemo.v1.MemoryService", "mnemo.v1.AdminService", "grpc.health.v1.Health"} <= names
    files = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol="mnemo.v1.MemoryService")])
    )
    assert any(r.file_descriptor_response.file_descriptor_proto for r in files)


def test_sigterm_drains_and_exits_zero(proc: Proc) -> None:
    proc.memory.CreateMemory(pb.CreateMemoryRequest(memory=m.Memory(user_id="u", content="hello")))
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.popen.wait(60) == 0
    log = proc.rest_of_log()
    assert "stopping" in log and "stopped" in log and "Traceback" not in log


def test_a_native_crash_logs_every_threads_python_stack(proc: Proc) -> None:
    """A fault in native code (FAISS, torch, SQLite, gRPC core) leaves the
    Python stacks in the log, not a silent exit: faulthandler is on."""
    proc.popen.send_signal(signal.SIGSEGV)
    assert proc.popen.wait(60) == -signal.SIGSEGV
    log = proc.rest_of_log()
    assert "Fatal Python error: Segmentation fault" in log
    assert "most recent call first" in log


def test_the_log_of_a_start_calls_and_a_stop_holds_no_alarming_lines(data_dir: Path) -> None:
    """No FAISS loader tracebacks (AVX-512 probing), no raw gRPC chttp2 transport lines."""
    env = {k: v for k, v in os.environ.items() if k not in ("GRPC_VERBOSITY", "GRPC_TRACE")}
    proc = Proc(data_dir, env=env)
    try:
        health = health_pb2_grpc.HealthStub(proc.channel)
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
        for _ in range(3):  # clients that come and go (GOAWAYs on the server side)
            with grpc.insecure_channel(f"127.0.0.1:{proc.port}") as channel:
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        proc.memory.CreateMemory(pb.CreateMemoryRequest(memory=m.Memory(user_id="u", content="hello")))
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.popen.wait(60) == 0
        log = proc.rest_of_log()
    finally:
        proc.close()
    assert "serving" in log and "stopped" in log
    for alarming in ("Traceback", "chttp2", "faiss.loader", "Could not load library", "ModuleNotFoundError"):
        assert alarming not in log, log


def _statuses(proc: Proc) -> tuple[list[tuple[float, int]], threading.Thread]:
    """Watches the server's health in a thread: (time, status) as they arrive."""
    seen: list[tuple[float, int]] = []
    channel = grpc.insecure_channel(f"127.0.0.1:{proc.port}")

    def watch() -> None:
        with contextlib.suppress(grpc.RpcError):
            for reply in health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest()):
                seen.append((time.monotonic(), reply.status))
        channel.close()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return seen, thread


def _wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def test_sigterm_turns_health_not_serving_and_keeps_serving_for_the_drain_period(data_dir: Path) -> None:
    proc = Proc(data_dir, "--shutdown-drain-s", "3")
    try:
        seen, watcher = _statuses(proc)
        _wait_for(lambda: [s for _, s in seen] == [SERVING])
        signalled = time.monotonic()
        proc.popen.send_signal(signal.SIGTERM)
        _wait_for(lambda: seen[-1][1] == NOT_SERVING, timeout=2)
        # The port is still open and calls are still answered: a probe sees NOT_SERVING.
        health = health_pb2_grpc.HealthStub(proc.channel)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == NOT_SERVING
        created = proc.memory.CreateMemory(
            pb.CreateMemoryRequest(memory=m.Memory(user_id="drain", content="written while draining")),
            timeout=5,
        )
        assert created.memory.id
        assert proc.popen.wait(60) == 0
        assert time.monotonic() - signalled >= 2.5, "the port closed before the drain period was over"
        watcher.join(10)
        log = proc.rest_of_log()
    finally:
        proc.close()
    assert "draining: health NOT_SERVING" in log and "stopped" in log


def test_a_second_signal_or_ctrl_c_does_not_wait_for_the_drain(data_dir: Path) -> None:
    for first, second in ((signal.SIGTERM, signal.SIGTERM), (signal.SIGINT, None)):
        proc = Proc(data_dir, "--shutdown-drain-s", "120")
        try:
            health = health_pb2_grpc.HealthStub(proc.channel)
            started = time.monotonic()
            proc.popen.send_signal(first)
            if second is not None:
                _wait_for(lambda: health.Check(health_pb2.HealthCheckRequest()).status == NOT_SERVING)
                proc.popen.send_signal(second)
            assert proc.popen.wait(60) == 0
            assert time.monotonic() - started < 60
        finally:
            proc.close()


def test_an_acknowledged_write_survives_kill_9(data_dir: Path) -> None:
    first = Proc(data_dir)
    try:
        created = first.memory.CreateMemory(
            pb.CreateMemoryRequest(
                memory=m.Memory(user_id="kill9", content="The spare key is under the blue flowerpot")
            )
        ).memory
        first.popen.send_signal(signal.SIGKILL)
        first.popen.wait(30)
    finally:
        first.close()
    second = Proc(data_dir)
    try:
        got = second.memory.GetMemory(pb.GetMemoryRequest(id=created.id)).memory
        assert got.content == created.content and got.revision == created.revision
        hits = second.memory.SearchMemories(
            pb.SearchMemoriesRequest(query="where is the spare key?", scope=m.Scope(user_id="kill9"))
        ).hits
        assert [h.memory.id for h in hits] == [created.id]
        report = second.admin.CheckConsistency(admin.CheckConsistencyRequest())
        assert report.consistent and report.store_count == report.index_count == 1
    finally:
        second.close()


def test_restart_loads_the_snapshot_and_replays_later_writes(data_dir: Path) -> None:
    first = Proc(data_dir)
    try:
        ids = [
            first.memory.CreateMemory(
                pb.CreateMemoryRequest(memory=m.Memory(user_id="snap", content=f"memory {i}"))
            ).memory.id
            for i in range(3)
        ]
        snap = first.admin.CreateSnapshot(admin.CreateSnapshotRequest())
        assert snap.revision >= 3 and snap.bytes > 0
        first.memory.DeleteMemory(pb.DeleteMemoryRequest(id=ids[0]))
        later = first.memory.CreateMemory(
            pb.CreateMemoryRequest(memory=m.Memory(user_id="snap", content="written after the snapshot"))
        ).memory
        first.popen.send_signal(signal.SIGKILL)
        first.popen.wait(30)
    finally:
        first.close()
    second = Proc(data_dir)
    try:
        assert "replayed 2 changes" in "".join(second.log)
        report = second.admin.CheckConsistency(admin.CheckConsistencyRequest())
        assert report.consistent and report.index_count == 3
        hits = second.memory.SearchMemories(
            pb.SearchMemoriesRequest(
                query="written after the snapshot", scope=m.Scope(user_id="snap"), top_k=10
            )
        ).hits
        assert hits[0].memory.id == later.id and ids[0] not in {h.memory.id for h in hits}
    finally:
        second.close()


def test_a_corrupt_snapshot_is_rebuilt_from_the_store(data_dir: Path) -> None:
    first = Proc(data_dir)
    try:
        first.memory.CreateMemory(pb.CreateMemoryRequest(memory=m.Memory(user_id="c", content="kept")))
        first.popen.send_signal(signal.SIGTERM)
        assert first.popen.wait(60) == 0
    finally:
        first.close()
    for path in (data_dir / "index").rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")
    second = Proc(data_dir)
    try:
        assert "rebuilding from the store" in "".join(second.log)
        assert second.admin.CheckConsistency(admin.CheckConsistencyRequest()).consistent
        assert second.memory.SearchMemories(
            pb.SearchMemoriesRequest(query="kept", scope=m.Scope(user_id="c"))
        ).hits
    finally:
        second.close()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--address", "localhost"], {}, "address: expected HOST:PORT"),
        (["--index-ef-search", "0"], {}, "index.ef_search: must be positive"),
        ([], {"MNEMO_EMBEDDER_PROVIDER": "magic"}, "embedder.provider: expected local or http"),
        ([], {"MNEMO_WORKERS": "many"}, "workers: expected int"),
    ],
)
def test_invalid_settings_fail_at_start_with_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    result = subprocess.run(
        [*SERVER, "--data-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_a_bad_config_file_fails_at_start(tmp_path: Path) -> None:
    config = tmp_path / "mnemo.toml"
    config.write_text("[index]\nnot_a_setting = 1\n")
    result = subprocess.run([*SERVER, "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "index.not_a_setting: unknown setting" in result.stderr


def test_buf_curl_lists_and_calls_rpcs_through_reflection(proc: Proc) -> None:
    buf = Path(__file__).resolve().parents[3] / ".venv/bin/buf"  # what the README's example runs
    base = [str(buf), "curl", "--protocol", "grpc", "--http2-prior-knowledge"]
    url = f"http://127.0.0.1:{proc.port}"
    listed = subprocess.run([*base, "--list-methods", url], capture_output=True, text=True, timeout=60)
    assert "mnemo.v1.MemoryService/SearchMemories" in listed.stdout.splitlines()
    created = subprocess.run(
        [
            *base,
            "--data",
            '{"memory": {"user_id": "curl", "content": "made with buf curl"}}',
            f"{url}/mnemo.v1.MemoryService/CreateMemory",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    assert '"content": "made with buf curl"' in created.stdout


def test_a_create_retried_after_a_restart_does_not_write_twice(data_dir: Path) -> None:
    request = pb.CreateMemoryRequest(
        memory=m.Memory(user_id="retry", content="written once"), request_id="req-restart-1"
    )
    first = Proc(data_dir)
    try:
        original = first.memory.CreateMemory(request)
        first.popen.send_signal(signal.SIGKILL)
        first.popen.wait(30)
    finally:
        first.close()
    second = Proc(data_dir)
    try:
        assert second.memory.CreateMemory(request) == original
        listed = second.memory.ListMemories(pb.ListMemoriesRequest(scope=m.Scope(user_id="retry")))
        assert [x.id for x in listed.memories] == [original.memory.id]
    finally:
        second.close()
