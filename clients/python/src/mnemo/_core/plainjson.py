"""Messages as plain JSON for `mnemo --json`: what jq and scripts expect.

Canonical proto-JSON is exact but awkward to script: 64-bit integers become
strings, metadata values are tagged (`{"intValue": "1990"}`) and enums carry
their long prefixed names. Here every field is present (as in proto-JSON with
`always_print_fields_with_no_presence`), under its lowerCamel JSON name, but

- integers are JSON numbers (exact: Python's json writes big ints in full);
- metadata (`mnemo.v1.Value`, `Struct`, `ListValue`) is plain JSON;
- enums are short lower-case names (`MEMORY_KIND_SEMANTIC` -> "semantic");
- timestamps are RFC 3339 strings and durations "1.5s", as in proto-JSON;
- 32-bit floats are written shortest (0.9), bytes base64, non-finite floats "NaN" / "Infinity" / "-Infinity".
"""

from __future__ import annotations

import base64
import math
import re
from typing import Any

from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.internal import type_checkers

from mnemo._core import values as _values
from mnemo._core.pb import json_format

_INT_TYPES = {
    FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED32,
    FieldDescriptor.TYPE_SFIXED64,
}  # fmt: skip
_INT_WRAPPERS = {"google.protobuf.Int64Value", "google.protobuf.UInt64Value"}


def to_plain(message: Any) -> Any:
    """The plain JSON value (dict, list, str, int, float, bool or None) of a message."""
    name = message.DESCRIPTOR.full_name
    if name == "mnemo.v1.Value":
        return _values.from_value(message)
    if name == "mnemo.v1.Struct":
        return _values.from_struct(message.fields)
    if name == "mnemo.v1.ListValue":
        return [_values.from_value(v) for v in message.values]
    if name in _INT_WRAPPERS:
        return int(message.value)
    if name.startswith("google.protobuf."):
        return json_format.MessageToDict(message)
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            out[field.json_name] = {str(k): _field_value(value_field, value[k]) for k in value}
        elif field.is_repeated:
            out[field.json_name] = [_field_value(field, v) for v in value]
        elif field.has_presence and not message.HasField(field.name):
            continue
        else:
            out[field.json_name] = _field_value(field, value)
    return out


def enum_name(enum: EnumDescriptor, number: int) -> str | int:
    """`MEMORY_KIND_SEMANTIC` -> "semantic"; an unknown number stays a number."""
    value = enum.values_by_number.get(number)
    if value is None:
        return number
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"
    name = value.name
    return (name[len(prefix) :] if name.startswith(prefix) else name).lower()


def _is_map(field: FieldDescriptor) -> bool:
    entry = field.message_type
    return field.is_repeated and entry is not None and bool(entry.GetOptions().map_entry)


def _field_value(field: FieldDescriptor, value: Any) -> Any:
    kind = field.type
    if kind in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
        return to_plain(value)
    if kind == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
        return enum_name(field.enum_type, value)
    if kind in _INT_TYPES:
        return int(value)
    if kind == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float):
        if not math.isfinite(value):
            return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        if kind == FieldDescriptor.TYPE_FLOAT:
            return type_checkers.ToShortestFloat(value)  # 0.9, not 0.8999999761581421
    return value
