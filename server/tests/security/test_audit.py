"""The audit log: one JSON record per write, forget and admin call, with who,
what, ids and outcome, and never memory content or metadata values."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from mnemo.v1 import admin_service_pb2 as admin_pb
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server.audit import AuditLog

from ..conftest import RunningServer
from .conftest import fails, new_key, tenant_name

SECRET_CONTENT = "the vault combination is 31-41-59"
SECRET_VALUE = "metadata-value-never-logged"


def records(server: RunningServer, **match: Any) -> list[dict[str, Any]]:
    path = Path(server.app.settings.audit.log_file)
    out = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if all(entry.get(k) == v for k, v in match.items()):
            out.append(entry)
    return out


def test_writes_forgets_and_admin_calls_are_audited_without_content(secure: RunningServer) -> None:
    tenant = tenant_name()
    admin = new_key(secure, "admin", tenant=tenant)
    writer = new_key(secure, "writer", by=admin.secret or "")
    reader = new_key(secure, "reader", by=admin.secret or "")
    metadata = {"note": m.Value(string_value=SECRET_VALUE)}
    created = writer.memory.CreateMemory(
        pb.CreateMemoryRequest(
            memory=m.Memory(user_id="u1", content=SECRET_CONTENT, metadata=metadata), request_id="req-1"
        ),
    ).memory
    writer.memory.UpdateMemory(
        pb.UpdateMemoryRequest(
            memory={"id": created.id, "content": SECRET_CONTENT + " (changed)"},
            update_mask={"paths": ["content"]},
        )
    )
    writer.memory.GetMemory(pb.GetMemoryRequest(id=created.id))  # reads are not audited
    batch = writer.memory.BatchWriteMemories(
        pb.BatchWriteMemoriesRequest(
            operations=[
                pb.WriteOperation(
                    create=pb.CreateMemoryRequest(
                        memory={"id": "b1", "user_id": "u1", "content": SECRET_CONTENT}
                    )
                ),
                pb.WriteOperation(delete=pb.DeleteMemoryRequest(id="missing")),
            ]
        )
    )
    assert batch.results[1].status.code == grpc.StatusCode.NOT_FOUND.value[0]
    writer.memory.ImportMemories(
        iter(
            [
                pb.ImportMemoriesRequest(header={"format_version": 1}),
                pb.ImportMemoriesRequest(memory=m.Memory(id="i1", user_id="u2", content=SECRET_CONTENT)),
            ]
        )
    )
    writer.memory.DeleteMemory(pb.DeleteMemoryRequest(id=created.id))
    writer.memory.DeleteMemories(pb.DeleteMemoriesRequest(scope={"user_id": "u1"}))
    assert fails(lambda: reader.memory.DeleteMemory(pb.DeleteMemoryRequest(id="b1"))) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "ROLE_FORBIDDEN",
    )
    assert (
        fails(lambda: writer.memory.GetMemory(pb.GetMemoryRequest(id="gone")))[0] == grpc.StatusCode.NOT_FOUND
    )
    admin.admin.RevokeApiKey(admin_pb.RevokeApiKeyRequest(id=reader.key_id))
    anonymous = secure.memory.CreateMemory
    assert fails(
        lambda: anonymous(pb.CreateMemoryRequest(), metadata=(("x-request-id", f"anon-{tenant}"),))
    ) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "API_KEY_MISSING",
    )
    time.sleep(0.1)

    mine = records(secure, tenant=tenant)
    by_rpc = [(r["rpc"], r["key_id"], r["code"], r["reason"]) for r in mine]
    assert by_rpc == [
        ("AdminService.CreateApiKey", admin.key_id, "OK", ""),  # the writer
        ("AdminService.CreateApiKey", admin.key_id, "OK", ""),  # the reader
        ("MemoryService.CreateMemory", writer.key_id, "OK", ""),
        ("MemoryService.UpdateMemory", writer.key_id, "OK", ""),
        ("MemoryService.BatchWriteMemories", writer.key_id, "OK", ""),
        ("MemoryService.ImportMemories", writer.key_id, "OK", ""),
        ("MemoryService.DeleteMemory", writer.key_id, "OK", ""),
        ("MemoryService.DeleteMemories", writer.key_id, "OK", ""),
        ("MemoryService.DeleteMemory", reader.key_id, "PERMISSION_DENIED", "ROLE_FORBIDDEN"),
        ("AdminService.RevokeApiKey", admin.key_id, "OK", ""),
    ]
    targets = [r["target_ids"] for r in mine]
    assert targets[0] == [writer.key_id] and targets[1] == [reader.key_id]
    assert targets[2:8] == [[created.id], [created.id], ["b1", "missing"], ["i1"], [created.id], ["b1"]]
    assert targets[9] == [reader.key_id]
    assert mine[2]["request_id"] and all(r["time"].endswith("+00:00") for r in mine)
    assert mine[7]["deleted_count"] == 1 and mine[7]["scope"]["user_id"] == "u1"
    # A call refused for want of a key is audited with its request id.
    [refused] = records(secure, request_id=f"anon-{tenant}")
    assert (refused["key_id"], refused["code"], refused["reason"]) == (
        "",
        "UNAUTHENTICATED",
        "API_KEY_MISSING",
    )
    text = Path(secure.app.settings.audit.log_file).read_text()
    assert SECRET_CONTENT not in text and SECRET_VALUE not in text
    assert writer.secret is not None and writer.secret not in text


def test_the_audit_log_can_go_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    log = AuditLog("-")
    log.record(
        rpc="MemoryService.CreateMemory",
        key_id="k1",
        tenant="t",
        request_id="r",
        code="OK",
        target_ids=["m1"],
    )
    log.close()
    entry = json.loads(capsys.readouterr().out)
    assert entry["rpc"] == "MemoryService.CreateMemory" and entry["target_ids"] == ["m1"]
