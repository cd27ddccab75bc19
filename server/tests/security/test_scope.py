"""Keys restricted to users or agents: scope-wide calls must name an allowed
user (SCOPE_FORBIDDEN otherwise); calls by id answer MEMORY_NOT_FOUND for
memories outside, so existence does not leak."""

from __future__ import annotations

import grpc

from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from ..conftest import RunningServer
from .conftest import create, fails, new_key, tenant_name

SCOPE = (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_FORBIDDEN")
NOT_FOUND = (grpc.StatusCode.NOT_FOUND, "MEMORY_NOT_FOUND")


def test_a_key_restricted_to_a_user_cannot_reach_other_users(secure: RunningServer) -> None:
    tenant = tenant_name()
    full = new_key(secure, "writer", tenant=tenant)
    alice = new_key(secure, "writer", tenant=tenant, user_ids=("alice",))
    bobs = create(full, "bob's private note", user_id="bob")
    agents = create(full, "an agent-wide note", user_id="", agent_id="planner")
    own = create(alice, "alice's note", user_id="alice")

    # Writes for other users are refused, alone in a batch.
    assert fails(lambda: create(alice, "for bob", user_id="bob")) == SCOPE
    assert fails(lambda: create(alice, "agent only", user_id="", agent_id="planner")) == SCOPE
    batch = alice.memory.BatchWriteMemories(
        pb.BatchWriteMemoriesRequest(
            operations=[
                pb.WriteOperation(
                    create=pb.CreateMemoryRequest(memory={"user_id": "alice", "content": "ok"})
                ),
                pb.WriteOperation(create=pb.CreateMemoryRequest(memory={"user_id": "bob", "content": "no"})),
                pb.WriteOperation(delete=pb.DeleteMemoryRequest(id=bobs.id)),
            ]
        )
    )
    assert [r.status.code for r in batch.results] == [
        grpc.StatusCode.OK.value[0],
        grpc.StatusCode.PERMISSION_DENIED.value[0],
        grpc.StatusCode.NOT_FOUND.value[0],
    ]
    atomic = alice.memory.BatchWriteMemories(
        pb.BatchWriteMemoriesRequest(
            atomic=True,
            operations=[
                pb.WriteOperation(
                    create=pb.CreateMemoryRequest(memory={"user_id": "alice", "content": "ok"})
                ),
                pb.WriteOperation(create=pb.CreateMemoryRequest(memory={"user_id": "bob", "content": "no"})),
            ],
        )
    )
    assert [r.status.code for r in atomic.results] == [
        grpc.StatusCode.ABORTED.value[0],
        grpc.StatusCode.PERMISSION_DENIED.value[0],
    ]

    # Calls by id: memories outside do not exist for the key.
    for memory_id in (bobs.id, agents.id):
        assert fails(lambda: alice.memory.GetMemory(pb.GetMemoryRequest(id=memory_id))) == NOT_FOUND
        assert (
            fails(lambda: alice.memory.GetMemoryHistory(pb.GetMemoryHistoryRequest(id=memory_id)))
            == NOT_FOUND
        )
        assert (
            fails(
                lambda: alice.memory.UpdateMemory(
                    pb.UpdateMemoryRequest(
                        memory={"id": memory_id, "content": "x"}, update_mask={"paths": ["content"]}
                    )
                )
            )
            == NOT_FOUND
        )
        assert fails(lambda: alice.memory.DeleteMemory(pb.DeleteMemoryRequest(id=memory_id))) == NOT_FOUND
    # ... nor can it link to them.
    code, reason = fails(
        lambda: alice.memory.UpdateMemory(
            pb.UpdateMemoryRequest(
                memory={"id": own.id, "links": [{"target_id": bobs.id, "relation": "see"}]},
                update_mask={"paths": ["links"]},
            )
        )
    )
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LINK_TARGET_NOT_FOUND")

    # Scope-wide calls must name alice.
    for scope in ({"user_id": "bob"}, {}, {"agent_id": "planner"}):
        search = pb.SearchMemoriesRequest(query="note", scope=scope)
        assert fails(lambda: alice.memory.ListMemories(pb.ListMemoriesRequest(scope=scope))) == SCOPE
        assert fails(lambda: alice.memory.SearchMemories(search)) == SCOPE
        assert (
            fails(lambda: alice.memory.BatchSearchMemories(pb.BatchSearchMemoriesRequest(requests=[search])))
            == SCOPE
        )
        assert fails(lambda: alice.memory.ExportMemories(pb.ExportMemoriesRequest(scope=scope))) == SCOPE
        assert fails(lambda: alice.memory.WatchMemories(pb.WatchMemoriesRequest(scope=scope))) == SCOPE
        assert (
            fails(
                lambda: alice.memory.DeleteMemories(pb.DeleteMemoriesRequest(scope=scope, filter='tags:"x"'))
            )
            == SCOPE
        )
    streamed = list(
        alice.memory.StreamSearchMemories(
            iter(
                [pb.StreamSearchMemoriesRequest(query_id="q", search=pb.SearchMemoriesRequest(query="note"))]
            )
        )
    )
    assert streamed[0].error.code == grpc.StatusCode.PERMISSION_DENIED.value[0]

    # A filter cannot widen the scope.
    listed = alice.memory.ListMemories(
        pb.ListMemoriesRequest(scope={"user_id": "alice"}, filter='user_id = "bob"')
    )
    assert list(listed.memories) == []
    hits = alice.memory.SearchMemories(
        pb.SearchMemoriesRequest(query="bob's private note", scope={"user_id": "alice"}, top_k=50)
    ).hits
    assert {h.memory.user_id for h in hits} == {"alice"}

    # Import of another user's memory fails alone; alice's is imported.
    imported = alice.memory.ImportMemories(
        iter(
            [
                pb.ImportMemoriesRequest(options={"on_conflict": pb.IMPORT_CONFLICT_POLICY_OVERWRITE}),
                pb.ImportMemoriesRequest(header={"format_version": 1}),
                pb.ImportMemoriesRequest(memory=m.Memory(id=bobs.id, user_id="alice", content="take over")),
                pb.ImportMemoriesRequest(memory=m.Memory(user_id="bob", content="for bob")),
                pb.ImportMemoriesRequest(memory=m.Memory(user_id="alice", content="for alice")),
            ]
        )
    )
    assert imported.imported_count == 1 and imported.failed_count == 2
    assert full.memory.GetMemory(pb.GetMemoryRequest(id=bobs.id)).memory.content == "bob's private note"

    # Within its scope the key works, and forgetting alice leaves bob alone.
    assert own.id in {
        x.id for x in alice.memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": "alice"})).memories
    }
    forgot = alice.memory.DeleteMemories(pb.DeleteMemoriesRequest(scope={"user_id": "alice"}))
    assert forgot.deleted_count >= 1 and bobs.id not in forgot.memory_ids
    assert full.memory.GetMemory(pb.GetMemoryRequest(id=bobs.id)).memory.user_id == "bob"


def test_a_key_restricted_to_agents_and_users_needs_both(secure: RunningServer) -> None:
    tenant = tenant_name()
    key = new_key(secure, "writer", tenant=tenant, user_ids=("alice", "carol"), agent_ids=("planner",))
    create(key, "ok", user_id="carol", agent_id="planner")
    assert fails(lambda: create(key, "wrong agent", user_id="alice", agent_id="coder")) == SCOPE
    assert fails(lambda: create(key, "no agent", user_id="alice")) == SCOPE
    ok = key.memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": "carol", "agent_id": "planner"}))
    assert len(ok.memories) == 1
    assert fails(lambda: key.memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": "carol"}))) == SCOPE


def test_a_cached_result_is_no_way_around_a_scope_restriction(secure: RunningServer) -> None:
    tenant = tenant_name()
    full = new_key(secure, "writer", tenant=tenant)
    alice = new_key(secure, "reader", tenant=tenant, user_ids=("alice",))
    create(full, "bob's cached secret", user_id="bob")
    request = pb.SearchMemoriesRequest(query="cached secret", scope=m.Scope(user_id="bob"))
    # The full key's search fills the result cache for bob's scope...
    assert full.memory.SearchMemories(request).hits
    assert full.memory.SearchMemories(request).hits
    # ...which the restricted key still may not read.
    assert fails(lambda: alice.memory.SearchMemories(request)) == SCOPE
