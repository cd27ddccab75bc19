"""The one search path (service/search.py), seen from a real server over gRPC:
a result-cache hit whose records are cached too is answered on the event
loop without one store call; anything else reads the store in a worker
thread, never on the event loop; a query is validated and fingerprinted once
per call, hit or miss. And, over two services sharing one SQLite file: once
another process's write is seen, no search is answered before catching up."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mnemo.v1 import admin_service_pb2 as admin
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server import app as app_module
from mnemo_server.config import load_settings
from mnemo_server.embed.base import Embedder
from mnemo_server.models import Principal, Scope
from mnemo_server.service import MemoryDraft, MemoryService, SearchQuery, WriteOp
from mnemo_server.service import query as query_module
from mnemo_server.store.base import RecordStore

from ..conftest import RunningServer, make_settings, start_server


class CountingStore:
    """The real store, with every call through the RecordStore seam noted as
    (method, thread name)."""

    def __init__(self, inner: RecordStore) -> None:
        self._inner = inner
        self.calls: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value):
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, threading.current_thread().name))
            return value(*args, **kwargs)

        return counted


@pytest.fixture
def counted(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[RunningServer, CountingStore]]:
    made: list[CountingStore] = []
    real_build_store = app_module.build_store

    def build_store(*args: Any, **kwargs: Any) -> Any:
        made.append(CountingStore(real_build_store(*args, **kwargs)))
        return made[-1]

    monkeypatch.setattr(app_module, "build_store", build_store)
    # No upkeep during the test: only the calls searches make are counted.
    running = start_server(make_settings(tmp_path / "data", server={"sweep_interval_s": 3600}), embedder)
    try:
        yield running, made[0]
    finally:
        running.stop()


def _search(server: RunningServer, uid: str) -> list[str]:
    request = pb.SearchMemoriesRequest(query="which pets does she keep?", scope=m.Scope(user_id=uid), top_k=5)
    return [h.memory.content for h in server.memory.SearchMemories(request).hits]


def _cache(server: RunningServer, name: str) -> admin.CacheStats:
    return {c.name: c for c in server.admin.GetStats(admin.GetStatsRequest()).caches}[name]


def test_a_cache_hit_is_answered_without_a_store_call(counted: tuple[RunningServer, CountingStore]) -> None:
    server, store = counted
    uid = f"u-{uuid.uuid4().hex[:8]}"
    server.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content="she keeps two cats"))
    )
    loop_thread = server.thread.name

    store.calls.clear()
    assert _search(server, uid) == ["she keeps two cats"]  # computed
    computed = list(store.calls)
    assert computed and all(thread != loop_thread for _, thread in computed)

    # A result-cache hit whose records are not cached yet: they are read in a worker thread.
    hits_before = _cache(server, "search").hits
    service = server.app.service
    assert service is not None and service.records is not None
    service.records.clear()  # else the record table has them (test_search_deferred.py)
    store.calls.clear()
    assert _search(server, uid) == ["she keeps two cats"]
    calls = list(store.calls)
    assert _cache(server, "search").hits == hits_before + 1
    assert [name for name, _ in calls] == ["current_revision", "get_by_keys"]  # catch-up, records
    assert all(thread != loop_thread for _, thread in calls)

    # Both caches hit: answered on the event loop, and the store never hears of it.
    records_before = _cache(server, "record").hits
    store.calls.clear()
    assert _search(server, uid) == ["she keeps two cats"]
    calls = list(store.calls)
    assert _cache(server, "record").hits == records_before + 1
    assert calls == []


def test_a_search_is_validated_and_fingerprinted_once_per_call(
    counted: tuple[RunningServer, CountingStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = counted
    fingerprints: list[str] = []
    real = query_module.search_fingerprint

    def counting(**kwargs: Any) -> bytes:
        fingerprints.append(kwargs["text"])
        return real(**kwargs)

    monkeypatch.setattr(query_module, "search_fingerprint", counting)
    uid = f"u-{uuid.uuid4().hex[:8]}"
    server.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content="she keeps two cats"))
    )

    for _ in range(3):  # a miss, a hit with a record read, a hit from the caches alone
        fingerprints.clear()
        assert _search(server, uid) == ["she keeps two cats"]
        assert fingerprints == ["which pets does she keep?"]
    fingerprints.clear()
    server.memory.BatchSearchMemories(
        pb.BatchSearchMemoriesRequest(
            requests=[
                pb.SearchMemoriesRequest(query="cats", scope=m.Scope(user_id=uid)),
                pb.SearchMemoriesRequest(query="dogs", scope=m.Scope(user_id=uid)),
            ]
        )
    )
    assert sorted(fingerprints) == ["cats", "dogs"]


def _service(data: Path, embedder: Embedder) -> MemoryService:
    settings = load_settings(env={}, overrides={"server.data_dir": str(data)})
    store = app_module.build_store(settings)
    service = MemoryService(
        store=store,
        index=app_module.build_index(settings, embedder.dimension),
        embedder=embedder,
        settings=settings,
        snapshot_dir=data / "index",
        caches=app_module.build_caches(settings, store),
        inline_cache_hits=True,
    )
    service.load()
    return service


def test_once_another_process_writes_the_store_every_search_catches_up_first(
    tmp_path: Path, embedder: Embedder
) -> None:
    data = tmp_path / "shared"
    data.mkdir()
    here, other = _service(data, embedder), _service(data, embedder)
    you = Principal()
    scope = Scope(user_id="ana")

    def answer() -> list[str]:
        prepared = here.prepare(you, [SearchQuery(text="what does ana drink?", scope=scope)])
        inline = here.answer_inline(prepared)
        results = inline if inline is not None else here.search(you, prepared)
        return [h.memory.content for h in results[0].hits]

    try:
        here.write(you, [WriteOp("create", draft=MemoryDraft(scope=scope, content="ana drinks tea"))])
        assert answer() == ["ana drinks tea"]
        assert answer() == ["ana drinks tea"]
        prepared = here.prepare(you, [SearchQuery(text="what does ana drink?", scope=scope)])
        assert here.answer_inline(prepared) is not None  # both caches hit, no other writer seen

        other.write(you, [WriteOp("create", draft=MemoryDraft(scope=scope, content="ana drinks coffee"))])
        here.upkeep()  # the periodic catch-up sees the other process's write
        prepared = here.prepare(you, [SearchQuery(text="what does ana drink?", scope=scope)])
        assert here.answer_inline(prepared) is None
        assert sorted(h.memory.content for h in here.search(you, prepared)[0].hits) == [
            "ana drinks coffee",
            "ana drinks tea",
        ]
        other.write(you, [WriteOp("create", draft=MemoryDraft(scope=scope, content="ana drinks water"))])
        # No upkeep this time: the search itself catches up.
        assert "ana drinks water" in answer()
    finally:
        here.store.close()
        other.store.close()
