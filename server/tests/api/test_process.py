"""The mnemo-server process: start-up, health, reflection, SIGTERM, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

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
    assert "draining" in log and "stopped" in log and "Traceback" not in log


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
    buf = Path(__file__).resolve().parents[3] / "clients/node/node_modules/.bin/buf"
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
