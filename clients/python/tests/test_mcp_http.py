"""`mnemo mcp --http` over streamable HTTP, driven by the official `mcp` client: the
Bearer token is the caller's Mnemo API key, forwarded to gRPC; no token, no service."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import httpx2
import pytest
from conftest import KeepOpen, Server, start_server
from mcp_helpers import BOOTSTRAP_KEY, MNEMO, HttpServer, call, env, fail, http

from mnemo import AsyncMnemoClient
from mnemo_server.embed.base import Embedder


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("auth-http"),
        KeepOpen(embedder),
        **{"auth.enabled": "on", "auth.bootstrap_key": BOOTSTRAP_KEY},
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def endpoint(auth_server: Server) -> Iterator[str]:
    # No key configured for the MCP process: every call uses the caller's Bearer token.
    running = HttpServer(auth_server.address, "--http-auth", "on")
    yield running.url
    running.close()


@pytest.fixture
async def keys(auth_server: Server, user: str) -> dict[str, str]:
    async with AsyncMnemoClient(auth_server.address, api_key=BOOTSTRAP_KEY) as admin:
        mine = (await admin.create_api_key("writer", user_ids=[user])).secret
        reader = (await admin.create_api_key("reader")).secret
    return {"mine": mine, "reader": reader}


async def test_every_tool_over_http_with_the_callers_key(
    endpoint: str, auth_server: Server, user: str, keys: dict[str, str]
) -> None:
    async with http(endpoint, keys["mine"]) as c:
        assert len((await c.list_tools()).tools) == 8
        a = (await call(c, "add_memory", content="Dana runs marathons", user_id=user))["memory"]["id"]
        b = (await call(c, "add_memory", content="Dana lives in Lisbon", user_id=user))["memory"]["id"]
        await call(c, "update_memory", id=b, tags=["home"])
        assert (await call(c, "get_memory", id=b))["memory"]["tags"] == ["home"]
        assert len((await call(c, "get_memory_history", id=b))["versions"]) == 2
        assert len((await call(c, "list_memories", user_id=user))["memories"]) == 2
        over_mcp = (await call(c, "search_memories", query="sport", user_id=user))["hits"]
        async with AsyncMnemoClient(auth_server.address, api_key=keys["mine"]) as direct:
            over_grpc = (await direct.search("sport", user_id=user)).hits
        assert [h["id"] for h in over_mcp] == [h.memory.id for h in over_grpc] == [a, b]
        await call(c, "delete_memory", id=a)
        dry = await call(c, "forget_memories", user_id=user)
        assert dry["would_delete"] == 1
        assert (await call(c, "forget_memories", user_id=user, confirm_token=dry["confirm_token"]))[
            "deleted"
        ] == 1

        forbidden = await fail(c, "search_memories", query="x", user_id="not-" + user)
        assert forbidden["reason"] == "SCOPE_FORBIDDEN"


async def test_the_key_decides_what_a_caller_may_do(endpoint: str, user: str, keys: dict[str, str]) -> None:
    async with http(endpoint, keys["reader"]) as c:
        denied = await fail(c, "add_memory", content="x", user_id=user)
        assert denied["code"] == "PERMISSION_DENIED" and denied["reason"] == "ROLE_FORBIDDEN"
        await call(c, "list_memories", user_id=user)
    async with http(endpoint, "mnemo_not_a_key") as c:
        assert (await fail(c, "list_memories", user_id=user))["reason"] == "API_KEY_INVALID"


async def test_a_confirm_token_works_only_for_the_key_that_asked(
    endpoint: str, user: str, keys: dict[str, str], auth_server: Server
) -> None:
    async with http(endpoint, keys["mine"]) as c:
        await call(c, "add_memory", content="keep me", user_id=user)
        token = (await call(c, "forget_memories", user_id=user))["confirm_token"]
    async with AsyncMnemoClient(auth_server.address, api_key=BOOTSTRAP_KEY) as admin:
        other = (await admin.create_api_key("writer", user_ids=[user])).secret
    async with http(endpoint, other) as c:
        refused = await fail(c, "forget_memories", user_id=user, confirm_token=token)
        assert refused["reason"] == "CONFIRM_TOKEN_INVALID"
        assert len((await call(c, "list_memories", user_id=user))["memories"]) == 1


async def test_no_bearer_token_is_a_401(endpoint: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    async with httpx2.AsyncClient() as web:
        response = await web.post(endpoint, json=body, headers={"Accept": "application/json"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        basic = await web.post(endpoint, json=body, headers={"Authorization": "Basic eDp5"})
        assert basic.status_code == 401


async def test_loopback_without_auth_uses_the_configured_key(auth_server: Server, user: str) -> None:
    async with AsyncMnemoClient(auth_server.address, api_key=BOOTSTRAP_KEY) as admin:
        mine = (await admin.create_api_key("writer", user_ids=[user])).secret
    running = HttpServer(auth_server.address, "--user", user, api_key=mine)
    try:
        async with http(running.url, None) as c:
            await call(c, "add_memory", content="anonymous on loopback")
            hits = (await call(c, "search_memories", query="loopback"))["hits"]
            assert hits and hits[0]["user_id"] == user
            assert (await fail(c, "list_memories", user_id=user))["reason"] == "INVALID_ARGUMENT"
    finally:
        running.close()


@pytest.mark.parametrize("host", ["0.0.0.0:0", "[::]:0"])
def test_no_auth_on_a_public_address_refuses_to_start(host: str) -> None:
    done = subprocess.run(
        [MNEMO, "mcp", "--http", host, "--http-auth", "off"],
        env=env("127.0.0.1:1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "refusing to serve MCP over HTTP" in done.stderr


def test_the_endpoint_accepts_connections_as_soon_as_it_is_announced(auth_server: Server) -> None:
    # A client that reads the "serving" line may connect at once (CI flake: a bound socket
    # that did not listen yet refused it while uvicorn was still starting).
    running = HttpServer(auth_server.address, "--http-auth", "on")
    try:
        port = int(running.url.rsplit(":", 1)[1].split("/", 1)[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        running.close()
