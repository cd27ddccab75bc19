"""Tenant isolation in the service layer: every read and write is confined to
the caller's tenant, even for identical ids, contents and vectors. (Until
API keys land every gRPC caller is tenant "default", so this is tested at the
service seam with real SQLite and FAISS.)"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from mnemo_server.app import build_index, build_store
from mnemo_server.config import load_settings
from mnemo_server.embed.base import Embedder
from mnemo_server.errors import NotFoundError
from mnemo_server.models import Principal, Scope
from mnemo_server.service import MemoryDraft, MemoryService, SearchMode, SearchQuery, WriteOp


class HashEmbedder(Embedder):
    """Deterministic vectors from text; the test is about tenancy, not meaning."""

    model_id = "hash"
    dimension = 16

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = [np.random.default_rng(abs(hash(t)) % 2**32).normal(size=16) for t in texts]
        out = np.array(rows, dtype=np.float32).reshape(len(texts), 16)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[MemoryService]:
    settings = load_settings(env={}, overrides={"server.data_dir": str(tmp_path)})
    store = build_store(settings)
    svc = MemoryService(
        store=store,
        index=build_index(settings, 16),
        embedder=HashEmbedder(),
        settings=settings,
        snapshot_dir=tmp_path / "index",
    )
    svc.load()
    yield svc
    store.close()


A, B = Principal(tenant="a"), Principal(tenant="b")


def test_same_id_and_content_in_two_tenants_stay_apart(service: MemoryService) -> None:
    draft = MemoryDraft(id="m1", scope=Scope(user_id="alice"), content="shared text")
    for tenant in (A, B):
        [outcome] = service.write(tenant, [WriteOp("create", draft=draft)])
        assert outcome.error is None and outcome.memory is not None
        assert outcome.memory.tenant == tenant.tenant
    service.write(
        A,
        [WriteOp("update", draft=MemoryDraft(content="only in a"), memory_id="m1", update_mask=("content",))],
    )
    assert service.get(A, "m1").content == "only in a"
    assert service.get(B, "m1").content == "shared text"
    [hits] = service.search(B, [SearchQuery(text="only in a", scope=Scope(user_id="alice"), top_k=10)])
    assert [h.memory.tenant for h in hits.hits] == ["b"]


def test_a_tenant_cannot_read_list_search_or_delete_another_tenants_memory(service: MemoryService) -> None:
    [created] = service.write(
        A, [WriteOp("create", draft=MemoryDraft(scope=Scope(user_id="u"), content="secret"))]
    )
    assert created.memory is not None
    memory_id = created.memory.id
    with pytest.raises(NotFoundError):
        service.get(B, memory_id)
    assert (
        service.list_memories(B, scope=Scope(), filter_text="", order_by="", page_size=10, page_token="")[0]
        == []
    )
    for query in (
        SearchQuery(text="secret"),
        SearchQuery(text="secret", filter='user_id = "u"'),
        SearchQuery(vector=service.embedder.embed(["secret"])[0].tolist()),
    ):
        assert service.search(B, [query])[0].hits == []
    [deleted] = service.write(B, [WriteOp("delete", memory_id=memory_id)])
    assert isinstance(deleted.error, NotFoundError)
    with pytest.raises(NotFoundError):
        service.history(B, memory_id, page_size=10, page_token="")
    assert service.get(A, memory_id).content == "secret"
    stats = service.stats(B, scope=Scope(), scope_limit=10, all_tenants=False)
    assert stats.tenants == []


def test_keyword_and_hybrid_search_stay_in_the_tenant(service: MemoryService) -> None:
    """Same words in both tenants, more of them in B: A's searches see only
    A's memory, and B's better matches never take A's places."""
    service.write(A, [WriteOp("create", draft=MemoryDraft(scope=Scope("alice"), content="order A-7731"))])
    drafts = [MemoryDraft(scope=Scope("alice"), content=f"order A-7731 A-7731 copy {i}") for i in range(20)]
    service.write(B, [WriteOp("create", draft=d) for d in drafts])
    for mode in (SearchMode.KEYWORD, SearchMode.HYBRID):
        for scope in (Scope("alice"), Scope()):
            [result] = service.search(A, [SearchQuery(text="A-7731", scope=scope, top_k=1, mode=mode)])
            assert [(h.memory.tenant, h.memory.content) for h in result.hits] == [("a", "order A-7731")]
        [result] = service.search(B, [SearchQuery(text="A-7731", top_k=50, mode=mode)])
        assert len(result.hits) == 20 and {h.memory.tenant for h in result.hits} == {"b"}
