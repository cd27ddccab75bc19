"""What the search path defers or batches, seen over real gRPC.

- Retrieval times: a search notes them in memory only; upkeep writes them
  every sweep interval, and a server that stops writes what is left, so
  they survive a restart (a crash loses at most one interval).
- StreamSearchMemories answers the queries that arrived together as one
  batch (one index call), and still gives each query its own answer or
  error under its own id.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server.embed.base import Embedder
from mnemo_server.models import DEFAULT_TENANT

from ..conftest import RunningServer, make_settings, start_server

DIM = 384


def unit(rng: np.random.Generator) -> list[float]:
    v = rng.standard_normal(DIM).astype(np.float32)
    return (v / np.linalg.norm(v)).tolist()  # type: ignore[no-any-return]


def seed_vectors(server: RunningServer, uid: str, count: int, rng: np.random.Generator) -> list[m.Memory]:
    """Memories with random unit embeddings (kept on the returned messages)."""
    vectors = [unit(rng) for _ in range(count)]
    ops = [
        pb.WriteOperation(
            create=pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content=f"fact {i}", embedding=v))
        )
        for i, v in enumerate(vectors)
    ]
    response = server.memory.BatchWriteMemories(pb.BatchWriteMemoriesRequest(operations=ops))
    assert all(r.status.code == 0 for r in response.results)
    made = [r.create.memory for r in response.results]
    for memory, v in zip(made, vectors, strict=True):
        memory.embedding[:] = v
    return made


def stream_query(query_id: str, uid: str, vector: Any, **fields: Any) -> pb.StreamSearchMemoriesRequest:
    search = pb.SearchMemoriesRequest(vector=list(vector), scope=m.Scope(user_id=uid), top_k=1, **fields)
    return pb.StreamSearchMemoriesRequest(query_id=query_id, search=search)


def last_retrieved(server: RunningServer, memory_id: str) -> int | None:
    got = server.memory.GetMemory(pb.GetMemoryRequest(id=memory_id)).memory
    return got.last_retrieve_time.ToMicroseconds() if got.HasField("last_retrieve_time") else None


def test_retrieval_times_are_written_at_shutdown(tmp_path: Path, embedder: Embedder) -> None:
    # An upkeep interval far longer than the test: only the stop can write them.
    settings = make_settings(tmp_path / "data", server={"sweep_interval_s": 3600})
    rng = np.random.default_rng(1)
    uid = f"u-{uuid.uuid4().hex[:8]}"
    running = start_server(settings, embedder)
    try:
        memories = seed_vectors(running, uid, 5, rng)
        target = memories[2]
        found = running.memory.SearchMemories(
            pb.SearchMemoriesRequest(vector=list(target.embedding), scope=m.Scope(user_id=uid), top_k=1)
        )
        assert found.hits[0].memory.id == target.id
        assert last_retrieved(running, target.id) is None  # noted, not written yet
    finally:
        running.stop()
    again = start_server(settings, embedder)
    try:
        assert last_retrieved(again, target.id) is not None
        assert last_retrieved(again, memories[0].id) is None  # only what a search returned
    finally:
        again.stop()


def test_upkeep_writes_retrieval_times_while_running(tmp_path: Path, embedder: Embedder) -> None:
    settings = make_settings(tmp_path / "data", server={"sweep_interval_s": 0.1})
    rng = np.random.default_rng(2)
    uid = f"u-{uuid.uuid4().hex[:8]}"
    running = start_server(settings, embedder)
    try:
        target = seed_vectors(running, uid, 3, rng)[1]
        running.memory.SearchMemories(
            pb.SearchMemoriesRequest(vector=list(target.embedding), scope=m.Scope(user_id=uid), top_k=1)
        )
        deadline = time.monotonic() + 30
        # GetMemory may answer from the record cache: read the store itself.
        service = running.app.service
        assert service is not None
        while True:
            stored = service.store.get(DEFAULT_TENANT, target.id)
            assert stored is not None
            if stored.last_retrieve_time_us is not None:
                break
            assert time.monotonic() < deadline, "upkeep never wrote the retrieval time"
            time.sleep(0.05)
    finally:
        running.stop()


# -- StreamSearchMemories -------------------------------------------------------


class CountingIndex:
    """The real index, with the number of queries of every search call noted."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def search(self, vectors: Any, queries: Any, k: int) -> Any:
        with self.lock:
            self.calls.append(len(queries))
        return self._inner.search(vectors, queries, k)


@pytest.fixture
def counted(tmp_path: Path, embedder: Embedder) -> Iterator[tuple[RunningServer, CountingIndex]]:
    running = start_server(make_settings(tmp_path / "data", limits={"max_stream_in_flight": 64}), embedder)
    service = running.app.service
    assert service is not None
    index = CountingIndex(service.index)
    service.index = index  # type: ignore[assignment]
    try:
        yield running, index
    finally:
        running.stop()


