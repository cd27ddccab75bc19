"""CreateMemory, GetMemory, UpdateMemory, DeleteMemory, ListMemories and
GetMemoryHistory over real gRPC against the real model and real files."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from ..conftest import RunningServer, error_of


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def create(server: RunningServer, content: str, **fields: object) -> m.Memory:
    memory = m.Memory(content=content, **fields)  # type: ignore[arg-type]
    if not (memory.user_id or memory.agent_id or memory.run_id):
        memory.user_id = user()
    return server.memory.CreateMemory(pb.CreateMemoryRequest(memory=memory)).memory


def test_create_then_get_returns_the_memory(server: RunningServer) -> None:
    uid = user()
    created = create(
        server,
        "Alice prefers green tea",
        user_id=uid,
        agent_id="helper",
        kind=m.MEMORY_KIND_SEMANTIC,
        tags=["drink", "pref", "drink"],
        metadata={
            "big": m.Value(int_value=2**63 - 1),
            "ratio": m.Value(double_value=0.5),
            "nested": m.Value(struct_value=m.Struct(fields={"x": m.Value(bool_value=True)})),
        },
    )
    assert created.id and created.version == 1 and created.revision > 0 and created.etag
    assert created.embedding_model == "all-MiniLM-L6-v2"
    assert len(created.content_hash) == 64
    assert list(created.tags) == ["drink", "pref"]
    assert len(created.embedding) == 0

    got = server.memory.GetMemory(pb.GetMemoryRequest(id=created.id)).memory
    assert got == created
    assert got.metadata["big"].int_value == 2**63 - 1
    assert got.metadata["nested"].struct_value.fields["x"].bool_value is True


def test_read_mask_limits_fields_and_can_ask_for_the_embedding(server: RunningServer) -> None:
    created = create(server, "The office is on the fourth floor")
    got = server.memory.GetMemory(
        pb.GetMemoryRequest(id=created.id, read_mask=field_mask_pb2.FieldMask(paths=["content", "embedding"]))
    ).memory
    assert got.content == created.content and got.id == created.id
    assert len(got.embedding) == 384 and not got.user_id and not got.etag
    with pytest.raises(grpc.RpcError) as err:
        server.memory.GetMemory(
            pb.GetMemoryRequest(id=created.id, read_mask=field_mask_pb2.FieldMask(paths=["nope"]))
        )
    assert error_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD_MASK", ["read_mask"])


def test_client_chosen_id_and_collision(server: RunningServer) -> None:
    memory_id = f"note-{uuid.uuid4().hex[:8]}"
    created = create(server, "first", id=memory_id)
    assert created.id == memory_id
    with pytest.raises(grpc.RpcError) as err:
        create(server, "second", id=memory_id)
    assert error_of(err.value)[:2] == (grpc.StatusCode.ALREADY_EXISTS, "MEMORY_ALREADY_EXISTS")
    assert server.memory.GetMemory(pb.GetMemoryRequest(id=memory_id)).memory.content == "first"


def test_update_changes_masked_fields_and_reembeds_new_content(server: RunningServer) -> None:
    created = create(server, "The cat is called Tom", tags=["pet"])
    vec_before = server.memory.GetMemory(
        pb.GetMemoryRequest(id=created.id, read_mask=field_mask_pb2.FieldMask(paths=["embedding"]))
    ).memory.embedding
    updated = server.memory.UpdateMemory(
        pb.UpdateMemoryRequest(
            memory=m.Memory(id=created.id, content="The dog is called Rex", tags=["ignored"]),
            update_mask=field_mask_pb2.FieldMask(paths=["content"]),
            etag=created.etag,
        )
    ).memory
    assert updated.content == "The dog is called Rex"
    assert list(updated.tags) == ["pet"]  # not in the mask
    assert updated.version == 2 and updated.revision > created.revision and updated.etag != created.etag
    vec_after = server.memory.GetMemory(
        pb.GetMemoryRequest(id=created.id, read_mask=field_mask_pb2.FieldMask(paths=["embedding"]))
    ).memory.embedding
    assert list(vec_after) != list(vec_before)
    hits = server.memory.SearchMemories(
        pb.SearchMemoriesRequest(query="a dog named Rex", scope=m.Scope(user_id=created.user_id))
    ).hits
    assert hits[0].memory.id == created.id


def test_update_with_a_stale_etag_fails_and_writes_nothing(server: RunningServer) -> None:
    created = create(server, "version one")
    server.memory.UpdateMemory(
        pb.UpdateMemoryRequest(
            memory=m.Memory(id=created.id, pinned=True),
            update_mask=field_mask_pb2.FieldMask(paths=["pinned"]),
        )
    )
    with pytest.raises(grpc.RpcError) as err:
        server.memory.UpdateMemory(
            pb.UpdateMemoryRequest(
                memory=m.Memory(id=created.id, content="lost update"),
                update_mask=field_mask_pb2.FieldMask(paths=["content"]),
                etag=created.etag,
            )
        )
    assert error_of(err.value)[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "ETAG_MISMATCH")
    got = server.memory.GetMemory(pb.GetMemoryRequest(id=created.id)).memory
    assert got.content == "version one" and got.version == 2


@pytest.mark.parametrize(
    ("paths", "reason"),
    [([], "INVALID_FIELD_MASK"), (["user_id"], "FIELD_IMMUTABLE"), (["etag"], "INVALID_FIELD_MASK")],
)
def test_update_mask_errors(server: RunningServer, paths: list[str], reason: str) -> None:
    created = create(server, "immutable scope")
    with pytest.raises(grpc.RpcError) as err:
        server.memory.UpdateMemory(
            pb.UpdateMemoryRequest(
                memory=m.Memory(id=created.id, user_id="someone-else"),
                update_mask=field_mask_pb2.FieldMask(paths=paths),
            )
        )
    assert error_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, reason, ["update_mask"])
    assert server.memory.GetMemory(pb.GetMemoryRequest(id=created.id)).memory == created


def test_delete_with_etag_and_then_not_found(server: RunningServer) -> None:
    created = create(server, "to be deleted")
    with pytest.raises(grpc.RpcError) as err:
        server.memory.DeleteMemory(pb.DeleteMemoryRequest(id=created.id, etag="stale"))
    assert error_of(err.value)[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "ETAG_MISMATCH")
    deleted = server.memory.DeleteMemory(pb.DeleteMemoryRequest(id=created.id, etag=created.etag))
    assert deleted.revision > created.revision
    for call in (
        lambda: server.memory.GetMemory(pb.GetMemoryRequest(id=created.id)),
        lambda: server.memory.DeleteMemory(pb.DeleteMemoryRequest(id=created.id)),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert error_of(err.value)[:2] == (grpc.StatusCode.NOT_FOUND, "MEMORY_NOT_FOUND")
    hits = server.memory.SearchMemories(
        pb.SearchMemoriesRequest(query="to be deleted", scope=m.Scope(user_id=created.user_id))
    ).hits
    assert hits == []


def test_ttl_expires_a_memory_from_every_read(server: RunningServer) -> None:
    uid = user()
    created = server.memory.CreateMemory(
        pb.CreateMemoryRequest(
            memory=m.Memory(user_id=uid, content="a short-lived note"),
            ttl=duration_pb2.Duration(nanos=300_000_000),
        )
    ).memory
    assert created.HasField("expire_time")
    assert server.memory.SearchMemories(
        pb.SearchMemoriesRequest(query="short-lived note", scope=m.Scope(user_id=uid))
    ).hits
    import time

    time.sleep(0.4)
    with pytest.raises(grpc.RpcError) as err:
        server.memory.GetMemory(pb.GetMemoryRequest(id=created.id))
    assert error_of(err.value)[1] == "MEMORY_NOT_FOUND"
    assert not server.memory.SearchMemories(
        pb.SearchMemoriesRequest(query="short-lived note", scope=m.Scope(user_id=uid))
    ).hits
    assert not server.memory.ListMemories(pb.ListMemoriesRequest(scope=m.Scope(user_id=uid))).memories
    # Expired is gone for a create too, swept yet or not: the id is free again.
    again = server.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(id=created.id, user_id=uid, content="a new life"))
    ).memory
    assert again.version == 1
    versions = server.memory.GetMemoryHistory(pb.GetMemoryHistoryRequest(id=created.id)).versions
    assert [v.after.content for v in versions] == ["a new life"]


def test_list_pages_to_the_end_in_order(server: RunningServer) -> None:
    uid = user()
    ids = [create(server, f"memory number {i}", user_id=uid).id for i in range(7)]
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = server.memory.ListMemories(
            pb.ListMemoriesRequest(
                scope=m.Scope(user_id=uid), page_size=3, page_token=token, order_by="create_time"
            )
        )
        seen += [x.id for x in page.memories]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == ids and pages == 3
    newest_first = server.memory.ListMemories(pb.ListMemoriesRequest(scope=m.Scope(user_id=uid)))
    assert [x.id for x in newest_first.memories] == ids[::-1]


def test_list_filter_and_foreign_page_token(server: RunningServer) -> None:
    uid = user()
    for i in range(4):
        create(server, f"tagged {i}", user_id=uid, tags=["even" if i % 2 == 0 else "odd"])
    page = server.memory.ListMemories(
        pb.ListMemoriesRequest(scope=m.Scope(user_id=uid), filter='tags:"even"', page_size=1)
    )
    assert len(page.memories) == 1 and page.next_page_token
    with pytest.raises(grpc.RpcError) as err:
        server.memory.ListMemories(
            pb.ListMemoriesRequest(
                scope=m.Scope(user_id=uid), filter='tags:"odd"', page_size=1, page_token=page.next_page_token
            )
        )
    assert error_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN", ["page_token"])
    for bad in ("garbage!", "eyJ4IjoxfQ"):
        with pytest.raises(grpc.RpcError) as err:
            server.memory.ListMemories(pb.ListMemoriesRequest(scope=m.Scope(user_id=uid), page_token=bad))
        assert error_of(err.value)[1] == "INVALID_PAGE_TOKEN"


def test_history_records_every_version(server: RunningServer) -> None:
    created = create(server, "v1")
    server.memory.UpdateMemory(
        pb.UpdateMemoryRequest(
            memory=m.Memory(id=created.id, content="v2"),
            update_mask=field_mask_pb2.FieldMask(paths=["content"]),
        )
    )
    history = server.memory.GetMemoryHistory(pb.GetMemoryHistoryRequest(id=created.id))
    assert [v.version for v in history.versions] == [2, 1]
    latest = history.versions[0]
    assert latest.change_type == pb.CHANGE_TYPE_UPDATE
    assert latest.before.content == "v1" and latest.after.content == "v2"
    assert list(latest.changed_fields.paths) == ["content"]
    assert history.versions[1].change_type == pb.CHANGE_TYPE_CREATE
    first = server.memory.GetMemoryHistory(pb.GetMemoryHistoryRequest(id=created.id, page_size=1))
    assert len(first.versions) == 1 and first.next_page_token
    second = server.memory.GetMemoryHistory(
        pb.GetMemoryHistoryRequest(id=created.id, page_size=1, page_token=first.next_page_token)
    )
    assert [v.version for v in second.versions] == [1] and not second.next_page_token
