"""The HTTP server (off unless `http.address` is set): every mnemo.v1 RPC over
the Connect protocol (JSON or binary; gRPC-Web too), `/healthz`, CORS.

    /mnemo.v1.MemoryService/<Rpc>   api/connect.py, forwarded to the gRPC server
    /mnemo.v1.AdminService/<Rpc>
    /healthz                        200 once serving, 503 while loading or draining
    /dashboard/                     the web dashboard (mnemo_server/dashboard; http.dashboard)
    (mounted apps)                  `WebApp.mount(prefix, asgi_app)`

The gRPC server listens on a private Unix socket (in a directory only this
user can open) for the forwarded calls; uvicorn serves HTTP/1.1 on the
configured address, with the gRPC side's certificate when TLS is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import socket
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Any, Final

import grpc
import uvicorn

from mnemo_server.api.connect import Forwarder, service_apps
from mnemo_server.config import Settings, is_loopback

log = logging.getLogger("mnemo.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Request headers a browser may send cross-origin (Connect's, gRPC-Web's and ours).
CORS_ALLOWED_HEADERS: Final = (
    "authorization, content-type, connect-protocol-version, connect-timeout-ms, "
    "grpc-timeout, x-grpc-web, x-user-agent, x-request-id, traceparent, tracestate"
)
CORS_EXPOSED_HEADERS: Final = "grpc-status, grpc-message, grpc-status-details-bin"
LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})


class WebApp:
    """Routes HTTP requests: Connect services by their URL prefix, /healthz,
    and apps mounted later; adds CORS headers for allowed origins."""

    def __init__(
        self,
        services: Mapping[str, ASGIApp],
        *,
        healthy: Callable[[], bool],
        allowed_origins: Iterable[str] = (),
        loopback_only: bool = False,
    ) -> None:
        self.services = dict(services)
        self.mounts: dict[str, ASGIApp] = {}
        self.healthy = healthy
        self.allowed_origins = frozenset(allowed_origins)
        #: Without API keys, only requests naming this machine are served:
        #: a web page whose name resolves to 127.0.0.1 (DNS rebinding) is not.
        self.loopback_only = loopback_only

    def mount(self, prefix: str, app: ASGIApp) -> None:
        """Serves `app` under `prefix` ("/dashboard"), with root_path set."""
        self.mounts[prefix.rstrip("/")] = app

    def origin_allowed(self, origin: str) -> bool:
        return "*" in self.allowed_origins or origin in self.allowed_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        if self.loopback_only and _host_name(headers.get("host", "")) not in LOOPBACK_HOSTS:
            refusal = _error("permission_denied", "without API keys this server only answers localhost")
            await _json(send, 403, refusal)
            return
        origin = headers.get("origin", "")
        allowed = bool(origin) and self.origin_allowed(origin)
        if scope["method"] == "OPTIONS" and origin and "access-control-request-method" in headers:
            await self._preflight(send, allowed)
            return
        if allowed:
            send = _with_cors(send, origin)
        path: str = scope["path"]
        if path == "/healthz":
            ok = self.healthy()
            await _json(send, 200 if ok else 503, {"status": "SERVING" if ok else "NOT_SERVING"})
            return
        head = "/" + path.split("/", 2)[1]
        app = self.services.get(head)
        if app is not None:
            await app(scope, receive, send)
            return
        for prefix, mounted in self.mounts.items():
            if path == prefix or path.startswith(prefix + "/"):
                await mounted({**scope, "root_path": scope.get("root_path", "") + prefix}, receive, send)
                return
        await _json(send, 404, _error("not_found", f"no such path: {path}"))

    async def _preflight(self, send: Send, allowed: bool) -> None:
        if not allowed:
            await _json(send, 403, _error("permission_denied", "this origin may not call this server"))
            return
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [
                    (b"access-control-allow-methods", b"GET, POST"),
                    (b"access-control-allow-headers", CORS_ALLOWED_HEADERS.encode()),
                    (b"access-control-max-age", b"7200"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def _with_cors(send: Send, origin: str) -> Send:
    """Credentials (cookies) are never allowed: API keys travel in the
    Authorization header, which a page can only send if it holds the key."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {
                **message,
                "headers": [
                    *message.get("headers", ()),
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"access-control-expose-headers", CORS_EXPOSED_HEADERS.encode()),
                    (b"vary", b"Origin"),
                ],
            }
        await send(message)

    return wrapped


