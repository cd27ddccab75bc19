"""The MCP server: the tools on the official `mcp` SDK's low-level server, over stdio
or streamable HTTP, each call made with the SDK's gRPC client.

Over stdio the API key is the one configured (--api-key or MNEMO_API_KEY). Over
HTTP it is the `Authorization: Bearer` token of each MCP request, forwarded to
the Mnemo server as the gRPC API key, so the key's role and scope restrictions
apply exactly as over gRPC. Auth on the HTTP endpoint is on unless it binds a
loopback address; it refuses to start with auth off on any other address.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import socket
import sys
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import mcp.types as mt
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mnemo.aio import AsyncMnemoClient
from mnemo.mcp.schema import SERVICE, comment
from mnemo.mcp.tools import ToolError, Tools

log = logging.getLogger("mnemo.mcp")

DESTRUCTIVE = {"update_memory", "delete_memory", "forget_memories"}
PATH = "/mcp"


class ClientPool:
    """One gRPC client per API key, the least recently used closed beyond `size`.

    Args:
        connect: Makes a client for a key (None: the configured key).
        size: How many clients to keep open.
    """

    def __init__(self, connect: Callable[[str | None], AsyncMnemoClient], *, size: int = 32) -> None:
        self._connect = connect
        self._size = size
        self._clients: OrderedDict[str | None, AsyncMnemoClient] = OrderedDict()

    async def get(self, key: str | None) -> AsyncMnemoClient:
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self._connect(key)
            while len(self._clients) > self._size:
                _, old = self._clients.popitem(last=False)
                await old.close()
        self._clients.move_to_end(key)
        return client

    async def close(self) -> None:
        while self._clients:
            _, client = self._clients.popitem()
            await client.close()


def bearer(headers: Any) -> str | None:
    """The token of an `Authorization: Bearer` header, or None."""
    value = headers.get("authorization") if headers is not None else None
    if not value:
        return None
    scheme, _, token = str(value).partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def key_id(key: str | None) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16] if key else ""


def build_server(tools: Tools, pool: ClientPool) -> Server[Any]:
    """The MCP server of the tools; each call goes out with the caller's key."""

    async def list_tools(
        ctx: ServerRequestContext[Any], params: mt.PaginatedRequestParams | None
    ) -> mt.ListToolsResult:
        return mt.ListToolsResult(
            tools=[
                mt.Tool(
                    name=spec.name,
                    description=spec.description(tools.scope),
                    input_schema=spec.schema(tools.scope),
                    annotations=mt.ToolAnnotations(
                        read_only_hint=spec.read_only,
                        destructive_hint=spec.name in DESTRUCTIVE,
                        open_world_hint=False,
                    ),
                )
                for spec in tools.specs()
            ]
        )

    async def call_tool(
        ctx: ServerRequestContext[Any], params: mt.CallToolRequestParams
    ) -> mt.CallToolResult:
        request = ctx.request
        key = bearer(request.headers) if request is not None else None
        try:
            payload = await tools.call(
                params.name, params.arguments, lambda: pool.get(key), key_id=key_id(key)
            )
        except ToolError as exc:
            return _result(exc.payload, error=True)
        except Exception:  # never crash the MCP process; the traceback stays in the log
            log.exception("tool %s failed", params.name)
            internal = {"code": "INTERNAL", "reason": "INTERNAL", "message": "internal error"}
            return _result({"error": internal}, error=True)
        return _result(payload)

    return Server(
        "mnemo",
        version=_version(),
        instructions=(
            f"{comment(SERVICE.full_name).split('. ')[0]}. Long-term memory across conversations: search "
            "it before answering questions about the user or earlier work, and add what is worth "
            "remembering as short self-contained memories."
        ),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def _result(payload: dict[str, Any], *, error: bool = False) -> mt.CallToolResult:
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return mt.CallToolResult(
        content=[mt.TextContent(text=text)], structured_content=payload, is_error=error
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mnemo-client")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "0"


async def serve_stdio(server: Server[Any], pool: ClientPool) -> None:
    """Serves MCP on stdin/stdout until stdin closes."""
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        await pool.close()


# -- streamable HTTP -------------------------------------------------------------------


def split_address(address: str) -> tuple[str, int]:
    """host:port (or [v6]:port) as (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--http takes HOST:PORT, not {address!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def http_auth_on(mode: str, host: str) -> bool:
    """Whether the HTTP endpoint requires a Bearer token; refuses auth off off loopback."""
    on = {"on": True, "off": False}.get(mode, not is_loopback(host))
    if not on and not is_loopback(host):
        raise ValueError(
            f"refusing to serve MCP over HTTP on the non-loopback address {host!r} without auth: "
            "every caller would act with the configured API key; use --http-auth on (the default)"
        )
    return on


def serve_http_check(address: str, auth_mode: str) -> None:
    """Raises ValueError for an address or auth mode the HTTP endpoint will not serve."""
    host, _ = split_address(address)
    if auth_mode not in ("auto", "on", "off"):
        raise ValueError(f"--http-auth: expected auto, on or off, got {auth_mode!r}")
    http_auth_on(auth_mode, host)


class RequireBearer:
    """Answers 401 to any HTTP request without an `Authorization: Bearer` token."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            if bearer(headers) is None:
                response = JSONResponse(
                    {"error": "an Authorization: Bearer <Mnemo API key> header is required"},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="mnemo"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def http_app(server: Server[Any], *, host: str, auth: bool) -> Starlette:
    """The streamable HTTP app at /mcp: stateless, JSON responses (no SSE stream to race)."""
    app = server.streamable_http_app(
        streamable_http_path=PATH, stateless_http=True, json_response=True, host=host
    )
    if auth:
        app.add_middleware(RequireBearer)
    return app


#: Connections the HTTP listener queues before it accepts them (uvicorn's default).
_BACKLOG = 2048


async def serve_http(server: Server[Any], pool: ClientPool, *, address: str, auth_mode: str) -> None:
    """Serves MCP over streamable HTTP on address until interrupted."""
    import uvicorn

    host, port = split_address(address)
    auth = http_auth_on(auth_mode, host)
    app = http_app(server, host=host, auth=auth)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit it. uvicorn sets no TCP_NODELAY on sockets it is handed, and
    # Nagle with delayed ACKs then adds ~40 ms to every response (measured: 44 ms -> 0.4 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    # Listening before the line below is printed: a client that reads it may connect at
    # once, and a bound socket that does not listen yet refuses it (uvicorn listens later).
    sock.listen(_BACKLOG)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(app, log_level="warning", lifespan="on", backlog=_BACKLOG)
    web = uvicorn.Server(config)
    sys.stderr.write(
        f"mnemo mcp: serving streamable HTTP on http://{shown}:{bound}{PATH} (port {bound}), "
        f"auth {'on' if auth else 'off'}\n"
    )
    sys.stderr.flush()
    try:
        await web.serve(sockets=[sock])
    finally:
        await pool.close()
