"""Real redis-server processes for the cache tests: free ports, temp dirs,
no persistence unless a test asks for a snapshot, always stopped.

Nothing here skips: without redis-server the tests fail and say why.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def free_port(*, with_bus: bool = False) -> int:
    """A TCP port free on 127.0.0.1 (and port + 10000, the cluster bus, if asked)."""
    for _ in range(200):
        port = random.randint(20000, 50000)
        ports = (port, port + 10000) if with_bus else (port,)
        if all(_bindable(p) for p in ports):
            return port
    raise RuntimeError("found no free port")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class RedisProcess:
    """One redis-server; start() again after stop() reuses port and dir."""

    directory: Path
    port: int = 0
    extra: list[str] = field(default_factory=list)
    unix_socket: Path | None = None
    #: (certificate, key): serve TLS only, on `port`; the certificate is its own CA.
    tls: tuple[Path, Path] | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"rediss://127.0.0.1:{self.port}?ssl_ca_certs={self.tls[0]}"
        return f"redis://127.0.0.1:{self.port}"

    @property
    def unix_url(self) -> str:
        assert self.unix_socket is not None
        return f"unix://{self.unix_socket}"

    def start(self) -> RedisProcess:
        if not Path(REDIS_SERVER).exists():
            raise RuntimeError(f"redis-server not found at {REDIS_SERVER}; the cache tests need it")
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        ports = ["--port", str(self.port)]
        if self.tls is not None:
            cert, key = self.tls
            ports = [
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--tls-cert-file",
                str(cert),
                "--tls-key-file",
                str(key),
                "--tls-ca-cert-file",
                str(cert),
                "--tls-auth-clients",
                "no",
            ]
        args = [
            REDIS_SERVER,
            *ports,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--logfile",
            str(self.directory / f"redis-{self.port}.log"),
        ]
        if self.unix_socket is not None:
            args += ["--unixsocket", str(self.unix_socket), "--unixsocketperm", "700"]
        self.process = subprocess.Popen(
            [*args, *self.extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.wait_ready()
        return self

    def client(self) -> redis.Redis:
        """A plain client for test assertions (not the cache's)."""
        if self.tls is not None:
            return redis.Redis(
                host="127.0.0.1", port=self.port, socket_timeout=5, ssl=True, ssl_ca_certs=str(self.tls[0])
            )
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start: {self._log_tail()}")
            try:
                with self.client() as c:
                    if c.ping():
                        return
            except redis.RedisError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not answer: {self._log_tail()}")

    def stop(self, *, kill: bool = False) -> None:
        """Stops the server (SIGKILL with kill: a crash)."""
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def _log_tail(self) -> str:
        logs = sorted(self.directory.glob("redis-*.log"))
        return logs[-1].read_text()[-2000:] if logs else "(no log)"


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the TLS test needs the openssl command to make a certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@dataclass
class RedisClusterProcs:
    """Three masters, no replicas, created with redis-cli --cluster create."""

    directory: Path
    nodes: list[RedisProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> RedisClusterProcs:
        for i in range(3):
            port = free_port(with_bus=True)
            node = RedisProcess(
                self.directory / f"node{i}",
                port=port,
                extra=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    f"nodes-{port}.conf",
                    "--cluster-node-timeout",
                    "5000",
                ],
            )
            self.nodes.append(node.start())
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        created = subprocess.run(
            [REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if created.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed: {created.stdout[-1500:]} {created.stderr[-500:]}"
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all(self._cluster_ok(n) for n in self.nodes):
                return self
            time.sleep(0.1)
        raise RuntimeError("the cluster did not reach cluster_state:ok")

    @staticmethod
    def _cluster_ok(node: RedisProcess) -> bool:
        with node.client() as c:
            info = c.execute_command("CLUSTER", "INFO")
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
