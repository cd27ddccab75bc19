"""`mnemo mcp`: Mnemo's memories as Model Context Protocol tools (docs/mcp.md).

    schema    tool input schemas and descriptions from the mnemo.v1 descriptors
    tools     the tools: RPC, parameters, fixed scope, results
    conversation  add_conversation (ExtractMemories), when the server extracts
    results   the compact JSON the tools return
    server    the official `mcp` SDK's server over stdio and streamable HTTP

Needs the `mcp` extra: pip install 'mnemo-client[mcp]'.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from mnemo.aio import AsyncMnemoClient
from mnemo.mcp.server import ClientPool, build_server, serve_http, serve_http_check, serve_stdio
from mnemo.mcp.tools import Scope, Tools

__all__ = ["Options", "Scope", "run"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """How `mnemo mcp` connects and serves; None means the SDK's default or env."""

    address: str | None = None
    api_key: str | None = None
    tls: bool | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    timeout: float | None = 30.0
    scope: Scope = Scope()
    http: str | None = None
    http_auth: str = "auto"


def run(options: Options) -> None:
    """Serves MCP over stdio, or over streamable HTTP when `options.http` is set."""
    asyncio.run(_serve(options))


async def _serve(o: Options) -> None:
    def connect(key: str | None) -> AsyncMnemoClient:
        return AsyncMnemoClient(
            o.address,
            api_key=o.api_key if key is None else key,
            tls=o.tls,
            ca_file=o.ca_file,
            cert_file=o.cert_file,
            key_file=o.key_file,
            timeout=o.timeout,
        )

    if o.http is not None:
        serve_http_check(o.http, o.http_auth)
    pool = ClientPool(connect)
    address = connect_address(o)
    from mnemo.mcp.conversation import available

    server = build_server(Tools(o.scope, address=address, extraction=await available(connect)), pool)
    if o.http is None:
        await serve_stdio(server, pool)
    else:
        await serve_http(server, pool, address=o.http, auth_mode=o.http_auth)


def connect_address(o: Options) -> str:
    return o.address or os.environ.get("MNEMO_ADDRESS") or "localhost:50051"
