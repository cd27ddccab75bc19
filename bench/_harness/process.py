"""One mnemo-server subprocess: real process, real signals, real gRPC.

The server logs `listening on ADDRESS (port N); loading` once it has bound, then
`serving` once it is ready. `ServerProcess` starts `python -m mnemo_server` on
127.0.0.1:0 in a given data dir, reads stderr in a background thread (so a
chatty server never blocks on a full pipe), and returns once the port line, or
the serving line, has been logged. Extra flags come after the defaults: the
last occurrence of a flag wins.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mnemo.v1 import admin_service_pb2_grpc, memory_service_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
SERVER = [sys.executable, "-m", "mnemo_server"]
PORT_LINE = re.compile(r"listening on \S+ \(port (\d+)\)")  # the gRPC port, not HTTP's
#: "mnemo.app: serving" (or a fleet's "all N workers serving") ends its line; a
#: path that merely contains the word (a pytest tmp_path named after a test
#: about serving) must not count.
SERVING_LINE = re.compile(r"\bserving\s*$")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for servers that need a fixed one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """`python -m mnemo_server --address 127.0.0.1:0 --data-dir DATA_DIR
    --index-snapshot-interval-s 0 *extra`, with HF_HUB_OFFLINE=1 and unbuffered
    output on top of this process's environment (and `env`).

    `until="serving"` returns once the server logged that it serves (the model
    is loaded); `until="port"` once it has bound, for callers that time the
    start themselves (`wait_serving`). Every stderr line lands in `log`, and in
    `log_path` too when one is given. Raises RuntimeError, with the log, when
    the process exits or `timeout` passes first.
    """

    def __init__(
        self,
        data_dir: Path,
        *extra: str,
        env: Mapping[str, str] | None = None,
        until: Literal["port", "serving"] = "serving",
        timeout: float = 300,
        log_path: Path | None = None,
        channel_options: Sequence[tuple[str, int]] = (),
        cwd: Path = ROOT,
    ) -> None:
        self.channel_options = list(channel_options)
        self.log: list[str] = []
        self.port = 0
        self._until = until
        self._ready = threading.Event()
        self._file: IO[str] | None = open(log_path, "w") if log_path else None  # noqa: SIM115
        self.started = time.perf_counter()
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
            env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})},
            cwd=cwd,
        )
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout) or not self._is_ready():
            self.kill()
            raise RuntimeError(f"the server did not start ({until} not logged):\n" + "".join(self.log))
        self.target = f"127.0.0.1:{self.port}"
        self.channel = grpc.insecure_channel(self.target, options=self.channel_options)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.memory = memory_service_pb2_grpc.MemoryServiceStub(self.channel)
        self.admin = admin_service_pb2_grpc.AdminServiceStub(self.channel)

    # ------------------------------------------------------------ the log

    def _is_ready(self) -> bool:
        serving = any(SERVING_LINE.search(line) for line in self.log)
        return bool(self.port) and (self._until == "port" or serving)

    def _read_log(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.log.append(line)
            if self._file is not None:
                self._file.write(line)
                self._file.flush()
            if not self.port and (found := PORT_LINE.search(line)):
                self.port = int(found.group(1))
            if not self._ready.is_set() and self._is_ready():
                self._ready.set()
        self._ready.set()  # the process closed stderr: it exited

    def rest_of_log(self, timeout: float = 30) -> str:
        """The whole log, once the process has closed stderr (call after it exited)."""
        self._reader.join(timeout)
        return "".join(self.log)

    def logged(self, pattern: str) -> str:
        """The last log line matching `pattern`, stripped, or ''."""
        for line in reversed(self.log):
            if re.search(pattern, line):
                return line.strip()
        return ""

    # ------------------------------------------------------------ health and resources

    def wait_serving(self, timeout: float = 900) -> float:
        """Polls grpc.health.v1 until SERVING; seconds from process start."""
        deadline = time.perf_counter() + timeout
        request = health_pb2.HealthCheckRequest()
        while time.perf_counter() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError("the server exited:\n" + "".join(self.log))
            try:
                if self.health.Check(request, timeout=2).status == health_pb2.HealthCheckResponse.SERVING:
                    return time.perf_counter() - self.started
            except grpc.RpcError:
                pass
            time.sleep(0.02)
        raise TimeoutError("the server did not become SERVING:\n" + "".join(self.log[-20:]))

    def channels(self, count: int) -> list[grpc.Channel]:
        """`count` channels of their own (no shared subchannel), for concurrent clients."""
        options = [*self.channel_options, ("grpc.use_local_subchannel_pool", 1)]
        return [grpc.insecure_channel(self.target, options=options) for _ in range(count)]

    def cpu_seconds(self) -> float:
        """User plus system CPU seconds the server process has used so far."""
        fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def wait_idle(self, timeout: float = 300) -> float:
        """Waits until the server uses < 5% of a core; returns the seconds waited."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            before = self.cpu_seconds()
            time.sleep(0.5)
            if self.cpu_seconds() - before < 0.025:
                break
        return time.perf_counter() - started

    # ------------------------------------------------------------ the end

    def stop(self, timeout: float = 600) -> float:
        """SIGTERM and wait; seconds until the process exited. Raises if it
        exited with anything but 0."""
        self.channel.close()
        started = time.perf_counter()
        self.popen.send_signal(signal.SIGTERM)
        code = self.popen.wait(timeout)
        took = time.perf_counter() - started
        self._finish()
        if code != 0:
            raise RuntimeError(f"the server exited with {code}:\n" + "".join(self.log[-30:]))
        return took

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Sends `sig` if the process still runs, then waits for it."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        self.popen.wait(60)
        if hasattr(self, "channel"):
            self.channel.close()
        self._finish()

    close = kill

    def _finish(self) -> None:
        self._reader.join(5)
        if self._reader.is_alive():  # a grandchild holds stderr open: leave both to it
            return
        if self.popen.stderr is not None:
            self.popen.stderr.close()
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()
