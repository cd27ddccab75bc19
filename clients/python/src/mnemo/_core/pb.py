"""google.protobuf and google.rpc, imported in one place.

The project's mypy runs without their stubs (types-protobuf); the ignores below
keep `mypy --strict` clean with or without them.
"""

from google.protobuf import (  # type: ignore[import-untyped, unused-ignore]
    duration_pb2,
    field_mask_pb2,
    json_format,
    timestamp_pb2,
)
from google.protobuf.message import Message  # type: ignore[import-untyped, unused-ignore]
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped, unused-ignore]

__all__ = [
    "Message",
    "duration_pb2",
    "error_details_pb2",
    "field_mask_pb2",
    "json_format",
    "status_pb2",
    "timestamp_pb2",
]
