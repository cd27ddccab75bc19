"""An index snapshot whose revision is wrong is caught on load and the index
rebuilt from the store: every memory stays searchable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnemo_server.app import build_index, build_store
from mnemo_server.config import Settings, load_settings
from mnemo_server.index import snapshot
from mnemo_server.models import Principal, Scope
from mnemo_server.service import MemoryDraft, MemoryService, SearchQuery, WriteOp

from ..test_tenancy import HashEmbedder

ALICE = Principal(tenant="t")
SCOPE = Scope(user_id="alice")


def open_service(settings: Settings) -> MemoryService:
    service = MemoryService(
        store=build_store(settings),
        index=build_index(settings, HashEmbedder.dimension),
        embedder=HashEmbedder(),
        settings=settings,
        snapshot_dir=settings.server.data_dir / "index",
    )
    service.load()
    return service


def add(service: MemoryService, *contents: str) -> None:
    ops = [WriteOp("create", draft=MemoryDraft(scope=SCOPE, content=c)) for c in contents]
    assert all(o.error is None for o in service.write(ALICE, ops))


def set_snapshot_revision(data_dir: Path, revision: int) -> None:
    path, manifest = snapshot.read_manifest(data_dir / "index")
    manifest["revision"] = revision
    (path / snapshot.MANIFEST).write_text(json.dumps(manifest))


def searchable(service: MemoryService, content: str) -> bool:
    [result] = service.search(ALICE, [SearchQuery(text=content, scope=SCOPE, top_k=50)])
    return content in {h.memory.content for h in result.hits}


@pytest.mark.parametrize("raise_by", [0, 50], ids=["to-the-store-revision", "past-the-store"])
def test_a_snapshot_with_a_raised_revision_is_rebuilt(tmp_path: Path, raise_by: int) -> None:
    settings = load_settings(env={}, overrides={"server.data_dir": str(tmp_path)})
    first = open_service(settings)
    add(first, "before the snapshot", "also before")
    first.snapshot()
    add(first, "after the snapshot one", "after the snapshot two")
    latest = first.store.current_revision()
    first.store.close()
    # The snapshot now claims the writes after it, which a replay therefore skips.
    set_snapshot_revision(tmp_path, latest + raise_by)

    second = open_service(settings)
    try:
        assert second.index.count() == second.store.count() == 4
        for content in ("before the snapshot", "after the snapshot one", "after the snapshot two"):
            assert searchable(second, content), content
        assert second.check_consistency(repair=False).inconsistencies == []
    finally:
        second.store.close()


def test_a_true_snapshot_is_kept_and_replayed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(env={}, overrides={"server.data_dir": str(tmp_path)})
    first = open_service(settings)
    add(first, "one", "two")
    first.snapshot()
    add(first, "three")
    first.store.close()
    caplog.set_level("INFO", logger="mnemo.service")
    second = open_service(settings)
    try:
        assert searchable(second, "three") and second.index.count() == 3
        assert "not usable" not in caplog.text and "replayed 1 changes" in caplog.text
    finally:
        second.store.close()


def test_a_raised_revision_is_caught_when_the_counts_still_agree(tmp_path: Path) -> None:
    settings = load_settings(env={}, overrides={"server.data_dir": str(tmp_path)})
    first = open_service(settings)
    add(first, "stays", "goes away")
    first.snapshot()
    listed, _ = first.list_memories(
        ALICE, scope=SCOPE, filter_text="", order_by="", page_size=10, page_token=""
    )
    victim = next(m.id for m in listed if m.content == "goes away")
    first.write(ALICE, [WriteOp("delete", memory_id=victim)])
    add(first, "replaces it")  # as many memories as the snapshot holds, other keys
    latest = first.store.current_revision()
    first.store.close()
    set_snapshot_revision(tmp_path, latest)

    second = open_service(settings)
    try:
        assert searchable(second, "replaces it") and not searchable(second, "goes away")
        assert second.check_consistency(repair=False).inconsistencies == []
    finally:
        second.store.close()
