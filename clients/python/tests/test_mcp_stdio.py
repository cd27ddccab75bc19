"""`mnemo mcp` on stdio, driven by the official `mcp` client against a real server:
every tool, bad input, a fixed scope the model cannot leave, and search parity with gRPC."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import KeepOpen, Server, start_server
from mcp_helpers import BOOTSTRAP_KEY, call, fail, stdio

from mnemo import AsyncMnemoClient
from mnemo_server.embed.base import Embedder

TOOLS = {
    "add_memory",
    "search_memories",
    "list_memories",
    "get_memory",
    "update_memory",
    "delete_memory",
    "get_memory_history",
    "forget_memories",
}

FACTS = [
    "Alice prefers green tea in the morning",
    "Alice is allergic to peanuts",
    "Alice's daughter plays the violin",
    "The deploy script lives in tools/deploy.sh",
]


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("auth"),
        KeepOpen(embedder),
        **{"auth.enabled": "on", "auth.bootstrap_key": BOOTSTRAP_KEY},
    )
    yield running
    running.stop()


async def test_every_tool_over_stdio_in_a_fixed_scope(server: Server, user: str) -> None:
    async with stdio(server.address, "--user", user) as c:
        listed = {t.name: t for t in (await c.list_tools()).tools}
        assert set(listed) == TOOLS
        for tool in listed.values():
            assert tool.description and "user_id" not in tool.input_schema["properties"]

        ids = []
        for fact in FACTS:
            added = await call(c, "add_memory", content=fact, tags=["t"], kind="semantic")
            assert added["memory"]["user_id"] == user and added["memory"]["kind"] == "semantic"
            ids.append(added["memory"]["id"])

        hits = (await call(c, "search_memories", query="what does alice drink?", top_k=2))["hits"]
        assert hits[0]["id"] == ids[0] and len(hits) == 2
        assert hits[0]["score"] >= hits[1]["score"]
        assert set(hits[0]) >= {"id", "content", "score", "created", "etag"}

        listed_page = await call(c, "list_memories", order_by="create_time", page_size=3)
        assert [m["id"] for m in listed_page["memories"]] == ids[:3]
        token = listed_page["next_page_token"]
        rest = await call(c, "list_memories", order_by="create_time", page_token=token)
        assert [m["id"] for m in rest["memories"]] == ids[3:]

        got = await call(c, "get_memory", id=ids[1])
        assert got["memory"]["content"] == FACTS[1]

        updated = await call(c, "update_memory", id=ids[1], content="Alice is allergic to tree nuts")
        assert updated["memory"]["version"] == 2 and updated["memory"]["tags"] == ["t"]
        history = await call(c, "get_memory_history", id=ids[1])
        assert [v["change"] for v in history["versions"]] == ["update", "create"]
        assert history["versions"][0]["content_before"] == FACTS[1]

        assert (await call(c, "delete_memory", id=ids[3]))["deleted"] == ids[3]
        assert (await fail(c, "get_memory", id=ids[3]))["reason"] == "MEMORY_NOT_FOUND"

        dry = await call(c, "forget_memories", filter='tags:"t"')
        assert dry["dry_run"] and dry["would_delete"] == 3 and sorted(dry["memory_ids"]) == sorted(ids[:3])
        assert (await call(c, "list_memories"))["memories"], "a dry run deletes nothing"
        bad = await fail(c, "forget_memories", filter='tags:"t"', confirm_token="1.deadbeef")
        assert bad["reason"] == "CONFIRM_TOKEN_INVALID"
        other = await fail(c, "forget_memories", filter="", confirm_token=dry["confirm_token"])
        assert other["reason"] == "CONFIRM_TOKEN_INVALID", "a token confirms only its own arguments"
        done = await call(c, "forget_memories", filter='tags:"t"', confirm_token=dry["confirm_token"])
        assert done["deleted"] == 3
        assert (await call(c, "list_memories"))["memories"] == []


async def test_a_search_through_mcp_equals_the_same_search_through_grpc(
    server: Server, user: str, aclient: AsyncMnemoClient
) -> None:
    for fact in FACTS:
        await aclient.create(fact, user_id=user)
    for i in range(8):
        await aclient.create(f"Alice visited city number {i}", user_id=user, tags=["place"])
    queries: list[tuple[str, str | None, dict[str, Any]]] = [
        ("what does alice drink?", None, {}),
        ("travel", 'tags:"place"', {}),
        ("family", "NOT tags:place", {}),
        ("city number 3", None, {"mode": "keyword"}),
        ("alice city 5", None, {"mode": "hybrid"}),
        ("alice city 5", None, {"mode": "hybrid", "rrf_k": 1}),
    ]
    async with stdio(server.address) as c:
        for query, filter, options in queries:
            args = {"query": query, "user_id": user, "top_k": 6, **({"filter": filter} if filter else {})}
            over_mcp = (await call(c, "search_memories", **args, **options))["hits"]
            over_grpc = (await aclient.search(query, user_id=user, filter=filter, top_k=6, **options)).hits
            assert over_mcp, (query, options)
            assert [h["id"] for h in over_mcp] == [h.memory.id for h in over_grpc]
            assert [h["score"] for h in over_mcp] == [round(h.score, 4) for h in over_grpc]


async def test_bad_input_is_a_tool_error_and_the_process_lives_on(server: Server, user: str) -> None:
    async with stdio(server.address, "--user", user) as c:
        bad_filter = await fail(c, "search_memories", query="tea", filter="tags:(")
        assert bad_filter["reason"] == "INVALID_FILTER"
        assert bad_filter["field_violations"][0]["field"] == "filter"
        missing = await fail(c, "add_memory", tags=["x"])
        assert missing["reason"] == "INVALID_ARGUMENT" and "content" in missing["message"]
        wrong_type = await fail(c, "search_memories", query="tea", top_k="ten")
        assert wrong_type["reason"] == "INVALID_ARGUMENT" and "top_k" in wrong_type["message"]
        bad_enum = await fail(c, "add_memory", content="x", kind="dream")
        assert bad_enum["reason"] == "INVALID_ARGUMENT"
        assert (await fail(c, "remember_everything"))["reason"] == "UNKNOWN_TOOL"
        out_of_range = await fail(c, "search_memories", query="tea", top_k=5000)
        assert out_of_range["reason"] == "INVALID_TOP_K"
        blank = await fail(c, "add_memory", content="   ")
        assert blank["reason"] == "CONTENT_EMPTY"
        assert (await call(c, "list_memories"))["memories"] == [], "no failed call wrote anything"
        await call(c, "add_memory", content="still alive")


async def test_the_model_cannot_leave_a_fixed_scope(
    server: Server, user: str, aclient: AsyncMnemoClient
) -> None:
    other = f"u-{uuid.uuid4().hex[:12]}"
    theirs = (await aclient.create("Bob's bank PIN hint is his cat", user_id=other)).memory.id
    async with stdio(server.address, "--user", user) as c:
        escape = await fail(c, "search_memories", query="PIN", user_id=other)
        assert escape["reason"] == "INVALID_ARGUMENT" and "user_id" in escape["message"]
        assert (await fail(c, "add_memory", content="x", user_id=other))["reason"] == "INVALID_ARGUMENT"
        assert (await fail(c, "get_memory", id=theirs))["reason"] == "MEMORY_NOT_FOUND"
        assert (await fail(c, "get_memory_history", id=theirs))["reason"] == "MEMORY_NOT_FOUND"
        assert (await fail(c, "update_memory", id=theirs, content="mine now"))["reason"] == "MEMORY_NOT_FOUND"
        assert (await fail(c, "delete_memory", id=theirs))["reason"] == "MEMORY_NOT_FOUND"
        hits = (await call(c, "search_memories", query="bank PIN", filter=f'user_id = "{other}"'))["hits"]
        assert hits == [], "a filter narrows the fixed scope, never widens it"
        dry = await call(c, "forget_memories", filter=f'user_id = "{other}"')
        assert dry["would_delete"] == 0
    assert (await aclient.get(theirs)).content == "Bob's bank PIN hint is his cat"


async def test_api_key_restrictions_are_the_servers(auth_server: Server, user: str) -> None:
    async with AsyncMnemoClient(auth_server.address, api_key=BOOTSTRAP_KEY) as admin:
        restricted = (await admin.create_api_key("writer", user_ids=[user])).secret
    async with stdio(auth_server.address, api_key=restricted) as c:
        await call(c, "add_memory", content="Mine", user_id=user)
        forbidden = await fail(c, "search_memories", query="x", user_id="someone-else")
        assert forbidden["code"] == "PERMISSION_DENIED" and forbidden["reason"] == "SCOPE_FORBIDDEN"
    async with stdio(auth_server.address, api_key="mnemo_wrong") as c:
        wrong = await fail(c, "list_memories", user_id=user)
        assert wrong["code"] == "UNAUTHENTICATED" and wrong["reason"] == "API_KEY_INVALID"


async def test_a_server_that_is_down_is_a_tool_error(user: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    async with stdio(address, "--timeout", "2", "--user", user) as c:
        down = await fail(c, "search_memories", query="tea")
        assert down["code"] == "UNAVAILABLE" and "cannot reach the Mnemo server" in down["message"]
        assert len((await c.list_tools()).tools) == len(TOOLS)
