"""Fixtures of the security tests: real servers with authentication on,
called over real gRPC with `authorization: Bearer KEY` metadata."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2

from mnemo.v1 import admin_service_pb2 as admin_pb
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server.embed.base import Embedder

from ..conftest import RunningServer, error_of, make_settings, start_server, store_sections

#: The operator's bootstrap key of every secure test server (system tenant).
BOOTSTRAP = "test-bootstrap-key-" + "b" * 40

ROLE = {
    "reader": admin_pb.API_KEY_ROLE_READER,
    "writer": admin_pb.API_KEY_ROLE_WRITER,
    "admin": admin_pb.API_KEY_ROLE_ADMIN,
}


class Keyed:
    """A stub whose every call carries one API key (or none, or a raw header)."""

    def __init__(self, stub: Any, secret: str | None, *, header: str | None = None) -> None:
        self._stub = stub
        if header is not None:
            self._metadata: tuple[tuple[str, str], ...] = (("authorization", header),)
        elif secret is None:
            self._metadata = ()
        else:
            self._metadata = (("authorization", f"Bearer {secret}"),)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._stub, name)

        def call(request: Any, **kwargs: Any) -> Any:
            return method(request, metadata=self._metadata, **kwargs)

        return call


class As:
    """Both services as one API key."""

    def __init__(self, server: RunningServer, secret: str | None, key_id: str = "") -> None:
        self.secret = secret
        self.key_id = key_id
        self.memory = Keyed(server.memory, secret)
        self.admin = Keyed(server.admin, secret)


def new_key(
    server: RunningServer,
    role: str,
    *,
    by: str = BOOTSTRAP,
    tenant: str = "",
    user_ids: tuple[str, ...] = (),
    agent_ids: tuple[str, ...] = (),
    ttl_s: float | None = None,
) -> As:
    request = admin_pb.CreateApiKeyRequest(
        tenant=tenant, role=ROLE[role], user_ids=user_ids, agent_ids=agent_ids, display_name=f"{role} key"
    )
    if ttl_s is not None:
        request.ttl.CopyFrom(duration_pb2.Duration(seconds=int(ttl_s), nanos=int(ttl_s % 1 * 1e9)))
    created = Keyed(server.admin, by).CreateApiKey(request)
    assert created.secret.startswith(f"mnemo_{created.api_key.id}_")
    return As(server, created.secret, created.api_key.id)


def tenant_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def create(who: As, content: str, *, user_id: str, agent_id: str = "", memory_id: str = "") -> m.Memory:
    response = who.memory.CreateMemory(
        pb.CreateMemoryRequest(
            memory=m.Memory(id=memory_id, user_id=user_id, agent_id=agent_id, content=content)
        )
    )
    return response.memory


def fails(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    """(code, reason) of a call that must fail; streams are read to the end."""
    try:
        result = call()
        if hasattr(result, "__iter__") and not hasattr(result, "SerializeToString"):
            for _ in result:
                pass
    except grpc.RpcError as exc:
        code, reason, _ = error_of(exc)
        return code, reason
    raise AssertionError("the call succeeded")


def secure_settings(data_dir: Path, **sections: dict[str, Any]) -> Any:
    auth = {"enabled": "on", "bootstrap_key": BOOTSTRAP, **sections.pop("auth", {})}
    return make_settings(data_dir, auth=auth, **sections)


@pytest.fixture(scope="session")
def secure(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[RunningServer]:
    """One server with API keys required, shared by the tests of this folder
    that do not change settings; tests keep apart by their own tenants."""
    data = tmp_path_factory.mktemp("secure")
    settings = secure_settings(data, audit={"log_file": str(data / "audit.jsonl")}, **store_sections())
    running = start_server(settings, embedder)
    yield running
    running.stop()


@pytest.fixture
def make_server(embedder: Embedder) -> Iterator[Callable[..., RunningServer]]:
    """Starts servers with given settings (stopped after the test)."""
    started: list[RunningServer] = []

    def make(settings: Any) -> RunningServer:
        running = start_server(settings, embedder)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()
