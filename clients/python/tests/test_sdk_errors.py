"""Every gRPC status becomes a mnemo.errors exception with its code, reason,
field violations, metadata, retry delay and request id."""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from grpc_status import rpc_status
from sdk_fakes import serve, status

from mnemo import MnemoClient, RetryPolicy, SearchQuery, WriteOp, errors
from mnemo.v1 import memory_service_pb2_grpc as pb_grpc

Call = Callable[[MnemoClient, str], Any]


def existing(client: MnemoClient, user: str) -> str:
    return client.create("exists", user_id=user).memory.id


# (what to call, error class, reason, violated fields) against the real server.
REAL_CASES: list[tuple[str, Call, type[errors.MnemoError], str, list[str]]] = [
    (
        "content empty",
        lambda c, u: c.create("  ", user_id=u),
        errors.InvalidArgumentError,
        "CONTENT_EMPTY",
        ["memory.content"],
    ),
    (
        "scope required",
        lambda c, u: c.create("x"),
        errors.InvalidArgumentError,
        "SCOPE_REQUIRED",
        ["memory.user_id"],
    ),
    ("invalid id", lambda c, u: c.get("bad id!"), errors.InvalidArgumentError, "INVALID_ID", ["id"]),
    (
        "invalid ttl",
        lambda c, u: c.create("x", user_id=u, ttl=-5),
        errors.InvalidArgumentError,
        "INVALID_TTL",
        ["ttl"],
    ),
    (
        "dimension",
        lambda c, u: c.create("x", user_id=u, embedding=[1.0, 2.0]),
        errors.InvalidArgumentError,
        "EMBEDDING_DIMENSION_MISMATCH",
        ["memory.embedding"],
    ),
    (
        "not finite",
        lambda c, u: c.search(vector=[0.0] * 384),
        errors.InvalidArgumentError,
        "EMBEDDING_NOT_FINITE",
        ["vector"],
    ),
    (
        "invalid filter",
        lambda c, u: c.search("x", filter="colour = red"),
        errors.InvalidArgumentError,
        "INVALID_FILTER",
        ["filter"],
    ),
    (
        "invalid order",
        lambda c, u: c.list(order_by="colour"),
        errors.InvalidArgumentError,
        "INVALID_ORDER_BY",
        ["order_by"],
    ),
    (
        "page size",
        lambda c, u: c.list(page_size=5000),
        errors.InvalidArgumentError,
        "INVALID_PAGE_SIZE",
        ["page_size"],
    ),
    (
        "page token",
        lambda c, u: c.list(page_token="garbage"),
        errors.InvalidArgumentError,
        "INVALID_PAGE_TOKEN",
        ["page_token"],
    ),
    (
        "field mask",
        lambda c, u: c.get(existing(c, u), read_mask=["nope"]),
        errors.InvalidArgumentError,
        "INVALID_FIELD_MASK",
        ["read_mask"],
    ),
    (
        "top k",
        lambda c, u: c.search("x", top_k=5000),
        errors.InvalidArgumentError,
        "INVALID_TOP_K",
        ["top_k"],
    ),
    ("query required", lambda c, u: c.search(), errors.InvalidArgumentError, "QUERY_REQUIRED", ["query"]),
    (
        "batch too large",
        lambda c, u: c.batch_search([SearchQuery(query="x")] * 300),
        errors.InvalidArgumentError,
        "BATCH_TOO_LARGE",
        ["requests"],
    ),
    (
        "empty batch write",
        lambda c, u: c.batch_write([]),
        errors.InvalidArgumentError,
        "BATCH_TOO_LARGE",
        ["operations"],
    ),
    ("not found", lambda c, u: c.get("no-such-memory"), errors.NotFoundError, "MEMORY_NOT_FOUND", []),
    (
        "already exists",
        lambda c, u: c.create("x", user_id=u, id=existing(c, u)),
        errors.AlreadyExistsError,
        "MEMORY_ALREADY_EXISTS",
        [],
    ),
    (
        "request id reused",
        lambda c, u: [c.create("a", user_id=u, request_id=u), c.create("b", user_id=u, request_id=u)],
        errors.FailedPreconditionError,
        "REQUEST_ID_REUSED",
        [],
    ),
    (
        "etag",
        lambda c, u: c.delete(existing(c, u), etag="stale"),
        errors.FailedPreconditionError,
        "ETAG_MISMATCH",
        [],
    ),
    (
        "link target",
        lambda c, u: c.create("x", user_id=u, links=[{"target_id": "nowhere", "relation": "r"}]),
        errors.FailedPreconditionError,
        "LINK_TARGET_NOT_FOUND",
        [],
    ),
]


@pytest.mark.parametrize(
    ("call", "cls", "reason", "fields"), [c[1:] for c in REAL_CASES], ids=[c[0] for c in REAL_CASES]
)
def test_the_real_server_errors_become_typed_exceptions(
    client: MnemoClient, user: str, call: Call, cls: type[errors.MnemoError], reason: str, fields: list[str]
) -> None:
    with pytest.raises(errors.MnemoError) as err:
        call(client, user)
    e = err.value
    assert type(e) is cls and e.code == cls.code and e.grpc_code.name == cls.code
    assert e.reason == reason
    assert [v.field for v in e.field_violations] == fields
    assert e.request_id and e.metadata["request_id"] == e.request_id
    assert str(e).startswith(f"{cls.code} {reason}: ")


