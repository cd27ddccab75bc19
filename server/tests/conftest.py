"""Shared fixtures: a real server on loopback (real model, real files)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from mnemo.v1 import admin_service_pb2_grpc, memory_service_pb2_grpc
from mnemo_server.app import App, build_embedder
from mnemo_server.config import Settings, load_settings
from mnemo_server.embed.base import Embedder


@dataclass
class RunningServer:
    app: App
    address: str
    channel: grpc.Channel
    memory: memory_service_pb2_grpc.MemoryServiceStub
    admin: admin_service_pb2_grpc.AdminServiceStub
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    def stop(self) -> None:
        self.channel.close()
        asyncio.run_coroutine_threadsafe(self.app.stop(grace=1), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


def start_server(
    settings: Settings, embedder: Embedder | None = None, interceptors: Sequence[Any] = ()
) -> RunningServer:
    """Runs an App on its own event loop in a thread; returns once SERVING."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-server", daemon=True)
    thread.start()
    app = App(settings, embedder=embedder, interceptors=interceptors)

    async def boot() -> int:
        port = await app.start()
        await app.ready(timeout=120)
        return port

    port = asyncio.run_coroutine_threadsafe(boot(), loop).result(180)
    address = f"127.0.0.1:{port}"
    channel = grpc.insecure_channel(address)
    return RunningServer(
        app,
        address,
        channel,
        memory_service_pb2_grpc.MemoryServiceStub(channel),
        admin_service_pb2_grpc.AdminServiceStub(channel),
        loop,
        thread,
    )


def make_settings(data_dir: Path, **sections: dict[str, Any]) -> Settings:
    overrides = {
        "server.address": "127.0.0.1:0",
        "server.data_dir": str(data_dir),
        "index.snapshot_interval_s": 0,
        "server.shutdown_grace_s": 1,
    }
    for section, values in sections.items():
        overrides.update({f"{section}.{k}": v for k, v in values.items()})
    return load_settings(env={}, overrides=overrides)


def store_sections() -> dict[str, dict[str, Any]]:
    """Settings for the store under test: SQLite, or with MNEMO_TEST_STORE=postgresql
    a fresh database on the test PostgreSQL (tests/pg_server.py)."""
    if os.environ.get("MNEMO_TEST_STORE", "sqlite") != "postgresql":
        return {}
    from .pg_server import fresh_database_url

    return {"store": {"url": fresh_database_url()}}


@pytest.fixture(scope="session", autouse=True)
def _stop_shared_postgres() -> Iterator[None]:
    """Stops the PostgreSQL the store tests started (tests/pg_server.py), if any."""
    yield
    from . import pg_server

    pg_server.stop_shared()


@pytest.fixture(scope="session")
def embedder() -> Iterator[Embedder]:
    """The real model, loaded once for the whole run."""
    model = build_embedder(load_settings(env={}))
    yield model
    model.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[RunningServer]:
    """One server for the session; tests keep apart by using their own user ids.
    MNEMO_TEST_STORE=postgresql runs it on PostgreSQL (store_sections())."""
    running = start_server(make_settings(tmp_path_factory.mktemp("data"), **store_sections()), embedder)
    yield running
    running.stop()


def error_of(exc: grpc.RpcError) -> tuple[grpc.StatusCode, str, list[str]]:
    """(code, reason, violated fields) of a failed call."""
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    reason, fields = "", []
    assert status is not None, f"no rich status on {exc}"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
            assert info.domain == "mnemo.dev"
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
    return exc.code(), reason, fields
