"""Start-up: a non-loopback address without authentication is refused (one
line, exit code 2) unless explicitly allowed; auth is on by default there."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import grpc
import pytest

from mnemo.v1 import memory_service_pb2 as pb

from ..conftest import error_of
from ..server_proc import SERVER, Proc


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNEMO_")}
    return {**env, "HF_HUB_OFFLINE": "1"}


def test_a_public_address_without_auth_refuses_to_start(tmp_path: Path) -> None:
    run = subprocess.run(
        [*SERVER, "--address", "0.0.0.0:0", "--data-dir", str(tmp_path), "--auth-enabled", "off"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
    )
    assert run.returncode == 2
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert "refusing to serve 0.0.0.0:0 without API keys" in lines[0]
    assert "--auth-insecure-allow-unauthenticated" in lines[0]
    assert not (tmp_path / "mnemo.db").exists()


def test_a_public_address_requires_keys_by_default(tmp_path: Path) -> None:
    proc = Proc(tmp_path, "--address", "0.0.0.0:0", env=clean_env())
    try:
        with pytest.raises(grpc.RpcError) as err:
            proc.memory.ListMemories(pb.ListMemoriesRequest(), timeout=10)
        assert error_of(err.value)[:2] == (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_MISSING")
    finally:
        proc.close()


def test_the_explicit_flag_allows_a_public_address_without_auth(tmp_path: Path) -> None:
    proc = Proc(
        tmp_path,
        "--address",
        "0.0.0.0:0",
        "--auth-enabled",
        "off",
        "--auth-insecure-allow-unauthenticated",
        env=clean_env(),
    )
    try:
        proc.memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": "u"}), timeout=10)
        proc.popen.terminate()
        proc.popen.wait(30)
        assert "authentication is OFF" in proc.rest_of_log()
    finally:
        proc.close()
