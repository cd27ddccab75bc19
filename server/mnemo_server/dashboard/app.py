"""The dashboard's ASGI app, mounted on the HTTP side at /dashboard:

    GET  /dashboard/                 the page (static/index.html)
    GET  /dashboard/static/NAME      its scripts and styles, shipped in this package
    GET  /dashboard/api/session      who is signed in, and the session's CSRF token
    POST /dashboard/api/session      sign in: {"key": "mnemo_..."}; sets the session cookie
    POST /dashboard/api/signout      ends the session
    GET  /dashboard/api/overview     version, health; settings and request metrics for admins
    POST /dashboard/api/rpc/SERVICE/RPC   any mnemo.v1 RPC, as the session's key (rpc.py)

The session cookie is HttpOnly and SameSite=Strict and holds only an opaque
id (sessions.py). Every request but reading and opening a session needs the
session's CSRF token in `x-csrf-token`; every POST needs an Origin header
naming this server. Every answer carries a strict Content-Security-Policy.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any, Final

from mnemo_server.config import Settings
from mnemo_server.dashboard.overview import redacted_settings, request_metrics
from mnemo_server.dashboard.rpc import ASGIApp, Message, Receive, Rpc, Scope, Send
from mnemo_server.dashboard.sessions import Session, Sessions, csrf_ok

log = logging.getLogger("mnemo.dashboard")

COOKIE: Final = "mnemo_dashboard"
CSRF_HEADER: Final = "x-csrf-token"
MAX_SIGN_IN_BYTES: Final = 16 * 1024
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)
SECURITY_HEADERS: Final = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
STATIC_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]*\.(html|js|css|png|svg)")


def load_static() -> dict[str, tuple[bytes, str]]:
    """The page's files, from this package (so an installed wheel has them)."""
    out = {}
    for item in resources.files("mnemo_server.dashboard").joinpath("static").iterdir():
        if item.is_file() and STATIC_NAME.fullmatch(item.name):
            suffix = item.name[item.name.rindex(".") :]
            out[item.name] = (item.read_bytes(), CONTENT_TYPES[suffix])
    return out


