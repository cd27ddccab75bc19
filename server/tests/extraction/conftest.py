"""Servers with extraction on, their LLM a FakeLlm the test scripts."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from mnemo.v1 import extraction_service_pb2 as ex
from mnemo.v1 import extraction_service_pb2_grpc as ex_grpc
from mnemo.v1 import memory_pb2 as m
from mnemo_server.embed.base import Embedder

from ..conftest import RunningServer, make_settings, start_server
from .fake_llm import KEY, Call, FakeLlm, Reply

KEY_ENV = "MNEMO_TEST_LLM_KEY"


def extraction_settings(base_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "provider": "openai",
        "model": "fake-model",
        "base_url": base_url,
        "api_key_env": KEY_ENV,
        "timeout_s": 5,
        "retries": 2,
        "retry_backoff_s": 0.01,
        **overrides,
    }


class Script:
    """The FakeLlm's script, replaceable per test."""

    def __init__(self) -> None:
        self.reply: Callable[[Call], Reply] = lambda call: Reply('{"memory": []}')

    def __call__(self, call: Call) -> Reply:
        return self.reply(call)


@pytest.fixture(scope="module")
def llm() -> Iterator[tuple[FakeLlm, Script]]:
    script = Script()
    fake = FakeLlm(script)
    yield fake, script
    fake.close()


@pytest.fixture(scope="module")
def xserver(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, llm: tuple[FakeLlm, Script]
) -> Iterator[RunningServer]:
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, KEY)
    data = tmp_path_factory.mktemp("extract")
    running = start_server(
        make_settings(data, extraction=extraction_settings(llm[0].base_url, concurrency=8)), embedder
    )
    yield running
    running.stop()
    mp.undo()


@pytest.fixture
def script(llm: tuple[FakeLlm, Script]) -> Iterator[Script]:
    fake, s = llm
    fake.calls.clear()
    yield s
    s.reply = lambda call: Reply('{"memory": []}')


def stub(server: RunningServer) -> ex_grpc.ExtractionServiceStub:
    return ex_grpc.ExtractionServiceStub(server.channel)


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def conversation(*lines: str) -> list[ex.ConversationMessage]:
    """Alternating user/assistant messages."""
    roles = ("user", "assistant")
    return [ex.ConversationMessage(role=roles[i % 2], content=text) for i, text in enumerate(lines)]


def extract(
    server: RunningServer,
    user_id: str,
    *lines: str,
    mode: int = ex.EXTRACTION_MODE_ADDITIVE,
    wait: bool = True,
    metadata: Any = None,
    **kwargs: Any,
) -> ex.Operation:
    request = ex.ExtractMemoriesRequest(
        messages=conversation(*lines), scope=m.Scope(user_id=user_id), mode=mode, wait=wait, **kwargs
    )
    return stub(server).ExtractMemories(request, timeout=60).operation


def rpc_fails(call: Callable[[], Any]) -> grpc.RpcError:
    try:
        call()
    except grpc.RpcError as exc:
        return exc
    raise AssertionError("the call succeeded")


__all__ = ["Path", "Reply", "Script", "conversation", "extract", "rpc_fails", "stub", "user"]
