"""The mnemo.v1 contract as compiled: every RPC exists with its streaming kind,
and every element carries a comment (buf lint checks this too; this test
keeps it true even if the lint configuration drifts)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from mnemo.v1 import admin_service_pb2, memory_service_pb2

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / "clients/node/node_modules/.bin/buf"

UNARY, CLIENT, SERVER, BIDI = "unary", "client-stream", "server-stream", "bidi-stream"

EXPECTED_RPCS = {
    "mnemo.v1.MemoryService": {
        "CreateMemory": UNARY,
        "GetMemory": UNARY,
        "UpdateMemory": UNARY,
        "DeleteMemory": UNARY,
        "ListMemories": UNARY,
        "SearchMemories": UNARY,
        "BatchSearchMemories": UNARY,
        "StreamSearchMemories": BIDI,
        "BatchWriteMemories": UNARY,
        "ImportMemories": CLIENT,
        "ExportMemories": SERVER,
        "DeleteMemories": UNARY,
        "GetMemoryHistory": UNARY,
        "WatchMemories": SERVER,
    },
    "mnemo.v1.AdminService": {
        "GetStats": UNARY,
        "CheckConsistency": UNARY,
        "CreateSnapshot": UNARY,
        "ReembedMemories": SERVER,
        "CreateApiKey": UNARY,
        "ListApiKeys": UNARY,
        "RevokeApiKey": UNARY,
    },
}


def _kind(method: object) -> str:
    client = method.client_streaming  # type: ignore[attr-defined]
    server = method.server_streaming  # type: ignore[attr-defined]
    return {(False, False): UNARY, (True, False): CLIENT, (False, True): SERVER}.get((client, server), BIDI)


@pytest.mark.parametrize("service_name", sorted(EXPECTED_RPCS))
def test_every_rpc_exists_with_its_streaming_kind(service_name: str) -> None:
    files = {
        "mnemo.v1.MemoryService": memory_service_pb2,
        "mnemo.v1.AdminService": admin_service_pb2,
    }
    service = files[service_name].DESCRIPTOR.services_by_name[service_name.split(".")[-1]]
    actual = {m.name: _kind(m) for m in service.methods}
    assert actual == EXPECTED_RPCS[service_name]


def test_each_rpc_has_its_own_request_and_response() -> None:
    seen: set[str] = set()
    for module in (memory_service_pb2, admin_service_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                assert method.input_type.name == f"{method.name}Request"
                assert method.output_type.name == f"{method.name}Response"
                for name in (method.input_type.full_name, method.output_type.full_name):
                    assert name not in seen
                    seen.add(name)


@pytest.fixture(scope="module")
def source_info(tmp_path_factory: pytest.TempPathFactory) -> list[descriptor_pb2.FileDescriptorProto]:
    out = tmp_path_factory.mktemp("buf") / "image.binpb"
    subprocess.run(
        [str(BUF), "build", "--path", "proto/mnemo", "--as-file-descriptor-set", "-o", str(out)],
        cwd=ROOT,
        check=True,
    )
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return [f for f in fds.file if f.name.startswith("mnemo/")]


def _uncommented(file: descriptor_pb2.FileDescriptorProto) -> list[str]:
    """Paths of messages, fields, enums, values, services and methods without
    a leading comment, found by walking the descriptor the way SourceCodeInfo
    paths are numbered (descriptor.proto field numbers)."""
    comments = {tuple(loc.path): loc.leading_comments.strip() for loc in file.source_code_info.location}
    missing: list[str] = []

    def need(path: tuple[int, ...], name: str) -> None:
        if not comments.get(path):
            missing.append(f"{file.name}: {name}")

    def walk_message(msg: descriptor_pb2.DescriptorProto, path: tuple[int, ...], prefix: str) -> None:
        need(path, prefix + msg.name)
        for i, field in enumerate(msg.field):
            need(path + (2, i), f"{prefix}{msg.name}.{field.name}")
        for i, nested in enumerate(msg.nested_type):
            if not nested.options.map_entry:
                walk_message(nested, path + (3, i), f"{prefix}{msg.name}.")
        for i, enum in enumerate(msg.enum_type):
            walk_enum(enum, path + (4, i), f"{prefix}{msg.name}.")

    def walk_enum(enum: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], prefix: str) -> None:
        need(path, prefix + enum.name)
        for i, value in enumerate(enum.value):
            need(path + (2, i), f"{prefix}{enum.name}.{value.name}")

    for i, msg in enumerate(file.message_type):
        walk_message(msg, (4, i), "")
    for i, enum in enumerate(file.enum_type):
        walk_enum(enum, (5, i), "")
    for i, service in enumerate(file.service):
        need((6, i), service.name)
        for j, method in enumerate(service.method):
            need((6, i, 2, j), f"{service.name}.{method.name}")
    return missing


def test_every_element_has_a_comment(source_info: list[descriptor_pb2.FileDescriptorProto]) -> None:
    assert {f.name for f in source_info} >= {
        "mnemo/v1/memory.proto",
        "mnemo/v1/memory_service.proto",
        "mnemo/v1/admin_service.proto",
        "mnemo/v1/errors.proto",
    }
    missing = [m for f in source_info for m in _uncommented(f)]
    assert missing == []


def test_field_comments_say_whether_the_field_is_required(
    source_info: list[descriptor_pb2.FileDescriptorProto],
) -> None:
    bad = []
    for file in source_info:
        comments = {tuple(loc.path): loc.leading_comments.strip() for loc in file.source_code_info.location}

        def walk(msg: descriptor_pb2.DescriptorProto, path: tuple[int, ...]) -> None:
            for i, field in enumerate(msg.field):
                text = comments.get(path + (2, i), "")
                in_oneof = field.HasField("oneof_index") and not field.proto3_optional
                # A oneof member's requirement is stated once, on the oneof.
                if not in_oneof and not text.startswith(("Required.", "Optional.", "Output only.")):
                    bad.append(f"{file.name}: {msg.name}.{field.name}")
            for j, nested in enumerate(msg.nested_type):
                if not nested.options.map_entry:
                    walk(nested, path + (3, j))

        for i, msg in enumerate(file.message_type):
            walk(msg, (4, i))
    assert bad == []


def test_rpc_comments_name_their_errors(source_info: list[descriptor_pb2.FileDescriptorProto]) -> None:
    bad = []
    for file in source_info:
        comments = {tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location}
        for i, service in enumerate(file.service):
            for j, method in enumerate(service.method):
                if "Errors" not in comments.get((6, i, 2, j), ""):
                    bad.append(f"{service.name}.{method.name}")
    assert bad == []


def _documented_reasons() -> list[str]:
    text = (ROOT / "docs/errors.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    reasons = []
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if cells[1].startswith("`") and cells[1].strip("`").isupper():
            reasons.append(cells[0].strip("`"))
    return reasons


def test_docs_list_exactly_the_error_reasons() -> None:
    from mnemo.v1 import errors_pb2

    enum_reasons = [
        v.name.removeprefix("ERROR_REASON_")
        for v in errors_pb2.ErrorReason.DESCRIPTOR.values
        if v.number != 0
    ]
    assert _documented_reasons() == enum_reasons


def test_the_server_raises_only_documented_reasons() -> None:
    """Every reason string in the server's code is an ErrorReason value."""
    import re

    from mnemo.v1 import errors_pb2

    known = {v.name.removeprefix("ERROR_REASON_") for v in errors_pb2.ErrorReason.DESCRIPTOR.values}
    used: set[str] = set()
    for path in (ROOT / "server/mnemo_server").rglob("*.py"):
        text = path.read_text()
        used |= set(re.findall(r'reason="([A-Z_]+)"', text))
        used |= set(re.findall(r'default_reason = "([A-Z_]+)"', text))
        used |= set(re.findall(r'invalid\(\s*"([A-Z_]+)"', text))
    assert used, "found no reasons: the scan is broken"
    assert used - known == set()
