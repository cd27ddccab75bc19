"""Operations are confined like memories: to the caller's tenant, and to a
restricted key's users."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from mnemo.v1 import extraction_service_pb2 as ex
from mnemo.v1 import extraction_service_pb2_grpc as ex_grpc
from mnemo.v1 import memory_pb2 as m
from mnemo_server.embed.base import Embedder

from ..conftest import RunningServer, error_of, start_server
from ..security.conftest import As, Keyed, new_key, secure_settings, tenant_name
from .conftest import KEY_ENV, Script, conversation, extraction_settings, rpc_fails
from .fake_llm import KEY, FakeLlm, Reply, memories

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def guarded(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, llm: tuple[FakeLlm, Script]
) -> Iterator[RunningServer]:
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, KEY)
    settings = secure_settings(
        tmp_path_factory.mktemp("guarded"), extraction=extraction_settings(llm[0].base_url)
    )
    running = start_server(settings, embedder)
    yield running
    running.stop()
    mp.undo()


def extraction(server: RunningServer, who: As) -> Keyed:
    return Keyed(ex_grpc.ExtractionServiceStub(server.channel), who.secret)


def test_operations_never_cross_tenants_or_a_keys_users(guarded: RunningServer, script: Script) -> None:
    script.reply = lambda call: Reply(memories("private fact"))
    a, b = tenant_name(), tenant_name()
    writer_a = new_key(guarded, "writer", tenant=a)
    reader_b = new_key(guarded, "reader", tenant=b)
    only_u1 = new_key(guarded, "writer", tenant=a, user_ids=("u1",))
    request = ex.ExtractMemoriesRequest(
        messages=conversation("hello"), scope=m.Scope(user_id="u2"), wait=True
    )
    op = extraction(guarded, writer_a).ExtractMemories(request, timeout=60).operation
    assert op.state == ex.OPERATION_STATE_SUCCEEDED
    for who in (reader_b, only_u1):
        exc = rpc_fails(lambda w=who: extraction(guarded, w).GetOperation(ex.GetOperationRequest(id=op.id)))
        assert error_of(exc)[:2] == (grpc.StatusCode.NOT_FOUND, "OPERATION_NOT_FOUND")
        assert list(extraction(guarded, who).ListOperations(ex.ListOperationsRequest()).operations) == []
    exc = rpc_fails(lambda: extraction(guarded, only_u1).ExtractMemories(request))
    assert error_of(exc)[:2] == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_FORBIDDEN")
    exc = rpc_fails(lambda: extraction(guarded, reader_b).ExtractMemories(request))
    assert error_of(exc)[:2] == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_FORBIDDEN")
    listed = extraction(guarded, writer_a).ListOperations(ex.ListOperationsRequest()).operations
    assert [o.id for o in listed] == [op.id]
