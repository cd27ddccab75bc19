"""Tenant isolation through every MemoryService RPC: a key of tenant A cannot
see, search, watch, export, change or delete anything of tenant B."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import grpc

from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from ..conftest import RunningServer, error_of
from .conftest import As, create, new_key, tenant_name

NOT_FOUND = (grpc.StatusCode.NOT_FOUND, "MEMORY_NOT_FOUND")


def not_found(call: Any) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except grpc.RpcError as exc:
        code, reason, _ = error_of(exc)
        return code, reason
    raise AssertionError("the call succeeded")


class Watch:
    def __init__(self, who: As, request: pb.WatchMemoriesRequest) -> None:
        self.call = who.memory.WatchMemories(request)
        self.items: queue.Queue[Any] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for response in self.call:
                self.items.put(response)
        except grpc.RpcError as exc:
            self.items.put(exc)

    def collect(self, seconds: float) -> list[pb.WatchMemoriesResponse]:
        out = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                item = self.items.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            assert not isinstance(item, grpc.RpcError), item
            out.append(item)
        return out


def test_a_key_of_one_tenant_reaches_nothing_of_another_by_any_rpc(secure: RunningServer) -> None:
    a = new_key(secure, "writer", tenant=tenant_name())
    b = new_key(secure, "writer", tenant=tenant_name())
    secret = "the launch code is 0000, known only to tenant B"
    theirs = create(b, secret, user_id="alice", memory_id="shared-id")
    other = create(b, "tenant B likes green tea", user_id="alice")
    covered: set[str] = set()

    def rpc(name: str) -> None:
        covered.add(name)

    # Watch from the start of the log, and live while B keeps writing.
    watch = Watch(
        a,
        pb.WatchMemoriesRequest(
            scope={"user_id": "alice"}, start_revision=0, progress_interval={"nanos": 200_000_000}
        ),
    )
    rpc("WatchMemories")

    assert not_found(lambda: a.memory.GetMemory(pb.GetMemoryRequest(id=theirs.id))) == NOT_FOUND
    rpc("GetMemory")
    assert not_found(lambda: a.memory.GetMemoryHistory(pb.GetMemoryHistoryRequest(id=theirs.id))) == NOT_FOUND
    rpc("GetMemoryHistory")
    assert (
        not_found(
            lambda: a.memory.UpdateMemory(
                pb.UpdateMemoryRequest(
                    memory={"id": theirs.id, "content": "overwritten"}, update_mask={"paths": ["content"]}
                )
            )
        )
        == NOT_FOUND
    )
    rpc("UpdateMemory")
    assert not_found(lambda: a.memory.DeleteMemory(pb.DeleteMemoryRequest(id=theirs.id))) == NOT_FOUND
    rpc("DeleteMemory")

    for scope in ({"user_id": "alice"}, {}):
        assert list(a.memory.ListMemories(pb.ListMemoriesRequest(scope=scope)).memories) == []
    rpc("ListMemories")
    for scope in ({"user_id": "alice"}, {}):
        hits = a.memory.SearchMemories(pb.SearchMemoriesRequest(query=secret, scope=scope, top_k=50)).hits
        assert list(hits) == []
    rpc("SearchMemories")
    vector = b.memory.GetMemory(
        pb.GetMemoryRequest(id=theirs.id, read_mask={"paths": ["embedding"]})
    ).memory.embedding
    assert len(vector) > 0
    batch = a.memory.BatchSearchMemories(
        pb.BatchSearchMemoriesRequest(
            requests=[pb.SearchMemoriesRequest(query=secret), pb.SearchMemoriesRequest(vector=list(vector))]
        )
    )
    assert [list(r.hits) for r in batch.results] == [[], []]
    rpc("BatchSearchMemories")
    streamed = list(
        a.memory.StreamSearchMemories(
            iter(
                [
                    pb.StreamSearchMemoriesRequest(
                        query_id="q1", search=pb.SearchMemoriesRequest(query=secret, top_k=50)
                    )
                ]
            )
        )
    )
    assert [r.query_id for r in streamed] == ["q1"] and list(streamed[0].result.hits) == []
    rpc("StreamSearchMemories")
    exported = list(a.memory.ExportMemories(pb.ExportMemoriesRequest()))
    assert [e.WhichOneof("item") for e in exported] == ["header"]
    exported = list(a.memory.ExportMemories(pb.ExportMemoriesRequest(scope={"user_id": "alice"})))
    assert [e.WhichOneof("item") for e in exported] == ["header"]
    rpc("ExportMemories")

    written = a.memory.BatchWriteMemories(
        pb.BatchWriteMemoriesRequest(
            operations=[
                pb.WriteOperation(
                    update=pb.UpdateMemoryRequest(
                        memory={"id": theirs.id, "content": "x"}, update_mask={"paths": ["content"]}
                    )
                ),
                pb.WriteOperation(delete=pb.DeleteMemoryRequest(id=other.id)),
            ]
        )
    )
    assert [r.status.code for r in written.results] == [grpc.StatusCode.NOT_FOUND.value[0]] * 2
    rpc("BatchWriteMemories")
    dry = a.memory.DeleteMemories(pb.DeleteMemoriesRequest(scope={"user_id": "alice"}, dry_run=True))
    assert dry.deleted_count == 0
    forgot = a.memory.DeleteMemories(pb.DeleteMemoriesRequest(filter='user_id = "alice" OR kind = EPISODIC'))
    assert forgot.deleted_count == 0
    rpc("DeleteMemories")

    # The same id in A is A's own memory: creating and importing it leaves B's alone.
    mine = create(a, "tenant A's memory with the same id", user_id="alice", memory_id="shared-id")
    assert mine.id == theirs.id
    rpc("CreateMemory")
    imported = a.memory.ImportMemories(
        iter(
            [
                pb.ImportMemoriesRequest(options={"on_conflict": pb.IMPORT_CONFLICT_POLICY_OVERWRITE}),
                pb.ImportMemoriesRequest(header={"format_version": 1, "embedding_model": "none"}),
                pb.ImportMemoriesRequest(
                    memory=m.Memory(id=other.id, user_id="alice", content="imported by A")
                ),
            ]
        )
    )
    assert imported.imported_count == 1
    rpc("ImportMemories")

    # B writes while A watches: A sees only its own changes, never B's.
    create(b, "written by B during A's watch", user_id="alice")
    responses = watch.collect(1.5)
    watch.call.cancel()
    assert any(r.progress_notification for r in responses)
    seen = {e.memory_id for r in responses for e in r.events}
    assert theirs.id in seen  # A's own "shared-id"
    assert seen <= {mine.id, other.id}
    assert all(e.memory.content != secret for r in responses for e in r.events)

    # B's memories are untouched.
    assert b.memory.GetMemory(pb.GetMemoryRequest(id=theirs.id)).memory.content == secret
    assert b.memory.GetMemory(pb.GetMemoryRequest(id=other.id)).memory.content == "tenant B likes green tea"
    history = b.memory.GetMemoryHistory(pb.GetMemoryHistoryRequest(id=theirs.id)).versions
    assert [v.api_key_id for v in history] == [b.key_id]

    every = {method.name for method in pb.DESCRIPTOR.services_by_name["MemoryService"].methods}
    assert covered == every, f"RPCs without an isolation check: {sorted(every - covered)}"
