"""A protoc plugin that emits Python messages, .pyi types and gRPC stubs.

buf's built-in Python generators need a `protoc` binary and none covers
grpc_python, so this plugin hands the request's descriptors to the protoc
compiled into `grpcio-tools` (pinned in pyproject.toml, so output is
reproducible) and returns what it writes.

It also writes `mnemo/v1/comments.json`: the source comment of every message,
field, enum, enum value, service and method by full name. The runtime
descriptors in the *_pb2 modules carry no source info, and the MCP tools take
their descriptions from these comments (so the two cannot drift).
"""

from __future__ import annotations

import json
import pathlib
import sys
import tempfile

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def main() -> int:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    # google.rpc comes from googleapis-common-protos at run time.
    targets = [f for f in request.file_to_generate if f.startswith("mnemo/")]
    if not targets:
        sys.stdout.buffer.write(response.SerializeToString())
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        descriptors = root / "descriptors.binpb"
        descriptors.write_bytes(
            descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString()
        )
        out = root / "out"
        out.mkdir()
        status = protoc.main(
            [
                "protoc",
                f"--descriptor_set_in={descriptors}",
                f"--python_out={out}",
                f"--pyi_out={out}",
                f"--grpc_python_out={out}",
                *targets,
            ]
        )
        if status != 0:
            response.error = f"grpc_tools.protoc exited with {status}"
        else:
            for path in sorted(p for p in out.rglob("*") if p.is_file()):
                response.file.add(
                    name=path.relative_to(out).as_posix(), content=path.read_text()
                )
            wanted = set(targets)
            comments = comment_set([f for f in request.proto_file if f.name in wanted])
            response.file.add(
                name="mnemo/v1/comments.json",
                content=json.dumps(comments, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
            )
    sys.stdout.buffer.write(response.SerializeToString())
    return 0


# Field numbers in descriptor.proto that lead from a file to its elements.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM = 2, 3, 4
_ENUM_VALUE, _SERVICE_METHOD = 2, 2


def comment_set(files: list[descriptor_pb2.FileDescriptorProto]) -> dict[str, str]:
    """Full name -> leading comment (paragraphs kept, lines joined) of each element."""
    result: dict[str, str] = {}
    for f in files:
        _FileComments(f, result).collect()
    return result


class _FileComments:
    def __init__(self, f: descriptor_pb2.FileDescriptorProto, out: dict[str, str]) -> None:
        self.f = f
        self.out = out
        self.by_path = {
            tuple(loc.path): loc.leading_comments
            for loc in f.source_code_info.location
            if loc.leading_comments
        }

    def collect(self) -> None:
        package = self.f.package
        for i, m in enumerate(self.f.message_type):
            self.message(m, package, (_FILE_MESSAGE, i))
        for i, e in enumerate(self.f.enum_type):
            self.enum(e, package, (_FILE_ENUM, i))
        for i, s in enumerate(self.f.service):
            self.put(f"{package}.{s.name}", (_FILE_SERVICE, i))
            for j, method in enumerate(s.method):
                self.put(f"{package}.{s.name}.{method.name}", (_FILE_SERVICE, i, _SERVICE_METHOD, j))

    def put(self, name: str, path: tuple[int, ...]) -> None:
        text = self.by_path.get(path, "").strip()
        paragraphs = (" ".join(line.strip() for line in p.splitlines()) for p in text.split("\n\n"))
        self.out[name] = "\n\n".join(p for p in paragraphs if p)

    def enum(self, e: descriptor_pb2.EnumDescriptorProto, prefix: str, path: tuple[int, ...]) -> None:
        self.put(f"{prefix}.{e.name}", path)
        for i, v in enumerate(e.value):
            self.put(f"{prefix}.{e.name}.{v.name}", path + (_ENUM_VALUE, i))

    def message(self, m: descriptor_pb2.DescriptorProto, prefix: str, path: tuple[int, ...]) -> None:
        name = f"{prefix}.{m.name}"
        self.put(name, path)
        for i, field in enumerate(m.field):
            self.put(f"{name}.{field.name}", path + (_MESSAGE_FIELD, i))
        for i, nested in enumerate(m.nested_type):
            if not nested.options.map_entry:
                self.message(nested, name, path + (_MESSAGE_NESTED, i))
        for i, e in enumerate(m.enum_type):
            self.enum(e, name, path + (_MESSAGE_ENUM, i))


if __name__ == "__main__":
    sys.exit(main())
