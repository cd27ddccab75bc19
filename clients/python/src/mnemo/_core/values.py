"""Metadata values: Python JSON-like objects <-> mnemo.v1.Value, for the SDK and the server.

int (exact to 64 bits), finite float, str, bool, None, list (or tuple) and dict
with str keys map to the Value kinds; anything else is a TypeError. A value the
contract does not allow (NaN or an infinity, an int outside the signed 64-bit
range) is a `MetadataValueError` naming the field, both when encoding and when
decoding: the SDK refuses it before any call and the server answers it with
INVALID_ARGUMENT on that field, with the same description.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mnemo.v1 import memory_pb2

_INT64 = range(-(2**63), 2**63)

#: A metadata value: what `Memory.metadata` holds.
MetadataValue = Any

NOT_FINITE = "numbers must be finite"
OUT_OF_RANGE = "integers must lie in the signed 64-bit range"


class MetadataValueError(ValueError):
    """A metadata value the contract does not allow.

    Attributes:
        field: The path of the value, such as "metadata.scores[2]".
        description: What is wrong with it, as the server's field violation says.
    """

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description


def _check_double(number: float, path: str) -> float:
    if not math.isfinite(number):
        raise MetadataValueError(path, NOT_FINITE)
    return number


def to_value(obj: MetadataValue, out: memory_pb2.Value | None = None, *, path: str = "metadata") -> Any:
    """Encodes `obj` into `out` (a new Value when not given) and returns it."""
    value = memory_pb2.Value() if out is None else out
    if obj is None:
        value.null_value = memory_pb2.NULL_VALUE_UNSPECIFIED
    elif isinstance(obj, bool):
        value.bool_value = obj
    elif isinstance(obj, int):
        if obj not in _INT64:
            raise MetadataValueError(path, OUT_OF_RANGE)
        value.int_value = obj
    elif isinstance(obj, float):
        value.double_value = _check_double(obj, path)
    elif isinstance(obj, str):
        value.string_value = obj
    elif isinstance(obj, list | tuple):
        value.list_value.SetInParent()
        for i, item in enumerate(obj):
            to_value(item, value.list_value.values.add(), path=f"{path}[{i}]")
    elif isinstance(obj, Mapping):
        value.struct_value.SetInParent()
        fill_struct(obj, value.struct_value.fields, path=path)
    else:
        raise TypeError(f"{path}: {type(obj).__name__} is not a metadata value")
    return value


def fill_struct(obj: Mapping[str, MetadataValue], fields: Any, *, path: str = "metadata") -> None:
    """Encodes a mapping into a proto map<string, Value>."""
    for key, item in obj.items():
        if not isinstance(key, str):
            raise TypeError(f"{path}: keys must be str, not {type(key).__name__}")
        to_value(item, fields[key], path=f"{path}.{key}")


def from_value(value: memory_pb2.Value, *, path: str = "metadata") -> MetadataValue:
    """Decodes a Value into a Python object."""
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "list_value":
        return [from_value(v, path=f"{path}[{i}]") for i, v in enumerate(value.list_value.values)]
    if kind == "struct_value":
        return from_struct(value.struct_value.fields, path=path)
    if kind == "double_value":
        return _check_double(value.double_value, path)
    return getattr(value, kind)


def from_struct(fields: Any, *, path: str = "metadata") -> dict[str, MetadataValue]:
    """Decodes a proto map<string, Value> into a dict."""
    return {key: from_value(fields[key], path=f"{path}.{key}") for key in fields}
