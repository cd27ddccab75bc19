"""Roles: a reader only reads, a writer also writes, an admin also runs
AdminService; server-wide admin calls need the system tenant."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from mnemo.v1 import admin_service_pb2 as admin_pb
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from ..conftest import RunningServer
from .conftest import BOOTSTRAP, As, Keyed, create, fails, new_key, tenant_name

FORBIDDEN = (grpc.StatusCode.PERMISSION_DENIED, "ROLE_FORBIDDEN")


def write_calls(who: As, memory_id: str) -> dict[str, Callable[[], Any]]:
    """One call of every write RPC of MemoryService."""
    return {
        "CreateMemory": lambda: who.memory.CreateMemory(
            pb.CreateMemoryRequest(memory={"user_id": "u1", "content": "reader wrote this"})
        ),
        "UpdateMemory": lambda: who.memory.UpdateMemory(
            pb.UpdateMemoryRequest(
                memory={"id": memory_id, "content": "changed"}, update_mask={"paths": ["content"]}
            )
        ),
        "DeleteMemory": lambda: who.memory.DeleteMemory(pb.DeleteMemoryRequest(id=memory_id)),
        "BatchWriteMemories": lambda: who.memory.BatchWriteMemories(
            pb.BatchWriteMemoriesRequest(
                operations=[pb.WriteOperation(delete=pb.DeleteMemoryRequest(id=memory_id))]
            )
        ),
        "ImportMemories": lambda: who.memory.ImportMemories(
            iter(
                [
                    pb.ImportMemoriesRequest(header={"format_version": 1}),
                    pb.ImportMemoriesRequest(memory=m.Memory(user_id="u1", content="imported")),
                ]
            )
        ),
        "DeleteMemories": lambda: who.memory.DeleteMemories(
            pb.DeleteMemoriesRequest(scope={"user_id": "u1"})
        ),
    }


def read_calls(who: As, memory_id: str) -> dict[str, Callable[[], Any]]:
    """One call of every read RPC of MemoryService."""
    search = pb.SearchMemoriesRequest(query="tea", scope={"user_id": "u1"})
    return {
        "GetMemory": lambda: who.memory.GetMemory(pb.GetMemoryRequest(id=memory_id)),
        "ListMemories": lambda: who.memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": "u1"})),
        "SearchMemories": lambda: who.memory.SearchMemories(search),
        "BatchSearchMemories": lambda: who.memory.BatchSearchMemories(
            pb.BatchSearchMemoriesRequest(requests=[search])
        ),
        "StreamSearchMemories": lambda: list(
            who.memory.StreamSearchMemories(
                iter([pb.StreamSearchMemoriesRequest(query_id="q", search=search)])
            )
        ),
        "WatchMemories": lambda: next(
            iter(who.memory.WatchMemories(pb.WatchMemoriesRequest(scope={"user_id": "u1"})))
        ),
        "ExportMemories": lambda: list(
            who.memory.ExportMemories(pb.ExportMemoriesRequest(scope={"user_id": "u1"}))
        ),
        "GetMemoryHistory": lambda: who.memory.GetMemoryHistory(pb.GetMemoryHistoryRequest(id=memory_id)),
    }


def admin_calls(who: As) -> dict[str, Callable[[], Any]]:
    """One call of every AdminService RPC."""
    return {
        "GetStats": lambda: who.admin.GetStats(admin_pb.GetStatsRequest()),
        "CheckConsistency": lambda: who.admin.CheckConsistency(admin_pb.CheckConsistencyRequest()),
        "CreateSnapshot": lambda: who.admin.CreateSnapshot(admin_pb.CreateSnapshotRequest()),
        "ReembedMemories": lambda: list(
            who.admin.ReembedMemories(admin_pb.ReembedMemoriesRequest(dry_run=True))
        ),
        "CreateApiKey": lambda: who.admin.CreateApiKey(
            admin_pb.CreateApiKeyRequest(role=admin_pb.API_KEY_ROLE_READER)
        ),
        "ListApiKeys": lambda: who.admin.ListApiKeys(admin_pb.ListApiKeysRequest()),
        "RevokeApiKey": lambda: who.admin.RevokeApiKey(admin_pb.RevokeApiKeyRequest(id="nope")),
    }


def every_rpc(service: Any, service_name: str) -> set[str]:
    return {method.name for method in service.DESCRIPTOR.services_by_name[service_name].methods}


def test_the_tables_cover_every_rpc(secure: RunningServer) -> None:
    who = As(secure, None)
    assert set(write_calls(who, "x")) | set(read_calls(who, "x")) == every_rpc(pb, "MemoryService")
    assert set(admin_calls(who)) == every_rpc(admin_pb, "AdminService")


def test_a_reader_reads_but_cannot_write_or_administer(secure: RunningServer) -> None:
    tenant = tenant_name()
    writer = new_key(secure, "writer", tenant=tenant)
    reader = new_key(secure, "reader", tenant=tenant)
    memory = create(writer, "green tea in the morning", user_id="u1")
    for call in read_calls(reader, memory.id).values():
        call()  # every read works
    for name, call in write_calls(reader, memory.id).items():
        assert fails(call) == FORBIDDEN, name
    for name, call in admin_calls(reader).items():
        assert fails(call) == FORBIDDEN, name
    # Nothing was written.
    assert (
        writer.memory.GetMemory(pb.GetMemoryRequest(id=memory.id)).memory.content
        == "green tea in the morning"
    )
    assert len(writer.memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": "u1"})).memories) == 1


def test_a_writer_writes_but_cannot_administer(secure: RunningServer) -> None:
    writer = new_key(secure, "writer", tenant=tenant_name())
    memory = create(writer, "to be changed", user_id="u1")
    calls = write_calls(writer, memory.id)
    for name in ("CreateMemory", "UpdateMemory", "ImportMemories", "BatchWriteMemories", "DeleteMemories"):
        calls[name]()
    for name, call in admin_calls(writer).items():
        assert fails(call) == FORBIDDEN, name


def test_a_tenant_admin_manages_its_tenant_but_not_the_server(secure: RunningServer) -> None:
    tenant = tenant_name()
    admin = new_key(secure, "admin", tenant=tenant)
    create(admin, "an admin may write too", user_id="u1")
    calls = admin_calls(admin)
    stats = calls["GetStats"]()
    assert [t.tenant for t in stats.tenants] == [tenant]
    calls["CreateApiKey"]()
    calls["ListApiKeys"]()
    list(admin.admin.ReembedMemories(admin_pb.ReembedMemoriesRequest(dry_run=True)))
    assert fails(calls["CheckConsistency"]) == FORBIDDEN
    assert fails(calls["CreateSnapshot"]) == FORBIDDEN


def test_the_system_admin_sees_every_tenant_and_runs_server_wide_calls(secure: RunningServer) -> None:
    tenant = tenant_name()
    create(new_key(secure, "writer", tenant=tenant), "counted", user_id="u1")
    system = As(secure, BOOTSTRAP)
    assert tenant in {t.tenant for t in system.admin.GetStats(admin_pb.GetStatsRequest()).tenants}
    assert system.admin.CheckConsistency(admin_pb.CheckConsistencyRequest()).consistent
    assert system.admin.CreateSnapshot(admin_pb.CreateSnapshotRequest()).revision > 0
    Keyed(secure.admin, BOOTSTRAP).ListApiKeys(admin_pb.ListApiKeysRequest())
