"""Fixtures of the SDK and CLI tests: a real in-process server (real model, real
files) on port 0 for the whole session; tests keep apart by unique user ids.

This folder has no __init__.py on purpose: server/tests is the package `tests`.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# mem0 reads these on import: no telemetry calls out, and its ~/.mem0 state stays out of $HOME.
os.environ.setdefault("MEM0_TELEMETRY", "False")
os.environ.setdefault("MEM0_DIR", tempfile.mkdtemp(prefix="mnemo-mem0-"))

from mnemo import AsyncMnemoClient, MnemoClient
from mnemo_server.app import App, build_embedder
from mnemo_server.config import Settings, load_settings
from mnemo_server.embed.base import Embedder


@dataclass
class Server:
    """A running App on its own event loop in a thread."""

    app: App
    address: str
    data_dir: Path
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.app.stop(grace=0.5), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


def make_settings(data_dir: Path, address: str = "127.0.0.1:0", **values: Any) -> Settings:
    overrides = {
        "server.address": address,
        "server.data_dir": str(data_dir),
        "index.snapshot_interval_s": 0,
        "server.shutdown_grace_s": 1,
        **values,
    }
    return load_settings(env={}, overrides=overrides)


def start_server(
    data_dir: Path, embedder: Embedder, address: str = "127.0.0.1:0", **values: Any
) -> Server:
    """Starts an App (with settings overridden by `values`) and returns once it is SERVING."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="sdk-test-server", daemon=True)
    thread.start()
    app = App(make_settings(data_dir, address, **values), embedder=embedder)

    async def boot() -> int:
        port = await app.start()
        await app.ready(timeout=120)
        return port

    port = asyncio.run_coroutine_threadsafe(boot(), loop).result(180)
    return Server(app, f"127.0.0.1:{port}", data_dir, loop, thread)


class KeepOpen(Embedder):
    """The shared model, which a server that stops must not close."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner

    @property
    def model_id(self) -> str:
        return self._inner.model_id

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    def embed(self, texts: Sequence[str]) -> Any:
        return self._inner.embed(texts)

    def close(self) -> None:
        pass


@pytest.fixture(scope="session")
def embedder() -> Iterator[Embedder]:
    """The real model, loaded once for the whole run."""
    model = build_embedder(load_settings(env={}))
    yield model
    model.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("data"), KeepOpen(embedder))
    yield running
    running.stop()


@pytest.fixture
def user() -> str:
    """A user id no other test uses."""
    return f"u-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(server: Server) -> Iterator[MnemoClient]:
    with MnemoClient(server.address, api_key="") as c:
        yield c


@pytest.fixture
async def aclient(server: Server) -> AsyncIterator[AsyncMnemoClient]:
    async with AsyncMnemoClient(server.address, api_key="") as c:
        yield c
