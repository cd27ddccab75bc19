"""What a key restricted to users, or an admin of one tenant, can learn about
what lies outside its reach: nothing, not even that it exists."""

from __future__ import annotations

import grpc

from mnemo.v1 import admin_service_pb2 as admin_pb
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from ..conftest import RunningServer, error_of
from .conftest import As, create, fails, new_key, tenant_name

NOT_FOUND = (grpc.StatusCode.NOT_FOUND, "MEMORY_NOT_FOUND")
ID_FORBIDDEN = (grpc.StatusCode.PERMISSION_DENIED, "MEMORY_ID_FORBIDDEN")


def update(who: As, memory_id: str, content: str) -> None:
    who.memory.UpdateMemory(
        pb.UpdateMemoryRequest(
            memory={"id": memory_id, "content": content}, update_mask={"paths": ["content"]}
        )
    )


def history(who: As, memory_id: str, page_size: int = 0) -> list[pb.MemoryVersion]:
    out: list[pb.MemoryVersion] = []
    token = ""
    while True:
        page = who.memory.GetMemoryHistory(
            pb.GetMemoryHistoryRequest(id=memory_id, page_size=page_size, page_token=token)
        )
        out.extend(page.versions)
        token = page.next_page_token
        if not token:
            return out


def test_a_reused_id_shows_only_its_own_life_to_each_user(secure: RunningServer) -> None:
    tenant = tenant_name()
    full = new_key(secure, "writer", tenant=tenant)
    alice = new_key(secure, "reader", tenant=tenant, user_ids=("alice",))
    bob = new_key(secure, "reader", tenant=tenant, user_ids=("bob",))
    for memory_id, bob_versions, alice_versions in (("short-past", 3, 6), ("long-past", 8, 2)):
        create(full, "bob's secret v1", user_id="bob", memory_id=memory_id)
        for v in range(2, bob_versions + 1):
            update(full, memory_id, f"bob's secret v{v}")
        full.memory.DeleteMemory(pb.DeleteMemoryRequest(id=memory_id))
        create(full, "alice v1", user_id="alice", memory_id=memory_id)
        for v in range(2, alice_versions + 1):
            update(full, memory_id, f"alice v{v}")

        for page_size in (0, 2):
            shown = history(alice, memory_id, page_size)
            assert [v.version for v in shown] == list(range(alice_versions, 0, -1))
            assert "bob" not in str(shown)
        # Bob's memory is gone: its old life is not his to read through a new one.
        assert (
            fails(lambda: bob.memory.GetMemoryHistory(pb.GetMemoryHistoryRequest(id=memory_id))) == NOT_FOUND
        )
        assert "bob" not in str(history(full, memory_id))


def test_a_restricted_key_cannot_probe_ids_by_creating_them(secure: RunningServer) -> None:
    tenant = tenant_name()
    full = new_key(secure, "writer", tenant=tenant)
    alice = new_key(secure, "writer", tenant=tenant, user_ids=("alice",))
    bobs = create(full, "bob's note", user_id="bob", memory_id="taken-id")
    assert fails(lambda: alice.memory.GetMemory(pb.GetMemoryRequest(id=bobs.id))) == NOT_FOUND
    # Taken or free, a chosen id gets the same answer: no oracle.
    for memory_id in ("taken-id", "free-id"):
        with_id = lambda memory_id=memory_id: create(alice, "mine", user_id="alice", memory_id=memory_id)  # noqa: E731
        try:
            with_id()
        except grpc.RpcError as exc:
            code, reason, fields = error_of(exc)
            assert (code, reason, fields) == (*ID_FORBIDDEN, ["memory.id"])
        else:
            raise AssertionError("a restricted key chose an id")
    batch = alice.memory.BatchWriteMemories(
        pb.BatchWriteMemoriesRequest(
            operations=[
                pb.WriteOperation(
                    create=pb.CreateMemoryRequest(
                        memory={"id": "taken-id", "user_id": "alice", "content": "x"}
                    )
                ),
                pb.WriteOperation(
                    create=pb.CreateMemoryRequest(memory={"user_id": "alice", "content": "ok"})
                ),
            ]
        )
    )
    assert [r.status.code for r in batch.results] == [
        grpc.StatusCode.PERMISSION_DENIED.value[0],
        grpc.StatusCode.OK.value[0],
    ]
    assert batch.results[0].status.message and "taken" not in batch.results[0].status.message
    imported = alice.memory.ImportMemories(
        iter(
            [
                pb.ImportMemoriesRequest(header=pb.ExportHeader(format_version=1)),
                pb.ImportMemoriesRequest(memory=m.Memory(id="taken-id", user_id="alice", content="x")),
                pb.ImportMemoriesRequest(memory=m.Memory(id="free-id", user_id="alice", content="y")),
            ]
        )
    )
    assert imported.imported_count == 0 and len(imported.failures) == 2
    assert {f.status.code for f in imported.failures} == {grpc.StatusCode.PERMISSION_DENIED.value[0]}
    # Server-assigned ids still work, and an unrestricted key keeps choosing.
    assert create(alice, "assigned", user_id="alice").id
    assert create(full, "chosen", user_id="alice", memory_id="chosen-id").id == "chosen-id"
    assert full.memory.GetMemory(pb.GetMemoryRequest(id="taken-id")).memory.content == "bob's note"


def test_a_tenant_admin_sees_only_its_own_tenant_in_stats(secure: RunningServer) -> None:
    mine, theirs = tenant_name(), tenant_name()
    admin = new_key(secure, "admin", tenant=mine)
    create(new_key(secure, "writer", tenant=mine), "ours", user_id="u")
    create(new_key(secure, "writer", tenant=theirs), "theirs", user_id="u")
    stats = admin.admin.GetStats(admin_pb.GetStatsRequest())
    assert [t.tenant for t in stats.tenants] == [mine]
    assert stats.shards and theirs not in str(stats)
    assert sum(s.vector_count for s in stats.shards) == 1
    system = new_key(secure, "admin")
    everything = str(system.admin.GetStats(admin_pb.GetStatsRequest()))
    assert mine in everything and theirs in everything
