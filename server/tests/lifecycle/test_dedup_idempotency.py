"""Dedup in its three modes, idempotent retries, etags under concurrency, links."""

from __future__ import annotations

import threading
import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2

from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from ..conftest import RunningServer, error_of


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def create(server: RunningServer, uid: str, content: str, **request: object) -> pb.CreateMemoryResponse:
    return server.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content=content), **request)
    )  # type: ignore[arg-type]


def count(server: RunningServer, uid: str) -> int:
    return len(server.memory.ListMemories(pb.ListMemoriesRequest(scope=m.Scope(user_id=uid))).memories)


def test_no_dedup_stores_every_copy(server: RunningServer) -> None:
    uid = user()
    for mode in (pb.DEDUP_MODE_UNSPECIFIED, pb.DEDUP_MODE_NONE):
        assert not create(server, uid, "I live in Paris", dedup=pb.DedupPolicy(mode=mode)).deduplicated
    assert count(server, uid) == 2


def test_exact_dedup_matches_normalized_content_in_the_same_scope(server: RunningServer) -> None:
    uid = user()
    first = create(server, uid, "I live in Paris")
    exact = pb.DedupPolicy(mode=pb.DEDUP_MODE_EXACT)
    again = create(server, uid, "  I live   in Paris ", dedup=exact)
    assert again.deduplicated and again.memory.id == first.memory.id and again.similarity == 1.0
    assert not create(server, uid, "I live in Rome", dedup=exact).deduplicated
    assert not create(server, user(), "I live in Paris", dedup=exact).deduplicated
    assert count(server, uid) == 2


def test_semantic_dedup_uses_the_threshold_and_can_merge(server: RunningServer) -> None:
    uid = user()
    first = create(server, uid, "My favourite colour is blue")
    near = server.memory.CreateMemory(
        pb.CreateMemoryRequest(
            memory=m.Memory(
                user_id=uid,
                content="My favorite color is blue",
                tags=["colour"],
                metadata={"source": m.Value(string_value="chat")},
            ),
            dedup=pb.DedupPolicy(mode=pb.DEDUP_MODE_SEMANTIC, merge=True),
        )
    )
    assert near.deduplicated and near.memory.id == first.memory.id and near.similarity >= 0.9
    assert list(near.memory.tags) == ["colour"] and near.memory.metadata["source"].string_value == "chat"
    assert near.memory.version == 2 and near.memory.content == "My favourite colour is blue"
    far = create(server, uid, "I own a red car", dedup=pb.DedupPolicy(mode=pb.DEDUP_MODE_SEMANTIC))
    assert not far.deduplicated
    strict = create(
        server,
        uid,
        "My favourite colour is dark blue",
        dedup=pb.DedupPolicy(mode=pb.DEDUP_MODE_SEMANTIC, similarity_threshold=0.999),
    )
    assert not strict.deduplicated
    assert count(server, uid) == 3


def test_dedup_in_a_batch(server: RunningServer) -> None:
    uid = user()
    exact = pb.DedupPolicy(mode=pb.DEDUP_MODE_EXACT)
    response = server.memory.BatchWriteMemories(
        pb.BatchWriteMemoriesRequest(
            operations=[
                pb.WriteOperation(
                    create=pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content="same"), dedup=exact)
                ),
                pb.WriteOperation(
                    create=pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content="same"), dedup=exact)
                ),
            ]
        )
    )
    first, second = (r.create for r in response.results)
    assert not first.deduplicated and second.deduplicated and second.memory.id == first.memory.id
    assert count(server, uid) == 1


def test_a_retried_create_returns_the_original_and_writes_nothing(server: RunningServer) -> None:
    uid = user()
    request_id = uuid.uuid4().hex
    first = create(server, uid, "only once", request_id=request_id)
    again = create(server, uid, "only once", request_id=request_id)
    assert again == first
    assert count(server, uid) == 1
    with pytest.raises(grpc.RpcError) as err:
        create(server, uid, "something else", request_id=request_id)
    assert error_of(err.value)[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "REQUEST_ID_REUSED")


