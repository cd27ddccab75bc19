"""Every kind of bad input gets INVALID_ARGUMENT (or NOT_FOUND) with a stable
reason and the field it concerns, and nothing already stored is touched."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from mnemo.v1 import admin_service_pb2 as admin
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from ..conftest import RunningServer, error_of

U = "bad-input-user"
BIG = "x" * (32 * 1024 + 1)
NAN = float("nan")


def create(**memory: Any) -> Callable[[RunningServer], Any]:
    request = pb.CreateMemoryRequest(memory=m.Memory(**memory))
    return lambda s: s.memory.CreateMemory(request)


def search(**fields: Any) -> Callable[[RunningServer], Any]:
    return lambda s: s.memory.SearchMemories(pb.SearchMemoriesRequest(**fields))


CASES: list[tuple[str, Callable[[RunningServer], Any], str, str, list[str]]] = [
    ("empty content", create(user_id=U, content=""), "INVALID_ARGUMENT", "CONTENT_EMPTY", ["memory.content"]),
    (
        "blank content",
        create(user_id=U, content=" \n\t"),
        "INVALID_ARGUMENT",
        "CONTENT_EMPTY",
        ["memory.content"],
    ),
    (
        "oversized content",
        create(user_id=U, content=BIG),
        "INVALID_ARGUMENT",
        "CONTENT_TOO_LARGE",
        ["memory.content"],
    ),
    ("no scope", create(content="hello"), "INVALID_ARGUMENT", "SCOPE_REQUIRED", ["memory.user_id"]),
    (
        "bad id",
        create(user_id=U, content="x", id="has space"),
        "INVALID_ARGUMENT",
        "INVALID_ID",
        ["memory.id"],
    ),
    (
        "oversized metadata",
        create(user_id=U, content="x", metadata={"blob": m.Value(string_value="y" * 70_000)}),
        "INVALID_ARGUMENT",
        "METADATA_TOO_LARGE",
        ["memory.metadata"],
    ),
    (
        "NaN in metadata",
        create(user_id=U, content="x", metadata={"n": m.Value(double_value=NAN)}),
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        ["memory.metadata.n"],
    ),
    (
        "too many tags",
        create(user_id=U, content="x", tags=[f"t{i}" for i in range(65)]),
        "INVALID_ARGUMENT",
        "METADATA_TOO_LARGE",
        ["memory.tags"],
    ),
    (
        "wrong dimension",
        create(user_id=U, content="x", embedding=[0.1] * 3),
        "INVALID_ARGUMENT",
        "EMBEDDING_DIMENSION_MISMATCH",
        ["memory.embedding"],
    ),
    (
        "NaN vector",
        create(user_id=U, content="x", embedding=[NAN] * 384),
        "INVALID_ARGUMENT",
        "EMBEDDING_NOT_FINITE",
        ["memory.embedding"],
    ),
    (
        "zero vector",
        create(user_id=U, content="x", embedding=[0.0] * 384),
        "INVALID_ARGUMENT",
        "EMBEDDING_NOT_FINITE",
        ["memory.embedding"],
    ),
    (
        "unknown kind",
        create(user_id=U, content="x", kind=42),
        "INVALID_ARGUMENT",
        "INVALID_ENUM_VALUE",
        ["memory.kind"],
    ),
    (
        "unknown dedup mode",
        lambda s: s.memory.CreateMemory(
            pb.CreateMemoryRequest(memory=m.Memory(user_id=U, content="x"), dedup=pb.DedupPolicy(mode=9))
        ),  # type: ignore[arg-type]
        "INVALID_ARGUMENT",
        "INVALID_ENUM_VALUE",
        ["dedup.mode"],
    ),
    (
        "ttl and expire_time",
        lambda s: s.memory.CreateMemory(
            pb.CreateMemoryRequest(
                memory=m.Memory(user_id=U, content="x", expire_time={"seconds": 4_000_000_000}),
                ttl=duration_pb2.Duration(seconds=5),
            )
        ),
        "INVALID_ARGUMENT",
        "INVALID_TTL",
        ["ttl"],
    ),
    (
        "negative ttl",
        lambda s: s.memory.CreateMemory(
            pb.CreateMemoryRequest(
                memory=m.Memory(user_id=U, content="x"), ttl=duration_pb2.Duration(seconds=-5)
            )
        ),
        "INVALID_ARGUMENT",
        "INVALID_TTL",
        ["ttl"],
    ),
    (
        "link to nowhere",
        create(user_id=U, content="x", links=[m.MemoryLink(target_id="nope", relation="r")]),
        "FAILED_PRECONDITION",
        "LINK_TARGET_NOT_FOUND",
        [],
    ),
    ("no query", search(), "INVALID_ARGUMENT", "QUERY_REQUIRED", ["query"]),
    (
        "query and vector",
        search(query="a", vector=[1.0] * 384),
        "INVALID_ARGUMENT",
        "QUERY_REQUIRED",
        ["query"],
    ),
    ("oversized query", search(query=BIG), "INVALID_ARGUMENT", "CONTENT_TOO_LARGE", ["query"]),
    (
        "search vector dimension",
        search(vector=[1.0] * 10),
        "INVALID_ARGUMENT",
        "EMBEDDING_DIMENSION_MISMATCH",
        ["vector"],
    ),
    ("search vector NaN", search(vector=[NAN] * 384), "INVALID_ARGUMENT", "EMBEDDING_NOT_FINITE", ["vector"]),
    (
        "malformed filter",
        search(query="a", filter="user_id = = 3"),
        "INVALID_ARGUMENT",
        "INVALID_FILTER",
        ["filter"],
    ),
    (
        "unknown filter field",
        search(query="a", filter='colour = "red"'),
        "INVALID_ARGUMENT",
        "INVALID_FILTER",
        ["filter"],
    ),
    ("negative top_k", search(query="a", top_k=-1), "INVALID_ARGUMENT", "INVALID_TOP_K", ["top_k"]),
    ("huge top_k", search(query="a", top_k=100_000), "INVALID_ARGUMENT", "INVALID_TOP_K", ["top_k"]),
    (
        "min_score out of range",
        search(query="a", min_score=2.0),
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        ["min_score"],
    ),
    (
        "list filter",
        lambda s: s.memory.ListMemories(pb.ListMemoriesRequest(filter="(user_id")),
        "INVALID_ARGUMENT",
        "INVALID_FILTER",
        ["filter"],
    ),
    (
        "list order_by",
        lambda s: s.memory.ListMemories(pb.ListMemoriesRequest(order_by="content desc")),
        "INVALID_ARGUMENT",
        "INVALID_ORDER_BY",
        ["order_by"],
    ),
    (
        "list page size",
        lambda s: s.memory.ListMemories(pb.ListMemoriesRequest(page_size=5000)),
        "INVALID_ARGUMENT",
        "INVALID_PAGE_SIZE",
        ["page_size"],
    ),
    (
        "list page token",
        lambda s: s.memory.ListMemories(pb.ListMemoriesRequest(page_token="@@@")),
        "INVALID_ARGUMENT",
        "INVALID_PAGE_TOKEN",
        ["page_token"],
    ),
    (
        "get unknown id",
        lambda s: s.memory.GetMemory(pb.GetMemoryRequest(id="no-such-memory")),
        "NOT_FOUND",
        "MEMORY_NOT_FOUND",
        [],
    ),
    (
        "get empty id",
        lambda s: s.memory.GetMemory(pb.GetMemoryRequest(id="")),
        "INVALID_ARGUMENT",
        "INVALID_ID",
        ["id"],
    ),
    (
        "update unknown id",
        lambda s: s.memory.UpdateMemory(
            pb.UpdateMemoryRequest(
                memory=m.Memory(id="no-such-memory", content="x"),
                update_mask=field_mask_pb2.FieldMask(paths=["content"]),
            )
        ),
        "NOT_FOUND",
        "MEMORY_NOT_FOUND",
        [],
    ),
    (
        "delete unknown id",
        lambda s: s.memory.DeleteMemory(pb.DeleteMemoryRequest(id="no-such-memory")),
        "NOT_FOUND",
        "MEMORY_NOT_FOUND",
        [],
    ),
    (
        "history unknown id",
        lambda s: s.memory.GetMemoryHistory(pb.GetMemoryHistoryRequest(id="no-such-memory")),
        "NOT_FOUND",
        "MEMORY_NOT_FOUND",
        [],
    ),
    (
        "empty batch write",
        lambda s: s.memory.BatchWriteMemories(pb.BatchWriteMemoriesRequest()),
        "INVALID_ARGUMENT",
        "BATCH_TOO_LARGE",
        ["operations"],
    ),
    (
        "oversized batch write",
        lambda s: s.memory.BatchWriteMemories(
            pb.BatchWriteMemoriesRequest(
                operations=[pb.WriteOperation(delete=pb.DeleteMemoryRequest(id="x"))] * 1001
            )
        ),
        "INVALID_ARGUMENT",
        "BATCH_TOO_LARGE",
        ["operations"],
    ),
    (
        "oversized batch search",
        lambda s: s.memory.BatchSearchMemories(
            pb.BatchSearchMemoriesRequest(requests=[pb.SearchMemoriesRequest(query="a")] * 257)
        ),
        "INVALID_ARGUMENT",
        "BATCH_TOO_LARGE",
        ["requests"],
    ),
    (
        "stats scope limit",
        lambda s: s.admin.GetStats(admin.GetStatsRequest(scope_limit=5000)),
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        ["scope_limit"],
    ),
]


@pytest.mark.parametrize(
    ("call", "code", "reason", "fields"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_rejected_with_a_stable_reason_and_changes_nothing(
    server: RunningServer, call: Callable[[RunningServer], Any], code: str, reason: str, fields: list[str]
) -> None:
    before = server.admin.GetStats(admin.GetStatsRequest()).revision
    with pytest.raises(grpc.RpcError) as err:
        call(server)
    assert error_of(err.value) == (getattr(grpc.StatusCode, code), reason, fields)
    assert "Traceback" not in (err.value.details() or "")
    assert server.admin.GetStats(admin.GetStatsRequest()).revision == before


def test_a_bad_item_in_a_batch_names_its_place(server: RunningServer) -> None:
    response = server.memory.BatchWriteMemories(
        pb.BatchWriteMemoriesRequest(
            operations=[
                pb.WriteOperation(create=pb.CreateMemoryRequest(memory=m.Memory(user_id=U, content="fine"))),
                pb.WriteOperation(
                    create=pb.CreateMemoryRequest(memory=m.Memory(user_id=U, content="x", kind=77))
                ),
                pb.WriteOperation(),
            ]
        )
    )
    assert [r.status.code for r in response.results] == [0, 3, 3]
    from google.rpc import error_details_pb2

    bad = error_details_pb2.BadRequest()
    next(d for d in response.results[1].status.details if d.Is(bad.DESCRIPTOR)).Unpack(bad)
    assert [v.field for v in bad.field_violations] == ["operations[1].create.memory.kind"]
    bad = error_details_pb2.BadRequest()
    next(d for d in response.results[2].status.details if d.Is(bad.DESCRIPTOR)).Unpack(bad)
    assert [v.field for v in bad.field_violations] == ["operations[2]"]
