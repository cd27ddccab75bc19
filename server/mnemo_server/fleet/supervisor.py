"""The supervisor of `mnemo-server --workers N`: N server processes, one address.

It starts N children (`python -m mnemo_server` with the same flags, plus
`--workers 1`, the resolved address and `MNEMO_FLEET_WORKER=i`). They all
bind the gRPC (and HTTP) address with SO_REUSEPORT, so the kernel spreads the
connections over them, and share the data directory (fleet/counters.py,
fleet/leader.py). The supervisor:

- restarts a child that exits without being asked to, after a backoff that
  doubles with each quick failure (0.5 s up to 30 s) and resets once a child
  has run for a minute; a child failing again and again is logged at ERROR
  as a crash loop, and when every child is in one the supervisor gives up and
  exits 1 (a start-up that cannot work is not retried for ever);
- forwards SIGTERM and SIGINT to every child, so each drains and stops
  (a second signal cuts the drains short), and exits 0 when they all
  stopped cleanly, else 1;
- serves `metrics.address` itself when set (fleet/metrics.py): every child's
  metrics labelled `worker`, and /healthz for the whole.

A child dies with the supervisor (PR_SET_PDEATHSIG on Linux), so a kill -9
of the supervisor leaves no server behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

from mnemo_server.config import Settings
from mnemo_server.fleet import STATE_FD_ENV, WORKER_ENV

log = logging.getLogger("mnemo.fleet")

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
#: A child that ran this long before exiting was not crash-looping.
STABLE_AFTER_S = 60.0
#: Quick failures in a row that make a crash loop.
CRASH_LOOP = 5


@dataclass
class Worker:
    index: int
    metrics_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    quick_failures: int = 0
    restart_at: float | None = None
    exit_codes: list[int] = field(default_factory=list)
    #: What the child last reported: "starting", "serving", "draining".
    state: str = "starting"
    pipe: int | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def crash_looping(self) -> bool:
        return self.quick_failures >= CRASH_LOOP


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host.strip("[]"), 0))
        return int(sock.getsockname()[1])


def resolve(address: str) -> str:
    """`address` with port 0 replaced by a free port: every child must bind the same one."""
    host, _, port = address.rpartition(":")
    if port != "0":
        return address
    return f"{host}:{free_port(host if host not in ('', '0.0.0.0', '[::]') else '127.0.0.1')}"


#: Loaded here, not in the child between fork and exec (no dlopen there).
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    def __init__(self, settings: Settings, argv: list[str]) -> None:
        self.settings = settings
        self.count = settings.server.workers
        self.address = resolve(settings.server.address)
        self.http_address = resolve(settings.http.address) if settings.http.address else ""
        self.argv = list(argv)
        self.workers = [Worker(i) for i in range(self.count)]
        self.stopping: signal.Signals | None = None
        self.signals = 0
        self.gave_up = False

    def command(self, worker: Worker) -> list[str]:
        extra = ["--workers", "1", "--address", self.address]
        if self.http_address:
            extra += ["--http-address", self.http_address]
        if self.settings.metrics.address:
            worker.metrics_port = worker.metrics_port or free_port("127.0.0.1")
            extra += ["--metrics-address", f"127.0.0.1:{worker.metrics_port}"]
        return [sys.executable, "-m", "mnemo_server", *self.argv, *extra]

    def spawn(self, worker: Worker) -> None:
        read, write = os.pipe()
        os.set_blocking(read, False)
        env = {**os.environ, WORKER_ENV: str(worker.index), STATE_FD_ENV: str(write)}
        try:
            worker.process = subprocess.Popen(
                self.command(worker), env=env, pass_fds=(write,), preexec_fn=_die_with_parent
            )
        finally:
            os.close(write)
        worker.pipe, worker.state = read, "starting"
        worker.started = time.monotonic()
        worker.restart_at = None
        log.info("worker %d started (pid %d)", worker.index, worker.process.pid)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        sig = signal.Signals(signum)
        self.stopping = self.stopping or sig
        self.signals += 1
        for worker in self.workers:
            if worker.running:
                assert worker.process is not None
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(sig)

    def _read_state(self, worker: Worker) -> None:
        if worker.pipe is None:
            return
        try:
            data = os.read(worker.pipe, 4096)
        except BlockingIOError:
            return
        if data:
            worker.state = data.decode().split()[-1]
            if worker.state == "serving" and all(w.state == "serving" for w in self.workers):
                log.info("all %d workers serving", self.count)

    def _reap(self, worker: Worker, now: float) -> None:
        """A child that exited: noted, and restarted later unless stopping."""
        assert worker.process is not None
        self._read_state(worker)
        code = worker.process.returncode
        worker.exit_codes.append(code)
        worker.process, worker.state = None, "stopped"
        if worker.pipe is not None:
            os.close(worker.pipe)
            worker.pipe = None
        if self.stopping is not None:
            log.info("worker %d stopped (exit %d)", worker.index, code)
            return
        ran = now - worker.started
        worker.quick_failures = 0 if ran >= STABLE_AFTER_S else worker.quick_failures + 1
        backoff = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** max(worker.quick_failures - 1, 0))
        worker.restarts += 1
        worker.restart_at = now + backoff
        level = logging.ERROR if worker.crash_looping else logging.WARNING
        log.log(
            level,
            "worker %d exited (code %d) after %.1f s; restarting in %.1f s%s",
            worker.index,
            code,
            ran,
            backoff,
            f" (crash loop: {worker.quick_failures} quick failures in a row)" if worker.crash_looping else "",
        )

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        log.info("starting %d workers on %s", self.count, self.address)
        for worker in self.workers:
            self.spawn(worker)
        while True:
            now = time.monotonic()
            for worker in self.workers:
                self._read_state(worker)
                if worker.process is not None and worker.process.poll() is not None:
                    self._reap(worker, now)
                if (
                    self.stopping is None
                    and worker.process is None
                    and worker.restart_at is not None
                    and now >= worker.restart_at
                ):
                    self.spawn(worker)
            if self.stopping is None and all(w.crash_looping and not w.running for w in self.workers):
                log.error("every worker is in a crash loop; giving up")
                self.gave_up = True
                self._on_signal(signal.SIGTERM, None)
            if self.stopping is not None and not any(w.running for w in self.workers):
                break
            time.sleep(0.05)
        failed = [w.index for w in self.workers if w.exit_codes and w.exit_codes[-1] != 0]
        if failed:
            log.error("workers %s did not stop cleanly", failed)
        return 1 if self.gave_up or failed else 0


def supervise(settings: Settings, argv: list[str]) -> int:
    """Runs the fleet until it is stopped; the exit code."""
    supervisor = Supervisor(settings, argv)
    endpoint = None
    if settings.metrics.address:
        from mnemo_server.fleet.metrics import FleetEndpoint

        endpoint = FleetEndpoint(supervisor, settings.metrics.address)
        endpoint.start()
    try:
        return supervisor.run()
    finally:
        if endpoint is not None:
            endpoint.close()