def test_stream_answers_queries_that_arrive_together_in_few_index_calls(
    counted: tuple[RunningServer, CountingIndex],
) -> None:
    server, index = counted
    rng = np.random.default_rng(3)
    uid = f"u-{uuid.uuid4().hex[:8]}"
    memories = seed_vectors(server, uid, 40, rng)
    requests = [stream_query(f"q{i}", uid, mem.embedding) for i, mem in enumerate(memories)]
    index.calls.clear()
    answers = list(server.memory.StreamSearchMemories(iter(requests)))
    assert sorted(a.query_id for a in answers) == sorted(r.query_id for r in requests)
    by_id = {a.query_id: a for a in answers}
    for i, mem in enumerate(memories):
        assert by_id[f"q{i}"].result.hits[0].memory.id == mem.id  # each answer is its own query's
    assert sum(index.calls) == len(requests)
    assert len(index.calls) < len(requests), index.calls  # batched, not one call per query


def test_a_bad_query_in_a_batch_gets_its_own_error(counted: tuple[RunningServer, CountingIndex]) -> None:
    server, _ = counted
    rng = np.random.default_rng(4)
    uid = f"u-{uuid.uuid4().hex[:8]}"
    memories = seed_vectors(server, uid, 6, rng)
    requests = []
    for i, mem in enumerate(memories):
        requests.append(stream_query(f"q{i}", uid, mem.embedding))
        if i == 2:
            requests.append(stream_query("short", uid, [1.0, 0.0]))  # wrong dimension
            requests.append(stream_query("filter", uid, mem.embedding, filter="user_id = "))  # no parse
    answers = {a.query_id: a for a in server.memory.StreamSearchMemories(iter(requests))}
    assert set(answers) == {r.query_id for r in requests}
    for name in ("short", "filter"):
        assert answers[name].WhichOneof("outcome") == "error"
        assert answers[name].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    for i, mem in enumerate(memories):
        assert answers[f"q{i}"].WhichOneof("outcome") == "result"
        assert answers[f"q{i}"].result.hits[0].memory.id == mem.id


def test_a_batch_that_fails_as_a_whole_is_answered_query_by_query(
    counted: tuple[RunningServer, CountingIndex], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, index = counted
    rng = np.random.default_rng(5)
    uid = f"u-{uuid.uuid4().hex[:8]}"
    memories = seed_vectors(server, uid, 8, rng)
    real = index.search
    poison = memories[3].embedding[0]

    def search(vectors: Any, queries: Any, k: int) -> Any:
        # Fails whenever the poisoned query is in the call: alone, it fails
        # alone; batched, it would take its neighbours with it.
        if any(abs(float(row[0]) - poison) < 1e-7 for row in vectors):
            raise RuntimeError("index broke on this query")
        return real(vectors, queries, k)

    monkeypatch.setattr(index, "search", search)
    requests = [stream_query(f"q{i}", uid, mem.embedding) for i, mem in enumerate(memories)]
    answers = {a.query_id: a for a in server.memory.StreamSearchMemories(iter(requests))}
    assert answers["q3"].WhichOneof("outcome") == "error"
    assert answers["q3"].error.code == grpc.StatusCode.INTERNAL.value[0]
    for i, mem in enumerate(memories):
        if i != 3:
            assert answers[f"q{i}"].result.hits[0].memory.id == mem.id


# -- the record table -------------------------------------------------------------


def test_hits_hydrated_from_the_record_table_show_every_change(counted: tuple[RunningServer, Any]) -> None:
    server, _ = counted
    service = server.app.service
    assert service is not None and service.records is not None
    rng = np.random.default_rng(6)
    uid = f"u-{uuid.uuid4().hex[:8]}"
    memories = seed_vectors(server, uid, 4, rng)
    target = memories[0]
    near = np.asarray(target.embedding, dtype=np.float32)

    def search_near() -> list[m.Memory]:
        # A slightly different vector each time: a result-cache miss, the same hit.
        query = near + rng.standard_normal(DIM).astype(np.float32) * 1e-3
        found = server.memory.SearchMemories(
            pb.SearchMemoriesRequest(vector=query.tolist(), scope=m.Scope(user_id=uid), top_k=1)
        )
        return list(found.hits and [h.memory for h in found.hits])

    assert search_near()[0].content == "fact 0"
    before = service.records.hits
    assert search_near()[0].content == "fact 0"
    assert service.records.hits > before  # hydrated from the table, not the store
    server.memory.UpdateMemory(
        pb.UpdateMemoryRequest(
            memory=m.Memory(id=target.id, content="fact 0, changed", embedding=list(target.embedding)),
            update_mask=field_mask(["content", "embedding"]),  # the same vector: the same hit
        )
    )
    assert search_near()[0].content == "fact 0, changed"
    server.memory.DeleteMemory(pb.DeleteMemoryRequest(id=target.id))
    assert all(hit.id != target.id for hit in search_near())


def field_mask(paths: list[str]) -> Any:
    from google.protobuf import field_mask_pb2

    return field_mask_pb2.FieldMask(paths=paths)
