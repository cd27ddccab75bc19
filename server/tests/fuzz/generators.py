"""Seeded generators of hostile input: filters, page tokens, order_by strings,
whole request messages of every RPC and raw request bytes.

Each takes a `random.Random`, so a failing case is replayed from its seed.
The values lean on the edges the server must refuse cleanly: the ends of
the integer and time ranges, non-finite floats, unknown enum numbers,
strings that are empty, huge, control characters or lone surrogates,
nesting deeper than any limit, and bytes that are not protobuf at all.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor as d
from google.protobuf import duration_pb2, field_mask_pb2, message_factory, timestamp_pb2
from google.protobuf.message import Message

from mnemo.v1 import admin_service_pb2, memory_pb2, memory_service_pb2

SERVICES = (
    memory_service_pb2.DESCRIPTOR.services_by_name["MemoryService"],
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"],
)
#: Every RPC: (full method path, method descriptor).
METHODS: list[tuple[str, d.MethodDescriptor]] = [
    (f"/{service.full_name}/{method.name}", method) for service in SERVICES for method in service.methods
]

FIELDS = ("user_id", "agent_id", "run_id", "id", "kind", "tags", "pinned")
TIME_FIELDS = ("create_time", "update_time", "expire_time")
OPS = ("=", "!=", "<", "<=", ">", ">=", ":")
ORDER_FIELDS = ("create_time", "update_time", "id", "score", "content", "", "*")

INTS = (
    0, 1, -1, 2, 7, 8, 100, 1000, 1001, 2**31 - 1, -(2**31), 2**32, 2**53 + 1,
    2**63 - 1, -(2**63), 10**12, 253_402_300_799, 253_402_300_800, -62_135_596_800, -62_135_596_801,
)  # fmt: skip
FLOATS = (0.0, -0.0, 0.5, 1.0, -1.0, 1.5, 1e308, -1e308, 5e-324, float("nan"), float("inf"), float("-inf"))
STRINGS = (
    "", " ", "u1", "fuzz-user", "a" * 128, "a" * 129, "x" * 10_000, "has space", "tab\there", "nul\x00",
    "\u00e9t\u00e9", "\U0001f600", "\ud800", "'", '"', "\\", "%", "_", "*", "NULL", "null", "true",
    "metadata.a", "create_time", "2026-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
    "-1", "1e400", "../..", "${x}", "<script>", "SELECT 1; --", "mnemo_abc_def", "bootstrap",
)  # fmt: skip


def pick_string(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.6:
        return rng.choice(STRINGS)
    if roll < 0.9:
        alphabet = string.printable + "\u00e9\u4e2d\U0001f600\x00\x7f"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
    return "".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(rng.randint(1, 8)))


def pick_int(rng: random.Random) -> int:
    return rng.choice(INTS) if rng.random() < 0.7 else rng.randint(-(2**63), 2**63 - 1)


def pick_float(rng: random.Random) -> float:
    return rng.choice(FLOATS) if rng.random() < 0.6 else rng.uniform(-1e6, 1e6)


# -- the filter language --------------------------------------------------------


def _quoted(rng: random.Random) -> str:
    body = pick_string(rng)[:60]
    if rng.random() < 0.5:
        body = body.replace("\\", "\\\\").replace('"', '\\"')
    if rng.random() < 0.2:
        body += rng.choice(("\\u", "\\uD83D", "\\uD83D\\uDE00", "\\U0010FFFF", "\\U00110000", "\\x", "\\"))
    quote = rng.choice("\"'")
    return quote + body + quote


def _value(rng: random.Random, field: str) -> str:
    roll = rng.random()
    if field in TIME_FIELDS and roll < 0.6:
        return '"' + rng.choice(
            (
                "2026-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z",
                "0000-01-01T00:00:00Z", "10000-01-01T00:00:00Z", "2026-13-01T00:00:00Z",
                "2026-02-30T00:00:00Z", "2026-01-01T00:00:00+23:59", "2026-01-01T00:00:00-99:00",
                "2026-01-01T00:00:00.1234567Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                "null", "",
            )
        ) + '"'  # fmt: skip
    if roll < 0.3:
        return _quoted(rng)
    if roll < 0.6:
        return str(pick_int(rng)) if rng.random() < 0.7 else repr(pick_float(rng))
    return rng.choice(
        ("true", "false", "null", "*", "SEMANTIC", "EPISODIC", "PROCEDURAL", "x", "1e999", "-0", "AND", "NOT")
    )


def _field(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.35:
        return rng.choice(FIELDS)
    if roll < 0.55:
        return rng.choice(TIME_FIELDS)
    keys = [rng.choice(("a", "topic", "count", '"a.b"', '"favourite food"', '""', '"\'"', "x" * 300))]
    keys += [rng.choice(("b", "c", "0")) for _ in range(rng.randint(0, 3))]
    return "metadata." + ".".join(keys)


def _expression(rng: random.Random, depth: int) -> str:
    roll = rng.random()
    if depth > 4 or roll < 0.45:
        field = _field(rng)
        return f"{field} {rng.choice(OPS)} {_value(rng, field.split('.')[0])}"
    if roll < 0.6:
        return rng.choice(("NOT ", "-", "NOT NOT ")) + _expression(rng, depth + 1)
    if roll < 0.75:
        return "(" + _expression(rng, depth + 1) + ")"
    joiner = rng.choice((" AND ", " OR ", " ", " and ", "  OR  "))
    return joiner.join(_expression(rng, depth + 1) for _ in range(rng.randint(2, 4)))


def _mutate_text(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        where = rng.randint(0, len(chars))
        roll = rng.random()
        if roll < 0.4 and chars:
            del chars[min(where, len(chars) - 1)]
        elif roll < 0.8:
            chars.insert(where, rng.choice("()\"'\\=!<>:*- .\x00\t\nANDORNOT\ud800"))
        else:
            chars[where:where] = list(rng.choice(("(" * 40, ")" * 40, '"' * 3, "\\u00", "NOT " * 40)))
    return "".join(chars)


def filter_text(rng: random.Random) -> str:
    """A filter: mostly well-formed, often almost so, sometimes pathological."""
    roll = rng.random()
    if roll < 0.05:
        return rng.choice(
            (
                "(" * 100 + "id = 1" + ")" * 100,
                "NOT " * 500 + "pinned = true",
                " AND ".join(f"id = {i}" for i in range(250)),
                "id = " + "9" * 5000,
                "metadata." + ".".join(["k"] * 200) + " = 1",
                "x" * 9000,
            )
        )
    text = _expression(rng, 0)
    return _mutate_text(rng, text) if roll < 0.5 else text


def order_by(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 4)):
        word = rng.choice(ORDER_FIELDS) if rng.random() < 0.8 else pick_string(rng)[:20]
        direction = rng.choice(("", " asc", " desc", " DESC", " up", " asc desc"))
        parts.append(word + direction)
    text = rng.choice((",", ", ", " ,")).join(parts)
    return _mutate_text(rng, text) if rng.random() < 0.3 else text


# -- page tokens ----------------------------------------------------------------


def _json_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.5:
        return rng.choice(
            (pick_int(rng), 10**30, -(10**30), 1.5, True, None, pick_string(rng)[:30], "x" * 2000)
        )
    if roll < 0.75:
        return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {pick_string(rng)[:8]: _json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def page_token(rng: random.Random, real: list[str]) -> str:
    """A forged token: a real one altered, a real fingerprint with another
    cursor, or no token at all. `real` holds tokens the server issued."""
    roll = rng.random()
    if roll < 0.3 and real:
        token = rng.choice(real)
        raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        for _ in range(rng.randint(1, 3)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return _b64(bytes(raw)) if rng.random() < 0.7 else _mutate_text(rng, token)
    if roll < 0.7 and real:
        token = rng.choice(real)
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        cursor = list(data["a"])
        which = rng.random()
        if which < 0.4 and cursor:
            cursor[rng.randrange(len(cursor))] = _json_value(rng)
        elif which < 0.6:
            cursor.append(_json_value(rng))
        elif which < 0.7:
            cursor = cursor[:-1]
        else:
            cursor = _json_value(rng)
        return _b64(json.dumps({"q": data["q"], "a": cursor}).encode())
    if roll < 0.8:
        return _b64(("[" * rng.choice((10, 1000, 100_000))).encode())
    if roll < 0.9:
        return _b64(json.dumps(_json_value(rng)).encode())
    return pick_string(rng)


# -- whole messages -------------------------------------------------------------

MASK_PATHS = (
    "content",
    "tags",
    "metadata",
    "pinned",
    "expire_time",
    "user_id",
    "id",
    "*",
    "embedding",
    "nope",
    "",
)


def _set_scalar(rng: random.Random, message: Message, fd: d.FieldDescriptor, vector: int) -> None:
    name = fd.name
    t = fd.type
    repeated = fd.is_repeated
    if t in (d.FieldDescriptor.TYPE_FLOAT, d.FieldDescriptor.TYPE_DOUBLE):
        if repeated:
            count = rng.choice((0, 1, vector, vector, vector + 1, 3))
            values = [pick_float(rng) if rng.random() < 0.1 else rng.uniform(-1, 1) for _ in range(count)]
            getattr(message, name).extend(values)
        else:
            setattr(message, name, pick_float(rng))
        return
    if t == d.FieldDescriptor.TYPE_ENUM:
        numbers = [v.number for v in fd.enum_type.values]
        value = rng.choice(numbers) if rng.random() < 0.8 else rng.choice((-1, 99, 2**31 - 1))
        if repeated:
            getattr(message, name).extend([value] * rng.randint(1, 2))
        else:
            setattr(message, name, value)
        return
    if t == d.FieldDescriptor.TYPE_BOOL:
        value_b = rng.random() < 0.5
        if repeated:
            getattr(message, name).append(value_b)
        else:
            setattr(message, name, value_b)
        return
    if t in (d.FieldDescriptor.TYPE_STRING, d.FieldDescriptor.TYPE_BYTES):

        def one() -> Any:
            text = rng.choice(MASK_PATHS) if "path" in name else pick_string(rng)
            if name == "filter":
                text = filter_text(rng)
            elif name == "order_by":
                text = order_by(rng)
            # Lone surrogates cannot be encoded: protobuf refuses them client side.
            text = text.encode("utf-8", "replace").decode("utf-8")
            return text.encode() if t == d.FieldDescriptor.TYPE_BYTES else text

        if repeated:
            getattr(message, name).extend(one() for _ in range(rng.randint(0, 3)))
        else:
            setattr(message, name, one())
        return
    # Integers of every width: out-of-range values wrap to the field's width.
    bits = (
        32
        if t in (d.FieldDescriptor.TYPE_INT32, d.FieldDescriptor.TYPE_SINT32, d.FieldDescriptor.TYPE_SFIXED32)
        else 64
    )
    unsigned = t in (
        d.FieldDescriptor.TYPE_UINT32,
        d.FieldDescriptor.TYPE_UINT64,
        d.FieldDescriptor.TYPE_FIXED32,
        d.FieldDescriptor.TYPE_FIXED64,
    )
    if unsigned:
        bits = 32 if t in (d.FieldDescriptor.TYPE_UINT32, d.FieldDescriptor.TYPE_FIXED32) else 64

    def clamp(value: int) -> int:
        if unsigned:
            return value % (2**bits)
        value %= 2**bits
        return value - 2**bits if value >= 2 ** (bits - 1) else value

    if repeated:
        getattr(message, name).extend(clamp(pick_int(rng)) for _ in range(rng.randint(0, 2)))
    else:
        setattr(message, name, clamp(pick_int(rng)))


def _fill_time(rng: random.Random, message: Message) -> None:
    seconds = pick_int(rng) if rng.random() < 0.6 else rng.randint(-(10**11), 10**11)
    nanos = rng.choice((0, 1, 999_999_999, 1_000_000_000, -1, -(2**31), 2**31 - 1))
    message.seconds = seconds  # type: ignore[attr-defined]
    message.nanos = nanos  # type: ignore[attr-defined]


def fill(rng: random.Random, message: Message, *, depth: int = 0, vector: int = 8) -> Message:
    """Sets random fields of `message`, recursively (oneofs keep their last)."""
    if isinstance(message, timestamp_pb2.Timestamp | duration_pb2.Duration):
        _fill_time(rng, message)
        return message
    if isinstance(message, field_mask_pb2.FieldMask):
        message.paths.extend(rng.choice(MASK_PATHS) for _ in range(rng.randint(0, 3)))
        return message
    for fd in message.DESCRIPTOR.fields:
        if rng.random() < 0.4:
            continue
        if fd.type == d.FieldDescriptor.TYPE_MESSAGE:
            if depth > 5:
                continue
            field = getattr(message, fd.name)
            if fd.message_type.GetOptions().map_entry:
                value_fd = fd.message_type.fields_by_name["value"]
                for _ in range(rng.randint(0, 3)):
                    key = pick_string(rng)[:40].encode("utf-8", "replace").decode()
                    if value_fd.type == d.FieldDescriptor.TYPE_MESSAGE:
                        fill(rng, field[key], depth=depth + 1, vector=vector)
                    elif value_fd.type == d.FieldDescriptor.TYPE_STRING:
                        field[key] = pick_string(rng).encode("utf-8", "replace").decode()
            elif fd.is_repeated:
                for _ in range(rng.randint(0, 3)):
                    fill(rng, field.add(), depth=depth + 1, vector=vector)
            else:
                field.SetInParent()
                fill(rng, field, depth=depth + 1, vector=vector)
        else:
            _set_scalar(rng, message, fd, vector)
    return message


def message_class(descriptor: d.Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _tag(number, 2) + _varint(len(payload)) + payload


def _deep_value(levels: int) -> bytes:
    """A serialized Value of lists nested `levels` deep, built by hand: protobuf
    itself would refuse to build (copy or parse) one past its recursion limit."""
    value_fields = memory_pb2.Value.DESCRIPTOR.fields_by_name
    list_values = memory_pb2.ListValue.DESCRIPTOR.fields_by_name["values"].number
    data = memory_pb2.Value(string_value="bottom").SerializeToString()
    for _ in range(levels):
        data = _field_bytes(value_fields["list_value"].number, _field_bytes(list_values, data))
    return data


def _bad_utf8_field(rng: random.Random, descriptor: d.Descriptor) -> bytes:
    """A string field of the message (or of a nested one) holding bytes that are not UTF-8."""
    strings = [fd for fd in descriptor.fields if fd.type == d.FieldDescriptor.TYPE_STRING]
    payload = rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"ok\xf8\x88\x80\x80\x80"))
    if strings and rng.random() < 0.6:
        fd = rng.choice(strings)
        return _tag(fd.number, 2) + _varint(len(payload)) + payload
    nested = [fd for fd in descriptor.fields if fd.type == d.FieldDescriptor.TYPE_MESSAGE]
    if not nested:
        return _tag(1, 2) + _varint(len(payload)) + payload
    fd = rng.choice(nested)
    inner = _bad_utf8_field(rng, fd.message_type) if rng.random() < 0.7 else payload
    return _tag(fd.number, 2) + _varint(len(inner)) + inner


def _tag(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    raw = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        roll = rng.random()
        if roll < 0.3 and raw:
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        elif roll < 0.5 and raw:
            del raw[rng.randrange(len(raw)) :]
        elif roll < 0.8:
            at = rng.randint(0, len(raw))
            raw[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            at = rng.randint(0, len(raw))
            raw[at:at] = rng.choice(
                (b"\xff" * 10, b"\x0a\xff\xff\xff\xff\x0f", b"\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80")
            )
    return bytes(raw)


def request_bytes(rng: random.Random, method: d.MethodDescriptor, *, vector: int = 8) -> bytes:
    """One request message of `method` as bytes: valid, corrupted, or not protobuf."""
    cls = message_class(method.input_type)
    roll = rng.random()
    if roll < 0.45:
        return fill(rng, cls(), vector=vector).SerializeToString()
    if roll < 0.65:
        return _mutate_bytes(rng, fill(rng, cls(), vector=vector).SerializeToString())
    if roll < 0.8:
        return fill(rng, cls(), vector=vector).SerializeToString() + _bad_utf8_field(rng, method.input_type)
    if roll < 0.87:
        return _deep_request(rng, cls)
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))


def _deep_request(rng: random.Random, cls: type[Message]) -> bytes:
    """A request whose metadata nests past protobuf's recursion limit (or a limit of Mnemo's)."""
    value = _deep_value(rng.choice((17, 40, 90, 99, 150, 300)))
    entry = _field_bytes(1, b"deep") + _field_bytes(2, value)
    metadata = memory_pb2.Memory.DESCRIPTOR.fields_by_name["metadata"].number
    memory = memory_pb2.Memory(user_id="fuzz", content="deep").SerializeToString() + _field_bytes(
        metadata, entry
    )
    name = cls.DESCRIPTOR.full_name
    if name in (
        "mnemo.v1.CreateMemoryRequest",
        "mnemo.v1.ImportMemoriesRequest",
        "mnemo.v1.UpdateMemoryRequest",
    ):
        return _field_bytes(cls.DESCRIPTOR.fields_by_name["memory"].number, memory)
    if name == "mnemo.v1.BatchWriteMemoriesRequest":
        create = _field_bytes(1, memory)
        op = _field_bytes(
            memory_service_pb2.WriteOperation.DESCRIPTOR.fields_by_name["create"].number, create
        )
        return _field_bytes(cls.DESCRIPTOR.fields_by_name["operations"].number, op)
    # Nesting in an unknown field: a parser must still not fall over.
    return _field_bytes(1000, value)


Generator = Callable[[random.Random], Any]
