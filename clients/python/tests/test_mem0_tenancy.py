"""mem0 on a Mnemo server with API keys: the key's tenant and user restrictions
bound what a mem0 `Memory` can read and write, whatever its collection or filters say."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import KeepOpen, Server, start_server
from mcp_helpers import BOOTSTRAP_KEY
from mem0 import Memory
from mem0_helpers import LlmServer, llm_server, mem0_config

import mnemo.integrations.mem0  # noqa: F401  (registers the provider)
from mnemo import MnemoClient
from mnemo.errors import PermissionDeniedError
from mnemo_server.embed.base import Embedder


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("mem0-auth"),
        KeepOpen(embedder),
        **{"auth.enabled": "on", "auth.bootstrap_key": BOOTSTRAP_KEY},
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def llm() -> Iterator[LlmServer]:
    with llm_server() as server:
        yield server


def memory_for(server: Server, llm: LlmServer, key: str, path: Path) -> Memory:
    block = {"provider": "mnemo", "config": {"address": server.address, "api_key": key}}
    return Memory.from_config(mem0_config(block, llm.base_url, path))


def test_tenants_and_user_restricted_keys(auth_server: Server, llm: LlmServer, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    with MnemoClient(auth_server.address, api_key=BOOTSTRAP_KEY) as admin:
        acme = admin.create_api_key("writer", tenant=f"acme-{suffix}").secret
        globex = admin.create_api_key("writer", tenant=f"globex-{suffix}").secret
        only_bob = admin.create_api_key("writer", tenant=f"acme-{suffix}", user_ids=["bob"]).secret

    ours = memory_for(auth_server, llm, acme, tmp_path / "a.db")
    theirs = memory_for(auth_server, llm, globex, tmp_path / "g.db")
    bobs: Any = memory_for(auth_server, llm, only_bob, tmp_path / "b.db")
    try:
        secret = ours.add("The vault code is 9931", user_id="alice", infer=False)["results"][0]["id"]
        theirs.add("The vault code is 1111", user_id="alice", infer=False)

        # Same collection name, same user id, another tenant: nothing crosses.
        assert [r["memory"] for r in theirs.get_all(filters={"user_id": "alice"})["results"]] == [
            "The vault code is 1111"
        ]
        hits = theirs.search("vault code", filters={"user_id": "alice"}, threshold=0.0)["results"]
        assert [h["memory"] for h in hits] == ["The vault code is 1111"]
        assert theirs.get(secret) is None

        # A key restricted to bob reads only bob's memories. It cannot write through mem0
        # at all: mem0 chooses every record's id, which such keys may not (docs/mem0.md).
        with pytest.raises(PermissionDeniedError) as refused:
            bobs.get_all(filters={"user_id": "alice"})
        assert refused.value.reason == "SCOPE_FORBIDDEN"
        with pytest.raises(PermissionDeniedError) as refused:
            bobs.add("Bob likes rowing", user_id="bob", infer=False)
        assert refused.value.reason == "MEMORY_ID_FORBIDDEN"
        assert bobs.get_all(filters={"user_id": "bob"})["results"] == []
        assert [r["memory"] for r in ours.get_all(filters={"user_id": "alice"})["results"]] == [
            "The vault code is 9931"
        ]
    finally:
        for m in (ours, theirs, bobs):
            m.vector_store.close()