def _host_name(host: str) -> str:
    """The name in a Host header: localhost:8080 -> localhost, [::1]:8080 -> [::1]."""
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if ":" in host else host


def _error(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


async def _json(send: Send, status: int, body: Mapping[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


class _Uvicorn(uvicorn.Server):
    """uvicorn without its signal handlers: the App decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class WebServer:
    """The HTTP side of an App: a private gRPC socket, the forwarding channel
    and the uvicorn server."""

    def __init__(
        self,
        settings: Settings,
        *,
        secret: str,
        healthy: Callable[[], bool],
        version: str = "",
        metrics_registry: Any = None,
        reuse_port: bool = False,
    ) -> None:
        self.settings = settings
        #: The workers of a fleet share the HTTP address too (SO_REUSEPORT).
        self.reuse_port = reuse_port
        self.version = version
        self.metrics_registry = metrics_registry
        self.secret = secret
        self.healthy = healthy
        self.port = 0
        self.app: WebApp | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="mnemo-"))  # mode 0700
        self.grpc_target = f"unix:{self._dir / 'grpc.sock'}"
        self._channel: grpc.aio.Channel | None = None
        self._server: _Uvicorn | None = None
        self._task: asyncio.Task[None] | None = None

    def attach(self, server: grpc.aio.Server) -> None:
        """Adds the private socket to the gRPC server (before it starts)."""
        if server.add_insecure_port(self.grpc_target) == 0:
            raise RuntimeError(f"cannot listen on {self.grpc_target}")

    async def start(self, *, services: Iterable[Any], max_send_bytes: int) -> int:
        """Opens the HTTP port; returns it."""
        cfg = self.settings
        max_request = cfg.server.max_message_bytes
        self._channel = grpc.aio.insecure_channel(
            self.grpc_target,
            options=[
                ("grpc.max_receive_message_length", max_send_bytes),
                ("grpc.max_send_message_length", -1),
                ("grpc.enable_retries", 0),
            ],
        )
        forward = Forwarder(self._channel, secret=self.secret)
        # JSON is larger than the binary message the gRPC server then
        # limits to max_message_bytes; the body may be twice that.
        self.app = WebApp(
            service_apps(services, forward, read_max_bytes=2 * max_request),
            healthy=self.healthy,
            allowed_origins=cfg.http.origins,
            loopback_only=not cfg.keys_required() and is_loopback(cfg.http.address),
        )
        if cfg.http.dashboard:
            from mnemo_server.dashboard.app import DashboardApp

            dashboard = DashboardApp(
                self.app.services,
                settings=cfg,
                version=self.version,
                healthy=self.healthy,
                metrics_registry=self.metrics_registry,
            )
            self.app.mount("/dashboard", dashboard)
        sock = _listen(cfg.http.address, reuse_port=self.reuse_port)
        self.port = int(sock.getsockname()[1])
        tls = cfg.tls
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=int(max(cfg.server.shutdown_grace_s, 1)),
            ssl_certfile=tls.cert_file or None,
            ssl_keyfile=tls.key_file or None,
            ssl_ca_certs=tls.client_ca_file or None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if tls.client_ca_file else ssl.CERT_NONE,
        )
        # uvicorn's own start and stop lines repeat ours.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        self._server = _Uvicorn(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the HTTP server stopped at start")
            await asyncio.sleep(0.01)
        scheme = "https" if tls.enabled else "http"
        log.info("HTTP (Connect, JSON) on %s://%s (port %d)", scheme, cfg.http.address, self.port)
        return self.port

    async def stop(self) -> None:
        """Stops accepting requests, lets open ones finish (up to the grace
        period), then closes the channel and the private socket."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await self._task
        if self._channel is not None:
            await self._channel.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def _listen(address: str, *, reuse_port: bool = False) -> socket.socket:
    """A bound TCP socket. Made with IPPROTO_TCP so that asyncio turns Nagle
    off on each connection (socket.create_server's proto 0 does not): with
    Nagle on, a response's body waits for the ACK of its headers, ~40 ms."""
    host, _, port = address.rpartition(":")
    family, kind, proto, _, where = socket.getaddrinfo(
        host.strip("[]"), int(port), type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(where)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
