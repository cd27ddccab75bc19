"""A mnemo-server subprocess for tests: real process, real signals."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import grpc

from mnemo.v1 import admin_service_pb2_grpc, memory_service_pb2_grpc

SERVER = [sys.executable, "-m", "mnemo_server"]


class Proc:
    def __init__(self, data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        # No drain period on SIGTERM unless a test asks for one (--shutdown-drain-s).
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            "MNEMO_SHUTDOWN_DRAIN_S": "0",
            **(env or {}),
        }
        self.popen = subprocess.Popen(
            [
                *SERVER,
                "--address",
                "127.0.0.1:0",
                "--data-dir",
                str(data_dir),
                "--index-snapshot-interval-s",
                "0",
                *extra,
            ],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.log: list[str] = []
        self.port = 0
        deadline = time.monotonic() + 120
        assert self.popen.stderr is not None
        while time.monotonic() < deadline:
            line = self.popen.stderr.readline()
            if not line:
                break
            self.log.append(line)
            found = re.search(r"\(port (\d+)\)", line)
            if found:
                self.port = int(found.group(1))
            if "serving" in line and self.port:
                break
        assert self.port, "".join(self.log)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.memory = memory_service_pb2_grpc.MemoryServiceStub(self.channel)
        self.admin = admin_service_pb2_grpc.AdminServiceStub(self.channel)

    def rest_of_log(self) -> str:
        assert self.popen.stderr is not None
        return "".join(self.log) + self.popen.stderr.read()

    def close(self) -> None:
        self.channel.close()
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(30)
        if self.popen.stderr is not None:
            self.popen.stderr.close()
