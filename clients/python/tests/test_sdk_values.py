"""The one metadata value codec (mnemo._core.values), which the SDK and the server
share: both refuse NaN, the infinities and ints outside the signed 64-bit range,
naming the field with the same description, and nothing is stored."""

from __future__ import annotations

import math
from typing import Any

import grpc
import pytest

from mnemo import AsyncMnemoClient, MnemoClient, WriteOp, errors
from mnemo._core import values
from mnemo._core.values import MetadataValueError, from_value, to_value
from mnemo.v1 import memory_pb2, memory_service_pb2
from mnemo_server.api import convert

BAD = [
    ({"score": math.nan}, "metadata.score", values.NOT_FINITE),
    ({"score": math.inf}, "metadata.score", values.NOT_FINITE),
    ({"deep": {"xs": [1.0, -math.inf]}}, "metadata.deep.xs[1]", values.NOT_FINITE),
    ({"n": 2**63}, "metadata.n", values.OUT_OF_RANGE),
    ({"n": [-(2**63) - 1]}, "metadata.n[0]", values.OUT_OF_RANGE),
]


@pytest.mark.parametrize(("metadata", "field", "description"), BAD)
def test_the_sdk_refuses_what_the_contract_does_not_allow(
    metadata: dict[str, Any], field: str, description: str
) -> None:
    with pytest.raises(MetadataValueError) as err:
        values.fill_struct(metadata, memory_pb2.Memory().metadata)
    assert (err.value.field, err.value.description) == (field, description)
    assert isinstance(err.value, ValueError) and str(err.value) == f"{field}: {description}"


def test_the_edges_of_the_int64_range_and_finite_doubles_pass() -> None:
    for value in [-(2**63), 2**63 - 1, 1e308, -1e-308, 0.0]:
        assert from_value(to_value(value)) == value


def test_decoding_refuses_a_non_finite_double_too() -> None:
    raw = memory_pb2.Value(list_value=memory_pb2.ListValue(values=[memory_pb2.Value(double_value=math.nan)]))
    with pytest.raises(MetadataValueError) as err:
        from_value(raw, path="memory.metadata.x")
    assert err.value.field == "memory.metadata.x[0]" and err.value.description == values.NOT_FINITE


def test_the_server_decodes_metadata_with_the_same_codec() -> None:
    assert convert.value_to_python(to_value({"a": [1, 2.5, None]}), "f") == {"a": [1, 2.5, None]}
    out = memory_pb2.Value()
    convert.python_to_value({"k": [True, "s"]}, out)
    assert out == to_value({"k": [True, "s"]})


def test_a_bad_value_fails_every_write_before_any_call(client: MnemoClient, user: str) -> None:
    memory = client.create("kept", user_id=user, metadata={"ok": 1}).memory
    bad = {"score": math.nan}
    for write in [
        lambda: client.create("x", user_id=user, metadata=bad),
        lambda: client.update(memory.id, metadata=bad),
        lambda: client.batch_write([WriteOp.create("x", user_id=user, metadata={"n": 2**64})]),
    ]:
        with pytest.raises(MetadataValueError):
            write()
    assert [m.metadata for m in client.iter_memories(user_id=user)] == [{"ok": 1}]


async def test_the_async_client_refuses_them_too(aclient: AsyncMnemoClient, user: str) -> None:
    with pytest.raises(MetadataValueError, match=r"metadata\.s: numbers must be finite"):
        await aclient.create("x", user_id=user, metadata={"s": -math.inf})


def test_the_server_answers_a_raw_nan_with_the_same_field_and_description(
    client: MnemoClient, user: str
) -> None:
    request = memory_service_pb2.CreateMemoryRequest(
        memory=memory_pb2.Memory(
            content="raw", user_id=user, metadata={"score": memory_pb2.Value(double_value=math.nan)}
        )
    )
    with pytest.raises(grpc.RpcError) as raw:
        client.stub.CreateMemory(request, timeout=30)
    error = errors.from_rpc_error(raw.value)
    assert isinstance(error, errors.InvalidArgumentError) and error.reason == "INVALID_ARGUMENT"
    assert [(v.field, v.description) for v in error.field_violations] == [
        ("memory.metadata.score", values.NOT_FINITE)
    ]
    assert list(client.iter_memories(user_id=user)) == []
