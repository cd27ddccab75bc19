"""api/envelope.py: a failure in the middle of a stream ends it with the same
status a unary call gets (INTERNAL, the request id, no exception text), not
grpc's UNKNOWN carrying the exception's message."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from mnemo.v1 import memory_pb2 as pb
from mnemo.v1 import memory_service_pb2 as svc_pb

from ..conftest import RunningServer, error_of

SECRET = "/var/lib/mnemo/secret-path"


def test_an_export_that_fails_after_its_header_ends_with_internal(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    scope = pb.Scope(user_id="envelope-export")
    server.memory.CreateMemory(
        svc_pb.CreateMemoryRequest(memory=pb.Memory(user_id="envelope-export", content="one memory"))
    )
    service = server.app.service
    assert service is not None
    real_export = service.export

    def failing_export(*args: Any, **kwargs: Any) -> Any:
        snapshot = real_export(*args, **kwargs)

        @contextlib.contextmanager
        def broken() -> Iterator[tuple[int, Iterator[Any]]]:
            with snapshot as (revision, _batches):

                def batches() -> Iterator[Any]:
                    raise OSError(SECRET)
                    yield  # a generator that fails on its first batch

                yield revision, batches()

        return broken()

    monkeypatch.setattr(service, "export", failing_export)
    stream = server.memory.ExportMemories(
        svc_pb.ExportMemoriesRequest(scope=scope), metadata=(("x-request-id", "req-envelope-1"),)
    )
    first = next(stream)
    assert first.WhichOneof("item") == "header"
    with pytest.raises(grpc.RpcError) as caught:
        next(stream)
    code, reason, _ = error_of(caught.value)
    assert (code, reason) == (grpc.StatusCode.INTERNAL, "INTERNAL")
    assert "req-envelope-1" in (caught.value.details() or "")
    assert SECRET not in (caught.value.details() or "")
    # The snapshot was released and the server still serves.
    monkeypatch.undo()
    items = list(server.memory.ExportMemories(svc_pb.ExportMemoriesRequest(scope=scope)))
    assert [i.WhichOneof("item") for i in items] == ["header", "memory"]
