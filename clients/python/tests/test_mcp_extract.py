"""add_conversation: offered by `mnemo mcp` only when the server extracts, and
running the real extraction (mem0ai's client, a fake OpenAI-compatible LLM)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import KeepOpen, Server, start_server
from llm_fake import KEY, FakeLlm, Reply, memories
from mcp_helpers import call, fail, stdio

from mnemo_server.embed.base import Embedder

KEY_ENV = "MNEMO_MCP_TEST_LLM_KEY"


@pytest.fixture(scope="module")
def xserver(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Server]:
    fake = FakeLlm(lambda call: Reply(memories("Prefers window seats", "Flies to Oslo in May")))
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, KEY)
    running = start_server(
        tmp_path_factory.mktemp("mcp-extract"),
        KeepOpen(embedder),
        **{
            "extraction.provider": "openai",
            "extraction.base_url": fake.base_url,
            "extraction.api_key_env": KEY_ENV,
            "extraction.retries": 0,
        },
    )
    yield running
    running.stop()
    mp.undo()
    fake.close()


async def test_add_conversation_extracts_in_the_fixed_scope(xserver: Server, user: str) -> None:
    async with stdio(xserver.address, "--user", user) as c:
        listed = {t.name: t for t in (await c.list_tools()).tools}
        tool = listed["add_conversation"]
        assert "user_id" not in tool.input_schema["properties"] and "Confined to" in (tool.description or "")
        assert tool.input_schema["properties"]["mode"]["enum"] == ["additive", "reconcile"]
        done = await call(
            c,
            "add_conversation",
            messages=[{"role": "user", "content": "Window seat please, I fly to Oslo in May"}],
        )
        assert done["state"] == "succeeded"
        assert [(f["event"], f["text"]) for f in done["facts"]] == [
            ("added", "Prefers window seats"),
            ("added", "Flies to Oslo in May"),
        ]
        assert all(f["memory"]["user_id"] == user for f in done["facts"])
        found = await call(c, "search_memories", query="where does the user fly?")
        assert {h["content"] for h in found["hits"]} == {"Prefers window seats", "Flies to Oslo in May"}
        bad = await fail(c, "add_conversation", messages=[{"role": "robot", "content": "beep"}])
        assert bad["reason"] == "INVALID_ARGUMENT"


async def test_a_server_without_an_llm_gets_no_add_conversation(server: Server, user: str) -> None:
    async with stdio(server.address, "--user", user) as c:
        assert "add_conversation" not in {t.name for t in (await c.list_tools()).tools}
