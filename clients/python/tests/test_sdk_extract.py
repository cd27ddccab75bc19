"""Extraction through both clients and the command line, against a real server
whose LLM is the fake OpenAI-compatible server."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from conftest import KeepOpen, Server, start_server
from llm_fake import KEY, Call, FakeLlm, Reply, memories

from mnemo import (
    AsyncMnemoClient,
    ConversationMessage,
    ExtractionMode,
    FactEvent,
    MnemoClient,
    OperationState,
)
from mnemo.cli import main
from mnemo.errors import InvalidArgumentError, NotFoundError
from mnemo_server.embed.base import Embedder

KEY_ENV = "MNEMO_SDK_TEST_LLM_KEY"


def script(call: Call) -> Reply:
    if call.kind == "facts":
        return Reply('{"facts": ["Likes green tea"]}')
    if call.kind == "update":
        shown = call.existing()
        if shown:
            return Reply(
                json.dumps({"memory": [{"id": shown[0]["id"], "text": "Likes green tea", "event": "UPDATE"}]})
            )
        return Reply(json.dumps({"memory": [{"id": "0", "text": "Likes green tea", "event": "ADD"}]}))
    return Reply(memories("Likes black tea", "Lives in Lyon"))


@pytest.fixture(scope="module")
def xserver(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Server]:
    fake = FakeLlm(script)
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, KEY)
    running = start_server(
        tmp_path_factory.mktemp("extract"),
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


def test_the_blocking_client_extracts_gets_and_lists(xserver: Server, user: str) -> None:
    with MnemoClient(xserver.address, api_key="") as c:
        op = c.extract(
            [ConversationMessage("user", "I drink black tea"), {"role": "assistant", "content": "Nice"}],
            user_id=user,
            metadata={"source": "chat"},
            wait=True,
        )
        assert op.state is OperationState.SUCCEEDED and op.done and op.mode is ExtractionMode.ADDITIVE
        assert [(f.event, f.text) for f in op.facts] == [
            (FactEvent.ADDED, "Likes black tea"),
            (FactEvent.ADDED, "Lives in Lyon"),
        ]
        assert op.facts[0].memory is not None and op.facts[0].memory.metadata == {"source": "chat"}
        assert op.request_id  # the client gave it one, so retries are safe
        assert c.get_operation(op.id).facts == op.facts
        reconciled = c.extract(
            [{"role": "user", "content": "green now"}], user_id=user, mode="reconcile", wait=True
        )
        [fact] = reconciled.facts
        assert fact.event is FactEvent.UPDATED and fact.before is not None and fact.after is not None
        assert fact.after.content == "Likes green tea" and fact.before.id == fact.after.id
        assert [o.id for o in c.iter_operations(user_id=user, page_size=1)] == [reconciled.id, op.id]
        assert [o.id for o in c.list_operations(user_id=user, state="succeeded").operations] == [
            reconciled.id,
            op.id,
        ]
        with pytest.raises(InvalidArgumentError) as bad:
            c.extract([{"role": "robot", "content": "x"}], user_id=user)
        assert bad.value.reason == "CONVERSATION_INVALID"
        assert [v.field for v in bad.value.field_violations] == ["messages[0].role"]
        with pytest.raises(NotFoundError) as missing:
            c.get_operation("0" * 32)
        assert missing.value.reason == "OPERATION_NOT_FOUND"


async def test_the_async_client_does_the_same(xserver: Server, user: str) -> None:
    async with AsyncMnemoClient(xserver.address, api_key="") as c:
        op = await c.extract([{"role": "user", "content": "I drink black tea"}], user_id=user, wait=True)
        assert op.state is OperationState.SUCCEEDED and len(op.facts) == 2
        assert (await c.get_operation(op.id)).facts == op.facts
        assert [o.id async for o in c.iter_operations(user_id=user)] == [op.id]
        assert [o.id for o in (await c.list_operations(user_id=user)).operations] == [op.id]


def test_mnemo_extract_reads_a_conversation_from_a_file_or_stdin(
    xserver: Server, user: str, tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "conversation.json"  # type: ignore[operator]
    path.write_text(
        json.dumps(
            {"messages": [{"role": "user", "content": "I drink black tea", "time": "2026-01-02T03:04:05Z"}]}
        )
    )
    out, err = io.StringIO(), io.StringIO()
    assert (
        main(["extract", str(path), "--user", user, "--address", xserver.address, "--json"], out=out, err=err)
        == 0
    )
    op = json.loads(out.getvalue())
    assert op["state"] == "succeeded" and [f["event"] for f in op["result"]["facts"]] == ["added", "added"]
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps([{"role": "user", "content": "again"}])))
    out = io.StringIO()
    assert main(["extract", "-", "--user", user, "--address", xserver.address], out=out, err=err) == 0
    text = out.getvalue()
    assert "state:" in text and "succeeded" in text and "unchanged" in text and "Likes black tea" in text
    out = io.StringIO()
    assert main(["operation", op["id"], "--address", xserver.address], out=out, err=err) == 0
    assert op["id"] in out.getvalue()
    monkeypatch.setattr("sys.stdin", io.StringIO('{"not": "a conversation"}'))
    assert (
        main(["extract", "-", "--user", user, "--address", xserver.address], out=io.StringIO(), err=err) == 2
    )