def test_retried_update_delete_and_batch_are_idempotent(server: RunningServer) -> None:
    uid = user()
    memory = create(server, uid, "v1").memory
    update = pb.UpdateMemoryRequest(
        memory=m.Memory(id=memory.id, content="v2"),
        update_mask=field_mask_pb2.FieldMask(paths=["content"]),
        request_id="upd-" + uid,
    )
    assert server.memory.UpdateMemory(update) == server.memory.UpdateMemory(update)
    assert server.memory.GetMemory(pb.GetMemoryRequest(id=memory.id)).memory.version == 2
    delete = pb.DeleteMemoryRequest(id=memory.id, request_id="del-" + uid)
    assert server.memory.DeleteMemory(delete) == server.memory.DeleteMemory(delete)
    batch = pb.BatchWriteMemoriesRequest(
        request_id="batch-" + uid,
        operations=[
            pb.WriteOperation(create=pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content="b1"))),
            pb.WriteOperation(delete=pb.DeleteMemoryRequest(id="missing")),
        ],
    )
    first, second = server.memory.BatchWriteMemories(batch), server.memory.BatchWriteMemories(batch)
    assert second.results[0].create == first.results[0].create and second.revision == first.revision
    # The replayed error is the original one; only the call's own request id differs.
    assert [(r.status.code, r.status.message) for r in second.results] == [
        (r.status.code, r.status.message) for r in first.results
    ]
    assert count(server, uid) == 1


def test_concurrent_updates_with_one_etag_exactly_one_wins(server: RunningServer) -> None:
    uid = user()
    memory = create(server, uid, "contended").memory
    results: list[str] = []

    def attempt(i: int) -> None:
        try:
            server.memory.UpdateMemory(
                pb.UpdateMemoryRequest(
                    memory=m.Memory(id=memory.id, content=f"writer {i}"),
                    update_mask=field_mask_pb2.FieldMask(paths=["content"]),
                    etag=memory.etag,
                )
            )
            results.append(f"ok {i}")
        except grpc.RpcError as exc:
            results.append(error_of(exc)[1])

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r.startswith("ok")]
    assert len(winners) == 1 and results.count("ETAG_MISMATCH") == 7
    final = server.memory.GetMemory(pb.GetMemoryRequest(id=memory.id)).memory
    assert final.content == "writer " + winners[0].split()[1] and final.version == 2


def test_deleting_a_memory_removes_links_to_it(server: RunningServer) -> None:
    uid = user()
    target = create(server, uid, "the target").memory
    other = create(server, uid, "another target").memory
    source = server.memory.CreateMemory(
        pb.CreateMemoryRequest(
            memory=m.Memory(
                user_id=uid,
                content="links to both",
                links=[
                    m.MemoryLink(target_id=target.id, relation="mentions", weight=0.5),
                    m.MemoryLink(target_id=other.id, relation="contradicts"),
                ],
            )
        )
    ).memory
    assert [(link.target_id, link.relation, link.weight) for link in source.links] == [
        (target.id, "mentions", 0.5),
        (other.id, "contradicts", 0.0),
    ]
    server.memory.DeleteMemory(pb.DeleteMemoryRequest(id=target.id))
    after = server.memory.GetMemory(pb.GetMemoryRequest(id=source.id)).memory
    assert [link.target_id for link in after.links] == [other.id] and after.version == 2


def test_kind_is_stored_and_filterable(server: RunningServer) -> None:
    uid = user()
    for kind in (m.MEMORY_KIND_EPISODIC, m.MEMORY_KIND_SEMANTIC, m.MEMORY_KIND_PROCEDURAL):
        server.memory.CreateMemory(
            pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content=f"k{kind}", kind=kind))
        )
    listed = server.memory.ListMemories(
        pb.ListMemoriesRequest(scope=m.Scope(user_id=uid), filter="kind = PROCEDURAL")
    )
    assert [x.kind for x in listed.memories] == [m.MEMORY_KIND_PROCEDURAL]