def test_a_batch_operation_error_is_a_typed_error_too(client: MnemoClient, user: str) -> None:
    result = client.batch_write([WriteOp.update("nope", content="x"), WriteOp.create("", user_id=user)])
    assert isinstance(result.results[0].error, errors.NotFoundError)
    assert isinstance(result.results[1].error, errors.InvalidArgumentError)


class Failing(pb_grpc.MemoryServiceServicer):
    """Answers GetMemory(id="CODE:REASON") with that status, and sleeps on "SLOW"."""

    def GetMemory(self, request: Any, context: grpc.ServicerContext) -> Any:
        if request.id == "SLOW":
            time.sleep(1)
        code, _, reason = request.id.partition(":")
        context.abort_with_status(
            rpc_status.to_status(
                status(
                    code,
                    reason,
                    f"{code} on purpose",
                    retry_after=2.5 if code == "UNAVAILABLE" else None,
                    metadata={"request_id": "req-1", "extra": "x"},
                    violations=[("id", "bad")],
                )
            )
        )


@pytest.fixture(scope="module")
def failing() -> Iterator[str]:
    server, port = serve(Failing())
    yield f"127.0.0.1:{port}"
    server.stop(0)


CODES = [
    ("CANCELLED", errors.CancelledError),
    ("UNKNOWN", errors.UnknownError),
    ("INVALID_ARGUMENT", errors.InvalidArgumentError),
    ("DEADLINE_EXCEEDED", errors.DeadlineExceededError),
    ("NOT_FOUND", errors.NotFoundError),
    ("ALREADY_EXISTS", errors.AlreadyExistsError),
    ("PERMISSION_DENIED", errors.PermissionDeniedError),
    ("RESOURCE_EXHAUSTED", errors.ResourceExhaustedError),
    ("FAILED_PRECONDITION", errors.FailedPreconditionError),
    ("ABORTED", errors.AbortedError),
    ("OUT_OF_RANGE", errors.OutOfRangeError),
    ("UNIMPLEMENTED", errors.UnimplementedError),
    ("INTERNAL", errors.InternalError),
    ("UNAVAILABLE", errors.UnavailableError),
    ("DATA_LOSS", errors.DataLossError),
    ("UNAUTHENTICATED", errors.UnauthenticatedError),
]


@pytest.mark.parametrize(("code", "cls"), CODES, ids=[c for c, _ in CODES])
def test_every_status_code_has_its_class(failing: str, code: str, cls: type[errors.MnemoError]) -> None:
    reason = {
        "UNAUTHENTICATED": "API_KEY_MISSING",
        "PERMISSION_DENIED": "ROLE_FORBIDDEN",
        "RESOURCE_EXHAUSTED": "QUOTA_EXCEEDED",
        "UNAVAILABLE": "SERVER_DRAINING",
    }.get(code, "SOME_REASON")
    with MnemoClient(failing, retry=RetryPolicy(max_attempts=1)) as client, pytest.raises(cls) as err:
        client.get(f"{code}:{reason}")
    e = err.value
    assert isinstance(e, errors.MnemoError) and e.code == code and e.reason == reason
    assert e.message == f"{code} on purpose" and e.request_id == "req-1" and e.metadata["extra"] == "x"
    assert e.field_violations == (errors.FieldViolation("id", "bad"),)
    assert e.retry_after == (2.5 if code == "UNAVAILABLE" else None)
    assert len(e.details) == 3 if code == "UNAVAILABLE" else 2
    copy = pickle.loads(pickle.dumps(e))
    assert type(copy) is cls and copy.reason == reason and copy.retry_after == e.retry_after


def test_a_client_timeout_is_deadline_exceeded_without_a_reason(failing: str) -> None:
    with MnemoClient(failing) as client, pytest.raises(errors.DeadlineExceededError) as err:
        client.get("SLOW", timeout=0.2)
    assert err.value.reason == "" and err.value.code == "DEADLINE_EXCEEDED"


def test_no_server_is_unavailable_without_a_reason() -> None:
    with (
        MnemoClient("127.0.0.1:1", retry=RetryPolicy(max_attempts=1)) as client,
        pytest.raises(errors.UnavailableError) as err,
    ):
        client.get("x")
    assert err.value.reason == "" and err.value.retry_after is None


def test_bad_arguments_fail_before_any_call() -> None:
    with MnemoClient("127.0.0.1:1") as client:
        with pytest.raises(ValueError, match="unknown MemoryKind"):
            client.create("x", user_id="u", kind="sideways")
        with pytest.raises(ValueError, match="timezone-aware"):
            from datetime import datetime

            client.create("x", user_id="u", expire_time=datetime(2030, 1, 1))
        with pytest.raises(TypeError, match="not a metadata value"):
            client.create("x", user_id="u", metadata={"when": object()})
        with pytest.raises(ValueError, match="64-bit"):
            client.create("x", user_id="u", metadata={"n": 2**63})
        with pytest.raises(TypeError, match="not a string"):
            client.create("x", user_id="u", tags="oops")
