"""A protoc plugin that emits Python messages, .pyi types and gRPC stubs.

buf's built-in Python generators need a `protoc` binary and none covers
grpc_python, so this plugin hands the request's descriptors to the protoc
compiled into `grpcio-tools` (pinned in pyproject.toml, so output is
reproducible) and returns what it writes.
"""

from __future__ import annotations

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
    sys.stdout.buffer.write(response.SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main())
