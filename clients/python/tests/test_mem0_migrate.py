"""Migration from mem0: stores populated by a real mem0 `Memory` (FAISS on disk,
Qdrant in local embedded mode), read back through mem0ai and imported into the
real server of conftest; verified through Mnemo, and re-run without duplicates."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from mem0 import Memory
from mem0_helpers import LlmServer, llm_server, mem0_config

from mnemo import MnemoClient
from mnemo.cli import main
from mnemo.integrations.mem0 import migrate


@pytest.fixture(scope="module")
def llm() -> Iterator[LlmServer]:
    with llm_server() as server:
        yield server


def populate(memory: Memory, user: str) -> dict[str, dict[str, Any]]:
    """Adds memories the ways mem0 users do; returns mem0's view of them by id."""
    memory.add([{"role": "user", "content": "I moved to Lisbon, I work as a nurse."}], user_id=user)
    memory.add(
        "Prefers window seats", user_id=user, agent_id="travel-bot", metadata={"topic": "travel"}, infer=False
    )
    memory.add("Run-scoped note", user_id=user, run_id="run-7", infer=False)
    listed = memory.get_all(filters={"user_id": user}, top_k=100)["results"]
    nurse = next(m for m in listed if m["memory"] == "Works as a nurse")
    memory.update(nurse["id"], text="Works as a night-shift nurse")
    return {m["id"]: memory.get(m["id"]) for m in listed}


def check_imported(
    client: MnemoClient, user: str, expected: dict[str, dict[str, Any]], collection: str
) -> None:
    got = {m.id: m for m in client.iter_memories(user_id=user)}
    assert set(got) == set(expected)
    for memory_id, item in expected.items():
        m = got[memory_id]
        assert m.content == item["memory"]
        assert (m.agent_id or None, m.run_id or None) == (item.get("agent_id"), item.get("run_id"))
        assert m.metadata["hash"] == item["hash"]
        assert m.metadata["created_at"] == item["created_at"]
        assert m.metadata["mem0_collection"] == collection
        assert m.create_time == datetime.fromisoformat(item["created_at"])
        assert m.update_time == datetime.fromisoformat(item["updated_at"])
        for key, value in (item.get("metadata") or {}).items():
            assert m.metadata[key] == value
    night = next(m for m in got.values() if m.content == "Works as a night-shift nurse")
    assert night.update_time is not None and night.create_time is not None
    assert night.update_time > night.create_time


def test_faiss_store_migrates_with_its_vectors(
    server: Any, client: MnemoClient, llm: LlmServer, user: str, tmp_path: Path
) -> None:
    collection = f"f{uuid.uuid4().hex[:8]}"
    block = {
        "provider": "faiss",
        "config": {
            "collection_name": collection,
            "path": str(tmp_path / "faiss"),
            "embedding_model_dims": 384,
        },
    }
    config = mem0_config(block, llm.base_url, tmp_path / "history.db")
    memory = Memory.from_config(config)
    expected = populate(memory, user)
    # A record without text, as a mem0 program may write one straight to its store.
    memory.vector_store.insert([[0.0] * 384], payloads=[{"user_id": user}], ids=["no-text"])
    faiss_vector = memory.vector_store.index.reconstruct(0)
    memory.close()

    report = migrate(config, client)
    assert (report.read, report.imported, report.skipped, report.failed) == (5, 4, 0, 1)
    assert report.failures[0][:2] == ("no-text", "PAYLOAD_INVALID")
    assert report.reembedded == 0  # mem0's model is the server's: its vectors were kept
    assert (report.source_model, report.server_model) == ("all-MiniLM-L6-v2", "all-MiniLM-L6-v2")
    check_imported(client, user, expected, collection)
    first_id = memory.vector_store.index_to_id[0]
    kept = client.get(first_id, read_mask=["embedding"]).embedding
    assert kept is not None
    assert np.allclose(np.asarray(kept), faiss_vector / np.linalg.norm(faiss_vector), atol=1e-5)

    again = migrate(config, client)  # re-run: nothing new
    assert (again.imported, again.skipped, again.failed) == (0, 4, 1)
    assert len(list(client.iter_memories(user_id=user))) == 4

    # mem0 pointed at Mnemo (same collection) finds what was migrated.
    mnemo_block = {"provider": "mnemo", "config": {"address": server.address, "collection_name": collection}}
    on_mnemo = Memory.from_config(mem0_config(mnemo_block, llm.base_url, tmp_path / "h2.db"))
    hits = on_mnemo.search("Which city does the user live in?", filters={"user_id": user}, top_k=1)["results"]
    assert hits[0]["memory"] == "Lives in Lisbon"
    on_mnemo.vector_store.close()


def test_qdrant_local_store_through_the_command_line(
    server: Any,
    client: MnemoClient,
    llm: LlmServer,
    user: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    collection = f"q{uuid.uuid4().hex[:8]}"
    block = {
        "provider": "qdrant",
        "config": {
            "collection_name": collection,
            "path": str(tmp_path / "qdrant"),
            "embedding_model_dims": 384,
            "on_disk": True,
        },
    }
    config = mem0_config(block, llm.base_url, tmp_path / "history.db")
    memory = Memory.from_config(config)
    expected = populate(memory, user)
    memory.vector_store.client.close()  # local Qdrant allows one client per folder
    memory.close()
    config_file = tmp_path / "mem0.yaml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")

    monkeypatch.setenv("MNEMO_ADDRESS", server.address)
    monkeypatch.delenv("MNEMO_API_KEY", raising=False)

    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        return main(list(argv), out=out, err=err), out.getvalue(), err.getvalue()

    code, out, err = run("import", "--from-mem0", str(config_file), "--json")
    assert code == 0, err
    counts = json.loads(out)
    assert (counts["read"], counts["imported"], counts["skipped"], counts["failed"]) == (4, 4, 0, 0)
    assert counts["re-embedded"] == 0
    check_imported(client, user, expected, collection)

    code, out, _ = run("import", "--from-mem0", str(config_file))
    assert code == 0
    assert "imported:    0" in out and "skipped:     4" in out and "failed:      0" in out


def test_other_model_is_reembedded_and_usage_errors(
    client: MnemoClient,
    llm: LlmServer,
    user: str,
    tmp_path: Path,
    server: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    collection = f"r{uuid.uuid4().hex[:8]}"
    block = {
        "provider": "faiss",
        "config": {
            "collection_name": collection,
            "path": str(tmp_path / "faiss"),
            "embedding_model_dims": 384,
        },
    }
    config = mem0_config(block, llm.base_url, tmp_path / "history.db")
    memory = Memory.from_config(config)
    memory.add("Collects vinyl records", user_id=user, infer=False)
    memory.close()

    report = migrate(config, client, embedding_model="text-embedding-3-small", progress=True)
    assert (report.imported, report.reembedded) == (1, 1)
    assert "imported" in capsys.readouterr().err  # the progress bar
    [stored] = client.iter_memories(user_id=user)
    assert stored.embedding_model == "all-MiniLM-L6-v2"

    monkeypatch.setenv("MNEMO_ADDRESS", server.address)
    out, err = io.StringIO(), io.StringIO()
    assert main(["import"], out=out, err=err) == 2
    assert "--from-mem0" in err.getvalue()
    mnemo_config = tmp_path / "on-mnemo.json"
    mnemo_config.write_text(
        json.dumps({"vector_store": {"provider": "mnemo", "config": {}}}), encoding="utf-8"
    )
    err = io.StringIO()
    assert main(["import", "--from-mem0", str(mnemo_config)], out=io.StringIO(), err=err) == 2
    assert "already stores in Mnemo" in err.getvalue()
