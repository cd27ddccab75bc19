"""Metadata values: Python JSON-like objects <-> mnemo.v1.Value.

int (exact to 64 bits), float, str, bool, None, list (or tuple) and dict with
str keys map to the Value kinds; anything else is a TypeError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mnemo.v1 import memory_pb2

_INT64 = range(-(2**63), 2**63)

#: A metadata value: what `Memory.metadata` holds.
MetadataValue = Any


def to_value(obj: MetadataValue, out: memory_pb2.Value | None = None, *, path: str = "metadata") -> Any:
    """Encodes `obj` into `out` (a new Value when not given) and returns it."""
    value = memory_pb2.Value() if out is None else out
    if obj is None:
        value.null_value = memory_pb2.NULL_VALUE_UNSPECIFIED
    elif isinstance(obj, bool):
        value.bool_value = obj
    elif isinstance(obj, int):
        if obj not in _INT64:
            raise ValueError(f"{path}: integer {obj} is outside the signed 64-bit range")
        value.int_value = obj
    elif isinstance(obj, float):
        value.double_value = obj
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


def from_value(value: memory_pb2.Value) -> MetadataValue:
    """Decodes a Value into a Python object."""
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "list_value":
        return [from_value(v) for v in value.list_value.values]
    if kind == "struct_value":
        return from_struct(value.struct_value.fields)
    return getattr(value, kind)


def from_struct(fields: Any) -> dict[str, MetadataValue]:
    """Decodes a proto map<string, Value> into a dict."""
    return {key: from_value(fields[key]) for key in fields}
