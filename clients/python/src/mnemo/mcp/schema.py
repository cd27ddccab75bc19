"""Tool input schemas and descriptions, made from the mnemo.v1 descriptors and comments.

A tool parameter names a request field by path ("memory.content", "scope.user_id");
its JSON Schema type comes from the field's descriptor and its description from
the field's proto comment (`mnemo/v1/comments.json`, generated with the stubs).
A path that no longer resolves fails here, at import, not silently at call time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from mnemo.v1 import memory_service_pb2

SERVICE = memory_service_pb2.DESCRIPTOR.services_by_name["MemoryService"]

# Well-known message types a tool argument can take, as JSON Schema.
_DURATION = "google.protobuf.Duration"
_VALUE = "mnemo.v1.Value"

_SCALARS: dict[int, str] = {
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BOOL: "boolean",
    FieldDescriptor.TYPE_INT32: "integer",
    FieldDescriptor.TYPE_INT64: "integer",
    FieldDescriptor.TYPE_UINT32: "integer",
    FieldDescriptor.TYPE_UINT64: "integer",
    FieldDescriptor.TYPE_FLOAT: "number",
    FieldDescriptor.TYPE_DOUBLE: "number",
}


@cache
def comments() -> dict[str, str]:
    """Full proto name -> its source comment."""
    text = resources.files("mnemo.v1").joinpath("comments.json").read_text(encoding="utf-8")
    loaded: dict[str, str] = json.loads(text)
    return loaded


def comment(full_name: str) -> str:
    """The comment of a proto element, without the `Optional.`/`Required.` label."""
    text = comments().get(full_name, "")
    for label in ("Required. ", "Optional. ", "Output only. "):
        text = text.removeprefix(label)
    return text


def rpc_summary(method: str) -> str:
    """What an RPC does, from its comment, without the list of errors."""
    text = comment(f"{SERVICE.full_name}.{method}")
    return text.split(" Errors:", 1)[0].split("\n\nErrors:", 1)[0].strip()


def request_type(method: str) -> Descriptor:
    """The request message of a MemoryService RPC."""
    return SERVICE.methods_by_name[method].input_type


def resolve(message: Descriptor, path: str) -> FieldDescriptor:
    """The field at a dotted path inside a message; KeyError naming the path if absent."""
    *parents, leaf = path.split(".")
    current = message
    for part in parents:
        field = current.fields_by_name.get(part)
        if field is None or field.message_type is None:
            raise KeyError(f"{message.full_name} has no message field {part!r} (in {path!r})")
        current = field.message_type
    field = current.fields_by_name.get(leaf)
    if field is None:
        raise KeyError(f"{current.full_name} has no field {leaf!r} (in {path!r})")
    return field


def enum_choices(enum: EnumDescriptor) -> list[str]:
    """The lowercase value names of an enum without its prefix, UNSPECIFIED left out."""
    prefix = _enum_prefix(enum)
    return [v.name.removeprefix(prefix).lower() for v in enum.values if v.number != 0]


def _enum_prefix(enum: EnumDescriptor) -> str:
    zero = enum.values_by_number[0].name
    return zero.removesuffix("UNSPECIFIED")


@dataclass(frozen=True, slots=True)
class Param:
    """A tool argument that is a request field.

    Attributes:
        name: The argument's name, which is also the SDK method's keyword.
        path: The request field it sets, as a dotted path.
        required: Whether a call must give it.
        default: A default advertised in the schema (the SDK's default applies otherwise).
        scope: Whether it is one of user_id, agent_id, run_id (hidden when fixed).
    """

    name: str
    path: str
    required: bool = False
    default: Any = None
    scope: bool = False

    def schema(self, method: str) -> dict[str, Any]:
        field = resolve(request_type(method), self.path)
        result = field_schema(field)
        if self.default is not None:
            result["default"] = self.default
        return result


def field_schema(field: FieldDescriptor) -> dict[str, Any]:
    """The JSON Schema of one field's value as a tool takes it, with its comment."""
    description = comment(field.full_name)
    schema: dict[str, Any]
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value = field.message_type.fields_by_name["value"]
        if value.message_type is None or value.message_type.full_name != _VALUE:
            raise TypeError(f"{field.full_name}: no tool schema for this map")
        return {"type": "object", "description": description}
    if field.enum_type is not None:
        choices = enum_choices(field.enum_type)
        prefix = _enum_prefix(field.enum_type)
        meanings = "; ".join(
            f"{v.name.removeprefix(prefix).lower()} ({_value_comment(field.enum_type, v.name)})"
            for v in field.enum_type.values
            if v.number != 0
        )
        schema = {"type": "string", "enum": choices}
        description = f"{description} One of: {meanings}."
    elif field.message_type is not None:
        if field.message_type.full_name != _DURATION:
            raise TypeError(f"{field.full_name}: no tool schema for {field.message_type.full_name}")
        schema = {"type": "number", "exclusiveMinimum": 0}
        description = f"{description} In seconds."
    elif field.type in _SCALARS:
        schema = {"type": _SCALARS[field.type]}
    else:
        raise TypeError(f"{field.full_name}: no tool schema for field type {field.type}")
    if field.is_repeated:
        schema = {"type": "array", "items": schema}
    schema["description"] = description
    return schema


def _value_comment(enum: EnumDescriptor, name: str) -> str:
    return comment(f"{enum.full_name}.{name}").rstrip(".")


def input_schema(
    method: str, params: tuple[Param, ...], *, extra: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The object schema of a tool: one property per parameter, nothing else accepted."""
    properties = {p.name: p.schema(method) for p in params}
    properties.update(extra or {})
    required = [p.name for p in params if p.required]
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema
