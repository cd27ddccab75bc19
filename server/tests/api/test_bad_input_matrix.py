"""The bad-input matrix: every kind of field an RPC takes (strings, ids,
vectors, times, durations, enums, masks, page tokens, order_by and filters,
metadata, batches, streams, and bytes that are no request at all) with the
code and reason a client gets for it, over real gRPC on loopback.

No row may come back INTERNAL or UNKNOWN, or RESOURCE_EXHAUSTED because the
status echoed too much of the input to fit in gRPC's trailers; a row names
the code and the reason, never message text.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2

from mnemo.v1 import admin_service_pb2 as admin
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from ..conftest import RunningServer, error_of

U = "matrix-user"
DIM = 384  # the real model's dimension
NAN, INF = float("nan"), float("inf")
Call = Callable[[RunningServer], Any]

# -- request builders -----------------------------------------------------------


def create(ttl: duration_pb2.Duration | None = None, dedup: Any = None, **memory: Any) -> Call:
    memory.setdefault("user_id", U)
    memory.setdefault("content", "a matrix memory")
    request = pb.CreateMemoryRequest(memory=m.Memory(**memory), ttl=ttl, dedup=dedup)
    return lambda s: s.memory.CreateMemory(request)


def update(paths: list[str], ttl: duration_pb2.Duration | None = None, **memory: Any) -> Call:
    def call(s: RunningServer) -> Any:
        memory.setdefault("id", _seed(s))
        request = pb.UpdateMemoryRequest(
            memory=m.Memory(**memory), update_mask=field_mask_pb2.FieldMask(paths=paths), ttl=ttl
        )
        return s.memory.UpdateMemory(request)

    return call


def search(**fields: Any) -> Call:
    fields.setdefault("scope", m.Scope(user_id=U))
    return lambda s: s.memory.SearchMemories(pb.SearchMemoriesRequest(**fields))


def listing(**fields: Any) -> Call:
    return lambda s: s.memory.ListMemories(pb.ListMemoriesRequest(**fields))


def get(memory_id: str, **fields: Any) -> Call:
    return lambda s: s.memory.GetMemory(pb.GetMemoryRequest(id=memory_id, **fields))


def create_key(**fields: Any) -> Call:
    fields.setdefault("role", admin.API_KEY_ROLE_READER)
    return lambda s: s.admin.CreateApiKey(admin.CreateApiKeyRequest(**fields))


def revoke_key(key_id: str) -> Call:
    return lambda s: s.admin.RevokeApiKey(admin.RevokeApiKeyRequest(id=key_id))


def watch(**fields: Any) -> Call:
    return lambda s: next(iter(s.memory.WatchMemories(pb.WatchMemoriesRequest(**fields), timeout=10)))


def import_stream(*items: pb.ImportMemoriesRequest) -> Call:
    return lambda s: s.memory.ImportMemories(iter(items), timeout=10)


def raw(method: str, *payloads: bytes) -> Call:
    """Bytes sent as they are, by the method's kind of call."""
    service, rpc = method.split(".")
    path = f"/mnemo.v1.{service}/{rpc}"

    def call(s: RunningServer) -> Any:
        if rpc in ("ImportMemories",):
            return s.channel.stream_unary(path)(iter(payloads), timeout=10)
        if rpc == "StreamSearchMemories":
            return list(s.channel.stream_stream(path)(iter(payloads), timeout=10))
        if rpc in ("ExportMemories", "WatchMemories", "ReembedMemories"):
            return next(iter(s.channel.unary_stream(path)(payloads[0], timeout=10)))
        return s.channel.unary_unary(path)(payloads[0], timeout=10)

    return call


def seconds(value: int, nanos: int = 0) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=value, nanos=nanos)


def at(value: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=value, nanos=nanos)


def value(**kind: Any) -> m.Value:
    return m.Value(**kind)


def nested_value(levels: int) -> m.Value:
    root = m.Value()
    current = root
    for _ in range(levels):
        current = current.list_value.values.add()
    current.string_value = "bottom"
    return root


def token(query: str, cursor: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps({"q": query, "a": cursor}).encode()).decode().rstrip("=")


def forged(make: Callable[[str, list[Any]], str], **listing_fields: Any) -> Call:
    """A list call whose token keeps a real token's fingerprint (same scope and
    order, so the fingerprint check passes) but not its cursor."""

    def call(s: RunningServer) -> Any:
        real = _list_token(s, listing_fields.get("order_by", ""))
        data = json.loads(base64.urlsafe_b64decode(real + "=" * (-len(real) % 4)))
        request = pb.ListMemoriesRequest(
            scope=m.Scope(user_id=U), page_token=make(data["q"], data["a"]), page_size=1, **listing_fields
        )
        return s.memory.ListMemories(request)

    return call


def forged_history(cursor: Any) -> Call:
    def call(s: RunningServer) -> Any:
        memory_id = _seed(s)
        real = s.memory.GetMemoryHistory(
            pb.GetMemoryHistoryRequest(id=memory_id, page_size=1)
        ).next_page_token
        data = json.loads(base64.urlsafe_b64decode(real + "=" * (-len(real) % 4)))
        request = pb.GetMemoryHistoryRequest(id=memory_id, page_token=token(data["q"], cursor))
        return s.memory.GetMemoryHistory(request)

    return call


def forged_keys(cursor: Any) -> Call:
    def call(s: RunningServer) -> Any:
        for _ in range(2):
            s.admin.CreateApiKey(admin.CreateApiKeyRequest(role=admin.API_KEY_ROLE_READER))
        real = s.admin.ListApiKeys(admin.ListApiKeysRequest(page_size=1)).next_page_token
        data = json.loads(base64.urlsafe_b64decode(real + "=" * (-len(real) % 4)))
        return s.admin.ListApiKeys(admin.ListApiKeysRequest(page_token=token(data["q"], cursor)))

    return call


_SEEDED: dict[str, str] = {}


def _seed(s: RunningServer) -> str:
    """A memory of the matrix user with two versions (so history pages)."""
    if "id" not in _SEEDED:
        created = s.memory.CreateMemory(
            pb.CreateMemoryRequest(memory=m.Memory(user_id=U, content="seed one"))
        )
        s.memory.CreateMemory(pb.CreateMemoryRequest(memory=m.Memory(user_id=U, content="seed two")))
        s.memory.UpdateMemory(
            pb.UpdateMemoryRequest(
                memory=m.Memory(id=created.memory.id, content="seed one, changed"),
                update_mask=field_mask_pb2.FieldMask(paths=["content"]),
            )
        )
        _SEEDED["id"] = created.memory.id
    return _SEEDED["id"]


def _list_token(s: RunningServer, order_by: str) -> str:
    _seed(s)
    page = s.memory.ListMemories(
        pb.ListMemoriesRequest(scope=m.Scope(user_id=U), order_by=order_by, page_size=1)
    )
    assert page.next_page_token
    return page.next_page_token


def _garbage(kind: str) -> bytes:
    """Bytes that are not the request: not protobuf, or protobuf a parser must refuse."""
    if kind == "garbage":
        return b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"
    if kind == "truncated":
        return pb.CreateMemoryRequest(memory=m.Memory(user_id=U, content="cut short")).SerializeToString()[
            :-3
        ]
    if kind == "utf8":  # CreateMemoryRequest.memory (1) { content (5): "\xff\xfe" }
        content = m.Memory.DESCRIPTOR.fields_by_name["content"].number
        inner = bytes([content << 3 | 2, 2]) + b"\xff\xfe"
        return bytes([1 << 3 | 2, len(inner)]) + inner
    if kind == "utf8-top":  # GetMemoryRequest.id (1) = "\xc3\x28"
        return bytes([1 << 3 | 2, 2]) + b"\xc3\x28"
    if kind == "deep":  # metadata nested past protobuf's recursion limit of 100
        data = m.Value(string_value="bottom").SerializeToString()
        list_value = m.Value.DESCRIPTOR.fields_by_name["list_value"].number
        for _ in range(150):
            values = _length_delimited(1, data)  # ListValue.values = 1
            data = _length_delimited(list_value, values)
        metadata = m.Memory.DESCRIPTOR.fields_by_name["metadata"].number
        entry = _length_delimited(1, b"k") + _length_delimited(2, data)
        memory = m.Memory(user_id=U, content="deep").SerializeToString() + _length_delimited(metadata, entry)
        return _length_delimited(1, memory)
    raise AssertionError(kind)


def _length_delimited(number: int, payload: bytes) -> bytes:
    size, out = len(payload), bytearray()
    while True:
        out.append((size & 0x7F) | (0x80 if size >> 7 else 0))
        size >>= 7
        if not size:
            break
    return _varint(number << 3 | 2) + bytes(out) + payload


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n >> 7 else 0))
        n >>= 7
        if not n:
            return bytes(out)


YEAR_10000 = 253_402_300_800
BEFORE_YEAR_1 = -62_135_596_801
HEADER = pb.ImportMemoriesRequest(header=pb.ExportHeader(format_version=1))
IA, NF, FP = "INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION"

# (name, call, code, reason)
CASES: list[tuple[str, Call, str, str]] = [
    # -- strings --
    ("content empty", create(content=""), IA, "CONTENT_EMPTY"),
    ("content blank", create(content=" \n\t "), IA, "CONTENT_EMPTY"),
    ("content too large", create(content="x" * (32 * 1024 + 1)), IA, "CONTENT_TOO_LARGE"),
    ("query too large", search(query="x" * (32 * 1024 + 1)), IA, "CONTENT_TOO_LARGE"),
    ("user_id too long", create(user_id="u" * 257), IA, "INVALID_ARGUMENT"),
    ("user_id control char", create(user_id="a\x01b"), IA, "INVALID_ARGUMENT"),
    ("agent_id too long", create(agent_id="a" * 257), IA, "INVALID_ARGUMENT"),
    ("tag empty", create(tags=[""]), IA, "INVALID_ARGUMENT"),
    ("tag too long", create(tags=["t" * 65]), IA, "INVALID_ARGUMENT"),
    ("too many tags", create(tags=[f"t{i}" for i in range(65)]), IA, "METADATA_TOO_LARGE"),
    ("request_id too long", create(), IA, "INVALID_ARGUMENT"),  # replaced below
    ("no scope", create(user_id=""), IA, "SCOPE_REQUIRED"),
    (
        "bulk delete without scope or filter",
        lambda s: s.memory.DeleteMemories(pb.DeleteMemoriesRequest(dry_run=True)),
        IA,
        "SCOPE_REQUIRED",
    ),
    ("key display_name too long", create_key(display_name="d" * 129), IA, "INVALID_ARGUMENT"),
    (
        "link relation empty",
        create(links=[m.MemoryLink(target_id="abc", relation="")]),
        IA,
        "INVALID_ARGUMENT",
    ),
    # -- ids --
    ("id with a space", create(id="has space"), IA, "INVALID_ID"),
    ("id of 129 characters", create(id="i" * 129), IA, "INVALID_ID"),
    ("get empty id", get(""), IA, "INVALID_ID"),
    ("get 10,000-character id", get("i" * 10_000), IA, "INVALID_ID"),
    ("get unknown id", get("no-such-memory"), NF, "MEMORY_NOT_FOUND"),
    ("update unknown id", update(["content"], id="no-such-memory", content="x"), NF, "MEMORY_NOT_FOUND"),
    ("delete bad id", lambda s: s.memory.DeleteMemory(pb.DeleteMemoryRequest(id="a/b")), IA, "INVALID_ID"),
    (
        "history 10,000-character id",
        lambda s: s.memory.GetMemoryHistory(pb.GetMemoryHistoryRequest(id="h" * 10_000)),
        IA,
        "INVALID_ID",
    ),
    ("link target bad id", create(links=[m.MemoryLink(target_id="bad id", relation="r")]), IA, "INVALID_ID"),
    (
        "link target missing",
        create(links=[m.MemoryLink(target_id="nowhere", relation="r")]),
        FP,
        "LINK_TARGET_NOT_FOUND",
    ),
    ("revoke 10,000-character key id", revoke_key("k" * 10_000), NF, "API_KEY_NOT_FOUND"),
    ("revoke 65-character key id", revoke_key("k" * 65), NF, "API_KEY_NOT_FOUND"),
    ("revoke unknown key id", revoke_key("0123456789abcdef"), NF, "API_KEY_NOT_FOUND"),
    ("revoke empty key id", revoke_key(""), NF, "API_KEY_NOT_FOUND"),
    ("revoke key id with a slash", revoke_key("../etc"), NF, "API_KEY_NOT_FOUND"),
    # -- vectors --
    ("embedding of the wrong dimension", create(embedding=[0.1] * 3), IA, "EMBEDDING_DIMENSION_MISMATCH"),
    ("embedding with NaN", create(embedding=[NAN] + [0.1] * (DIM - 1)), IA, "EMBEDDING_NOT_FINITE"),
    ("embedding with infinity", create(embedding=[INF] + [0.1] * (DIM - 1)), IA, "EMBEDDING_NOT_FINITE"),
    ("embedding of zeros", create(embedding=[0.0] * DIM), IA, "EMBEDDING_NOT_FINITE"),
    ("search vector of the wrong dimension", search(vector=[0.5] * 5), IA, "EMBEDDING_DIMENSION_MISMATCH"),
    ("search vector with NaN", search(vector=[NAN] * DIM), IA, "EMBEDDING_NOT_FINITE"),
    ("search with query and vector", search(query="q", vector=[0.1] * DIM), IA, "QUERY_REQUIRED"),
    ("search with neither", search(), IA, "QUERY_REQUIRED"),
    ("top_k negative", search(query="q", top_k=-1), IA, "INVALID_TOP_K"),
    ("top_k above the maximum", search(query="q", top_k=1001), IA, "INVALID_TOP_K"),
    ("min_score NaN", search(query="q", min_score=NAN), IA, "INVALID_ARGUMENT"),
    # -- times --
    ("expire_time in the past", create(expire_time=at(1_000_000)), IA, "INVALID_TTL"),
    ("expire_time in year 10000", create(expire_time=at(YEAR_10000)), IA, "INVALID_TIME"),
    ("expire_time before year 1", create(expire_time=at(BEFORE_YEAR_1)), IA, "INVALID_TIME"),
    ("expire_time at int64 max", create(expire_time=at(2**63 - 1)), IA, "INVALID_TIME"),
    ("expire_time nanos negative", create(expire_time=at(4_000_000_000, -1)), IA, "INVALID_TIME"),
    ("expire_time nanos of a second", create(expire_time=at(4_000_000_000, 10**9)), IA, "INVALID_TIME"),
    (
        "update expire_time in year 10000",
        update(["expire_time"], expire_time=at(YEAR_10000)),
        IA,
        "INVALID_TIME",
    ),
    # -- durations --
    ("ttl and expire_time", create(ttl=seconds(60), expire_time=at(4_000_000_000)), IA, "INVALID_TTL"),
    ("ttl zero", create(ttl=seconds(0)), IA, "INVALID_TTL"),
    ("ttl negative", create(ttl=seconds(-5)), IA, "INVALID_TTL"),
    ("ttl of 10^12 seconds", create(ttl=seconds(10**12)), IA, "INVALID_TIME"),
    ("ttl past year 9999", create(ttl=seconds(300_000_000_000)), IA, "INVALID_TIME"),
    ("ttl at int64 max", create(ttl=seconds(2**63 - 1)), IA, "INVALID_TIME"),
    ("ttl with nanos of the other sign", create(ttl=seconds(5, -1)), IA, "INVALID_TIME"),
    ("update ttl of 10^12 seconds", update(["expire_time"], ttl=seconds(10**12)), IA, "INVALID_TIME"),
    ("key ttl of 10^12 seconds", create_key(ttl=seconds(10**12)), IA, "INVALID_TIME"),
    ("key ttl past year 9999", create_key(ttl=seconds(300_000_000_000)), IA, "INVALID_TIME"),
    ("key ttl negative", create_key(ttl=seconds(-1)), IA, "INVALID_ARGUMENT"),
    ("watch progress_interval of 10^12 s", watch(progress_interval=seconds(10**12)), IA, "INVALID_TIME"),
    ("watch progress_interval too short", watch(progress_interval=seconds(0, 1000)), IA, "INVALID_ARGUMENT"),
    ("filter time in year 0", listing(filter='create_time > "0000-01-01T00:00:00Z"'), IA, "INVALID_FILTER"),
    (
        "filter time moved before year 1 by its offset",
        listing(filter='create_time > "0001-01-01T00:00:00+01:00"'),
        IA,
        "INVALID_FILTER",
    ),
    (
        "filter time moved past year 9999 by its offset",
        listing(filter='update_time < "9999-12-31T23:59:59-01:00"'),
        IA,
        "INVALID_FILTER",
    ),
    # -- enums --
    ("memory kind unknown", create(kind=99), IA, "INVALID_ENUM_VALUE"),
    ("dedup mode unknown", create(dedup=pb.DedupPolicy(mode=99)), IA, "INVALID_ENUM_VALUE"),
    (
        "dedup threshold above 1",
        create(dedup=pb.DedupPolicy(mode=2, similarity_threshold=2)),
        IA,
        "INVALID_ARGUMENT",
    ),
    ("key role unknown", create_key(role=99), IA, "INVALID_ENUM_VALUE"),
    ("watch event type unknown", watch(event_types=[99]), IA, "INVALID_ENUM_VALUE"),
    (
        "import conflict policy unknown",
        import_stream(pb.ImportMemoriesRequest(options=pb.ImportOptions(on_conflict=99))),
        IA,
        "INVALID_ENUM_VALUE",
    ),
    # -- masks --
    (
        "read_mask unknown field",
        lambda s: get(_seed(s), read_mask={"paths": ["nope"]})(s),
        IA,
        "INVALID_FIELD_MASK",
    ),
    ("update_mask empty", update([], content="x"), IA, "INVALID_FIELD_MASK"),
    ("update_mask unknown field", update(["nope"], content="x"), IA, "INVALID_FIELD_MASK"),
    ("update_mask scope", update(["user_id"], user_id="other"), IA, "FIELD_IMMUTABLE"),
    # -- page tokens and sizes --
    ("page_token not base64", listing(page_token="%%%not a token%%%"), IA, "INVALID_PAGE_TOKEN"),
    ("page_token not JSON", listing(page_token="bm90IGpzb24"), IA, "INVALID_PAGE_TOKEN"),
    ("page_token JSON not an object", listing(page_token="WzEsMl0"), IA, "INVALID_PAGE_TOKEN"),
    (
        "page_token nested 100,000 deep",
        listing(page_token=base64.urlsafe_b64encode(b"[" * 100_000).decode()),
        IA,
        "INVALID_PAGE_TOKEN",
    ),
    (
        "page_token of another query",
        lambda s: listing(scope=m.Scope(user_id="someone-else"), page_token=_list_token(s, ""))(s),
        IA,
        "INVALID_PAGE_TOKEN",
    ),
    ("forged cursor of strings", forged(lambda q, a: token(q, ["x", "y"])), IA, "INVALID_PAGE_TOKEN"),
    ("forged cursor past int64", forged(lambda q, a: token(q, [2**70, a[-1]])), IA, "INVALID_PAGE_TOKEN"),
    ("forged cursor too short", forged(lambda q, a: token(q, a[:1])), IA, "INVALID_PAGE_TOKEN"),
    ("forged cursor too long", forged(lambda q, a: token(q, [*a, 1])), IA, "INVALID_PAGE_TOKEN"),
    ("forged cursor of a bool", forged(lambda q, a: token(q, [True, a[-1]])), IA, "INVALID_PAGE_TOKEN"),
    ("forged cursor of a float", forged(lambda q, a: token(q, [1.5, a[-1]])), IA, "INVALID_PAGE_TOKEN"),
    ("forged cursor of an object", forged(lambda q, a: token(q, {"x": 1})), IA, "INVALID_PAGE_TOKEN"),
    (
        "forged id-ordered cursor of an int",
        forged(lambda q, a: token(q, [1, 2]), order_by="id desc"),
        IA,
        "INVALID_PAGE_TOKEN",
    ),
    ("forged history cursor of a string", forged_history(["x"]), IA, "INVALID_PAGE_TOKEN"),
    ("forged history cursor of a list", forged_history([[1]]), IA, "INVALID_PAGE_TOKEN"),
    ("forged key cursor of an object", forged_keys([{"a": 1}]), IA, "INVALID_PAGE_TOKEN"),
    ("forged key cursor of null", forged_keys([None]), IA, "INVALID_PAGE_TOKEN"),
    ("forged key cursor of a lone surrogate", forged_keys(["\ud800"]), IA, "INVALID_PAGE_TOKEN"),
    (
        "forged id cursor of a lone surrogate",
        forged(lambda q, a: token(q, ["\udfff", "\ud800"]), order_by="id desc"),
        IA,
        "INVALID_PAGE_TOKEN",
    ),
    ("page_token of 10,000 characters", listing(page_token="A" * 10_000), IA, "INVALID_PAGE_TOKEN"),
    ("page_size negative", listing(page_size=-1), IA, "INVALID_PAGE_SIZE"),
    ("page_size above the maximum", listing(page_size=1001), IA, "INVALID_PAGE_SIZE"),
    (
        "key page_size above the maximum",
        lambda s: s.admin.ListApiKeys(admin.ListApiKeysRequest(page_size=100_000)),
        IA,
        "INVALID_PAGE_SIZE",
    ),
    # -- order_by and filters --
    ("order_by unknown field", listing(order_by="score"), IA, "INVALID_ORDER_BY"),
    ("order_by bad direction", listing(order_by="id up"), IA, "INVALID_ORDER_BY"),
    ("order_by a field twice", listing(order_by="id, id desc"), IA, "INVALID_ORDER_BY"),
    ("order_by of 20,000 characters", listing(order_by="x" * 20_000), IA, "INVALID_ORDER_BY"),
    ("filter does not parse", listing(filter="user_id = "), IA, "INVALID_FILTER"),
    ("filter unknown field", listing(filter="colour = 1"), IA, "INVALID_FILTER"),
    ("filter too long", listing(filter="id = " + "9" * 9000), IA, "INVALID_FILTER"),
    ("filter nested too deep", listing(filter="(" * 100 + "id = x" + ")" * 100), IA, "INVALID_FILTER"),
    ("search filter does not parse", search(query="q", filter="AND"), IA, "INVALID_FILTER"),
    ("watch filter does not parse", watch(filter="tags:"), IA, "INVALID_FILTER"),
    # -- metadata --
    (
        "metadata too large",
        create(metadata={"b": value(string_value="y" * 70_000)}),
        IA,
        "METADATA_TOO_LARGE",
    ),
    ("metadata nested 20 deep", create(metadata={"d": nested_value(20)}), IA, "METADATA_TOO_LARGE"),
    ("metadata NaN", create(metadata={"n": value(double_value=NAN)}), IA, "INVALID_ARGUMENT"),
    ("metadata empty key", create(metadata={"": value(bool_value=True)}), IA, "INVALID_ARGUMENT"),
    (
        "metadata key of 300 characters",
        create(metadata={"k" * 300: value(bool_value=True)}),
        IA,
        "INVALID_ARGUMENT",
    ),
    # -- batches and streams --
    (
        "batch write empty",
        lambda s: s.memory.BatchWriteMemories(pb.BatchWriteMemoriesRequest()),
        IA,
        "BATCH_TOO_LARGE",
    ),
    (
        "batch search empty",
        lambda s: s.memory.BatchSearchMemories(pb.BatchSearchMemoriesRequest()),
        IA,
        "BATCH_TOO_LARGE",
    ),
    (
        "import memory before its header",
        import_stream(pb.ImportMemoriesRequest(memory=m.Memory(user_id=U, content="x"))),
        IA,
        "IMPORT_HEADER_REQUIRED",
    ),
    (
        "import format version unknown",
        import_stream(pb.ImportMemoriesRequest(header=pb.ExportHeader(format_version=99))),
        IA,
        "UNSUPPORTED_FORMAT_VERSION",
    ),
    # -- requests that do not decode --
    (
        "garbage to CreateMemory",
        raw("MemoryService.CreateMemory", _garbage("garbage")),
        IA,
        "REQUEST_UNDECODABLE",
    ),
    (
        "truncated CreateMemory",
        raw("MemoryService.CreateMemory", _garbage("truncated")),
        IA,
        "REQUEST_UNDECODABLE",
    ),
    ("content not UTF-8", raw("MemoryService.CreateMemory", _garbage("utf8")), IA, "REQUEST_UNDECODABLE"),
    ("id not UTF-8", raw("MemoryService.GetMemory", _garbage("utf8-top")), IA, "REQUEST_UNDECODABLE"),
    (
        "metadata nested 150 deep",
        raw("MemoryService.CreateMemory", _garbage("deep")),
        IA,
        "REQUEST_UNDECODABLE",
    ),
    (
        "garbage to ListApiKeys",
        raw("AdminService.ListApiKeys", _garbage("garbage")),
        IA,
        "REQUEST_UNDECODABLE",
    ),
    (
        "garbage to ExportMemories",
        raw("MemoryService.ExportMemories", _garbage("garbage")),
        IA,
        "REQUEST_UNDECODABLE",
    ),
    (
        "garbage to WatchMemories",
        raw("MemoryService.WatchMemories", _garbage("garbage")),
        IA,
        "REQUEST_UNDECODABLE",
    ),
    (
        "garbage in an import stream",
        raw("MemoryService.ImportMemories", HEADER.SerializeToString(), _garbage("garbage")),
        IA,
        "REQUEST_UNDECODABLE",
    ),
    (
        "garbage in a search stream",
        raw("MemoryService.StreamSearchMemories", _garbage("garbage")),
        IA,
        "REQUEST_UNDECODABLE",
    ),
]
CASES[[c[0] for c in CASES].index("request_id too long")] = (
    "request_id too long",
    lambda s: s.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(user_id=U, content="x"), request_id="r" * 129)
    ),
    IA,
    "INVALID_ARGUMENT",
)


@pytest.mark.parametrize(("name", "call", "code", "reason"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_its_code_and_reason(
    server: RunningServer, name: str, call: Call, code: str, reason: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call(server)
    got_code, got_reason, _ = error_of(caught.value)
    assert (got_code.name, got_reason) == (code, reason)
    details = caught.value.details() or ""
    assert len(details.encode()) <= 512
    for leak in ("Traceback", "DecodeError", "Error parsing", "Exception"):
        assert leak not in details


def test_the_matrix_covers_every_field_kind() -> None:
    reasons = {c[3] for c in CASES}
    assert {
        "INVALID_ID",
        "EMBEDDING_DIMENSION_MISMATCH",
        "INVALID_TIME",
        "INVALID_TTL",
        "INVALID_ENUM_VALUE",
        "INVALID_FIELD_MASK",
        "INVALID_PAGE_TOKEN",
        "INVALID_ORDER_BY",
        "INVALID_FILTER",
        "METADATA_TOO_LARGE",
        "REQUEST_UNDECODABLE",
    } <= reasons
    assert len(CASES) >= 80


def _results(response: pb.BatchWriteMemoriesResponse) -> Iterator[tuple[int, str]]:
    for result in response.results:
        reasons = [d for d in result.status.details if d.type_url.endswith("ErrorInfo")]
        reason = ""
        if reasons:
            from google.rpc import error_details_pb2

            info = error_details_pb2.ErrorInfo()
            reasons[0].Unpack(info)
            reason = info.reason
        yield result.status.code, reason


def test_one_out_of_range_time_fails_only_its_operation_of_a_batch(server: RunningServer) -> None:
    """Before: the SQLite overflow of one op failed the whole non-atomic batch as INTERNAL."""
    ops = [
        pb.WriteOperation(create=pb.CreateMemoryRequest(memory=m.Memory(user_id=U, content="batch fine"))),
        pb.WriteOperation(
            create=pb.CreateMemoryRequest(memory=m.Memory(user_id=U, content="batch bad"), ttl=seconds(2**62))
        ),
        pb.WriteOperation(
            create=pb.CreateMemoryRequest(
                memory=m.Memory(user_id=U, content="batch bad too", expire_time=at(YEAR_10000))
            )
        ),
    ]
    response = server.memory.BatchWriteMemories(pb.BatchWriteMemoriesRequest(operations=ops))
    assert list(_results(response)) == [(0, ""), (3, "INVALID_TIME"), (3, "INVALID_TIME")]
    fields = []
    from google.rpc import error_details_pb2

    for detail in response.results[1].status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
    assert fields == ["operations[1].create.ttl"]


def test_an_import_item_out_of_range_fails_alone(server: RunningServer) -> None:
    good = m.Memory(id="import-time-good", user_id=U, content="imported fine")
    bad = m.Memory(id="import-time-bad", user_id=U, content="from the future", create_time=at(YEAR_10000))
    items = [HEADER, pb.ImportMemoriesRequest(memory=good), pb.ImportMemoriesRequest(memory=bad)]
    response = server.memory.ImportMemories(iter(items), timeout=30)
    assert (response.imported_count, response.failed_count) == (1, 1)
    assert response.failures[0].memory_id == "import-time-bad"
    assert response.failures[0].status.code == 3


def test_the_edges_of_the_range_are_accepted(server: RunningServer) -> None:
    latest = at(253_402_300_799, 999_999_999)
    created = server.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(user_id=U, content="expires at the end", expire_time=latest))
    )
    assert created.memory.expire_time.seconds == 253_402_300_799
    listed = server.memory.ListMemories(
        pb.ListMemoriesRequest(scope=m.Scope(user_id=U), filter='expire_time >= "9999-12-31T23:59:59Z"')
    )
    assert created.memory.id in [x.id for x in listed.memories]


def test_a_status_fits_in_grpc_trailers_whatever_it_echoes() -> None:
    from mnemo_server.api.status import status_of
    from mnemo_server.errors import FieldViolation, InvalidArgumentError

    huge = "\u00e9" * 50_000
    exc = InvalidArgumentError(
        huge,
        reason="INVALID_ARGUMENT",
        violations=[FieldViolation(f"requests[{i}].{huge}", huge) for i in range(1000)],
        metadata={f"k{i}{huge}": huge for i in range(100)},
    )
    status = status_of(exc, request_id="r" * 1000)
    assert len(status.message.encode()) <= 512
    assert status.ByteSize() <= 4096
    assert status.details and status.code == 3


def test_the_forged_tokens_pass_the_fingerprint_check(server: RunningServer) -> None:
    """The forged rows above test the cursor checks, not the fingerprint's."""
    call = forged(lambda q, a: token(q, a))
    assert call(server).memories