class DashboardApp:
    """The dashboard of one server."""

    def __init__(
        self,
        services: Mapping[str, ASGIApp],
        *,
        settings: Settings,
        version: str,
        healthy: Callable[[], bool],
        metrics_registry: Any = None,
        sessions: Sessions | None = None,
    ) -> None:
        self.rpc = Rpc(services)
        self.settings = settings
        self.version = version
        self.healthy = healthy
        self.metrics_registry = metrics_registry
        self.sessions = sessions or Sessions()
        self.static = load_static()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        root = scope.get("root_path", "")
        path: str = scope["path"][len(root) :] if scope["path"].startswith(root) else scope["path"]
        method: str = scope["method"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        if path == "":
            await _respond(send, 308, b"", "text/plain", [(b"location", f"{root}/".encode())])
            return
        if method in ("GET", "HEAD") and (path == "/" or path.startswith("/static/")):
            name = "index.html" if path == "/" else path[len("/static/") :]
            found = self.static.get(name)
            if found is None:
                await _error(send, 404, "not_found", f"no such file: {name}")
                return
            await _respond(send, 200, found[0], found[1])
            return
        if not path.startswith("/api/"):
            await _error(send, 404, "not_found", f"no such page: {path}")
            return
        if method != "GET" and not _same_origin(scope, headers):
            await _error(
                send, 403, "permission_denied", "cross-origin request refused (Origin must be this server)"
            )
            return
        session = self.sessions.get(_cookie(headers.get("cookie", ""), COOKIE))
        if path == "/api/session":
            if method == "POST":
                await self._sign_in(scope, receive, send)
                return
            if session is None:
                await _error(send, 401, "unauthenticated", "not signed in")
                return
            await _json(send, 200, _who(session))
            return
        if session is None:
            await _error(send, 401, "unauthenticated", "not signed in, or the session ended: sign in again")
            return
        if not csrf_ok(session, headers.get(CSRF_HEADER, "")):
            await _error(send, 403, "permission_denied", "missing or wrong CSRF token")
            return
        if path == "/api/signout" and method == "POST":
            self.sessions.close(session.id)
            await _json(send, 200, {}, [(b"set-cookie", _cookie_header(scope, "", max_age=0))])
            return
        if path == "/api/overview" and method == "GET":
            await _json(send, 200, self._overview(session))
            return
        if path.startswith("/api/rpc/") and method == "POST":
            rpc_path = path[len("/api/rpc") :]
            if await self.rpc.forward(scope, receive, _secured(send), path=rpc_path, key=session.key):
                return
        await _error(send, 404, "not_found", f"no such call: {method} {path}")

    async def _sign_in(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive, MAX_SIGN_IN_BYTES)
        try:
            key = json.loads(body or b"{}").get("key", "")
        except (ValueError, AttributeError):
            key = None
        if not isinstance(key, str):
            await _error(send, 400, "invalid_argument", 'expected {"key": "<API key>"}')
            return
        key = key.strip()
        status, answer = await self.rpc.call(
            scope, "/mnemo.v1.MemoryService/ListMemories", {"pageSize": 1}, key=key
        )
        # A restricted key may be refused a list of everything (403): it is still a key.
        if status not in (200, 403):
            message = answer.get("message", "") if isinstance(answer, dict) else ""
            code = answer.get("code", "unknown") if isinstance(answer, dict) else "unknown"
            await _error(send, status or 500, code, f"sign-in refused: {message}")
            return
        stats_status, _ = await self.rpc.call(
            scope, "/mnemo.v1.AdminService/GetStats", {"scopeLimit": 1}, key=key
        )
        key_id = key.split("_")[1] if key.startswith("mnemo_") and key.count("_") >= 2 else ""
        if key and not key_id:
            key_id = "bootstrap"
        session = self.sessions.open(key, admin=stats_status == 200, key_id=key_id)
        log.info("dashboard: key %s signed in", key_id or "(none: auth off)")
        await _json(send, 200, _who(session), [(b"set-cookie", _cookie_header(scope, session.id))])

    def _overview(self, session: Session) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version,
            "healthy": self.healthy(),
            "admin": session.admin,
        }
        if session.admin:
            out["settings"] = redacted_settings(self.settings)
            out["metrics"] = (
                request_metrics(self.metrics_registry) if self.metrics_registry is not None else None
            )
        return out


def _who(session: Session) -> dict[str, Any]:
    return {"keyId": session.key_id, "admin": session.admin, "csrfToken": session.csrf}


def _same_origin(scope: Scope, headers: Mapping[str, str]) -> bool:
    """Whether a request comes from a page of this server: its Origin names
    this scheme, host and port, and the browser does not call it cross-site."""
    origin = headers.get("origin", "")
    host = headers.get("host", "")
    if not origin or not host or origin != f"{scope.get('scheme', 'http')}://{host}":
        return False
    return headers.get("sec-fetch-site", "same-origin") == "same-origin"


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return ""


def _cookie_header(scope: Scope, value: str, *, max_age: int | None = None) -> bytes:
    path = scope.get("root_path", "") or "/"
    parts = [f"{COOKIE}={value}", f"Path={path}", "HttpOnly", "SameSite=Strict"]
    if scope.get("scheme") == "https":
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts).encode()


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = bytes(message.get("body", b""))
        size += len(chunk)
        if size > limit:
            return b""
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _secured(send: Send) -> Send:
    """`send` with the security headers added to the response's start."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *SECURITY_HEADERS]}
        await send(message)

    return wrapped


async def _respond(
    send: Send, status: int, body: bytes, content_type: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *SECURITY_HEADERS,
        *(extra or ()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, body: Any, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await _respond(send, status, json.dumps(body).encode(), "application/json", extra)


async def _error(send: Send, status: int, code: str, message: str) -> None:
    await _json(send, status, {"code": code, "message": message})
