"""The dashboard's way to the server's RPCs: the very Connect endpoints of
api/connect.py, called in-process as an ASGI sub-request that carries the
session's API key as `authorization: Bearer KEY`. So every call passes the
gRPC interceptors and servicers (keys, roles, tenant isolation, limits,
audit) exactly as a call from `curl` with that key would: the dashboard has
no privileged path to the data.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Final

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Headers of a browser's request passed on to the RPC; the cookie, the CSRF
#: token and any authorization header the page might send stay behind.
PASSED_HEADERS: Final = frozenset(
    {"content-type", "connect-protocol-version", "connect-timeout-ms", "x-request-id", "content-length"}
)
#: The services a dashboard page may call (each one's RPCs are checked by the server).
SERVICES: Final = ("mnemo.v1.MemoryService", "mnemo.v1.AdminService")


def _headers(headers: Any, key: str, extra: Mapping[str, str] | None = None) -> list[tuple[bytes, bytes]]:
    out = [(k, v) for k, v in headers if k.decode("latin-1").lower() in PASSED_HEADERS]
    if key:
        out.append((b"authorization", f"Bearer {key}".encode("latin-1")))
    for name, value in (extra or {}).items():
        out.append((name.encode("latin-1"), value.encode("latin-1")))
    return out


class Rpc:
    """Calls the Connect services (URL prefix -> ASGI app) as a session's key."""

    def __init__(self, services: Mapping[str, ASGIApp]) -> None:
        self.services = dict(services)

    def app_of(self, path: str) -> ASGIApp | None:
        """The service app of an RPC path ("/mnemo.v1.MemoryService/GetMemory")."""
        parts = path.split("/")
        if len(parts) != 3 or parts[1] not in SERVICES or not parts[2].isidentifier():
            return None
        return self.services.get("/" + parts[1])

    async def forward(self, scope: Scope, receive: Receive, send: Send, *, path: str, key: str) -> bool:
        """Relays a browser's request to the RPC at `path` as `key`; the answer
        (unary JSON or a stream of envelopes) goes back as the server gives it.
        False when `path` names no RPC the dashboard serves."""
        app = self.app_of(path)
        if app is None:
            return False
        sub = {
            **scope,
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": _headers(scope.get("headers", ()), key),
        }
        await app(sub, receive, send)
        return True

    async def call(self, scope: Scope, path: str, body: Mapping[str, Any], *, key: str) -> tuple[int, Any]:
        """A unary call with a JSON body, from the server side: (HTTP status,
        JSON answer). Used at sign-in, before the browser has a session."""
        app = self.app_of(path)
        if app is None:
            raise ValueError(f"not an RPC: {path}")
        data = json.dumps(body).encode()
        sub = {
            **scope,
            "method": "POST",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": _headers(
                (), key, {"content-type": "application/json", "content-length": str(len(data))}
            ),
        }
        sent = False
        answered = asyncio.Event()

        async def receive() -> Message:
            nonlocal sent
            if sent:
                # As an HTTP client that waits for its answer: no disconnect before it.
                await answered.wait()
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}

        status = 0
        chunks: list[bytes] = []

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))
                if not message.get("more_body"):
                    answered.set()

        try:
            await app(sub, receive, send)
        finally:
            answered.set()
        raw = b"".join(chunks)
        try:
            return status, json.loads(raw) if raw else {}
        except ValueError:
            return status, {"code": "unknown", "message": raw.decode("utf-8", "replace")[:200]}
