"""The one place errors become gRPC statuses.

Domain errors (errors.MnemoError) become a google.rpc.Status with ErrorInfo
{reason, domain "mnemo.dev", metadata}, BadRequest field violations and
RetryInfo where they apply. Anything else becomes INTERNAL with a generic
message: the traceback is logged with the request id, never sent.

Statuses are bounded: gRPC sends them in trailers, and a client refuses
trailers larger than its metadata limit (8 KiB by default) with a
RESOURCE_EXHAUSTED of its own, so a message that echoes a huge input would
hide the real error. Messages, field paths, descriptions and metadata are
cut to a few hundred bytes and the details to MAX_DETAILS_BYTES.
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from mnemo_server.errors import MnemoError

DOMAIN = "mnemo.dev"
log = logging.getLogger("mnemo.api")

MAX_MESSAGE_BYTES = 512
MAX_FIELD_BYTES = 160
MAX_DESCRIPTION_BYTES = 200
MAX_METADATA_ENTRIES = 8
MAX_METADATA_BYTES = 128
#: The serialized details (sent base64, so a third larger) stay below this.
MAX_DETAILS_BYTES = 2048


def bounded(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes (on a character boundary), marked with "..."."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "..."


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def status_of(exc: BaseException, *, request_id: str = "") -> status_pb2.Status:
    """The google.rpc.Status an exception is reported as."""
    if not isinstance(exc, MnemoError):
        log.error("internal error (request_id=%s)", request_id or "-", exc_info=exc)
        info = error_details_pb2.ErrorInfo(reason="INTERNAL", domain=DOMAIN)
        if request_id:
            info.metadata["request_id"] = request_id
        return status_pb2.Status(
            code=code_pb2.INTERNAL,
            message="internal error" + (f" (request id {request_id})" if request_id else ""),
            details=[_pack(info)],
        )
    metadata = {
        bounded(key, MAX_METADATA_BYTES): bounded(value, MAX_METADATA_BYTES)
        for key, value in list(exc.metadata.items())[:MAX_METADATA_ENTRIES]
    }
    info = error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN, metadata=metadata)
    if request_id:
        info.metadata["request_id"] = bounded(request_id, MAX_METADATA_BYTES)
    details = [_pack(info)]
    if exc.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=bounded(v.field, MAX_FIELD_BYTES),
                    description=bounded(v.description, MAX_DESCRIPTION_BYTES),
                    reason=exc.reason,
                )
                for v in exc.violations
            ]
        )
        # The first violations say enough; the rest would not fit.
        while len(bad.field_violations) > 1 and bad.ByteSize() > MAX_DETAILS_BYTES - info.ByteSize():
            del bad.field_violations[-1]
        details.append(_pack(bad))
    if exc.retry_after_s is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(exc.retry_after_s * 1e9))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    return status_pb2.Status(
        code=getattr(code_pb2, exc.code), message=bounded(exc.message, MAX_MESSAGE_BYTES), details=details
    )


def grpc_status_of(exc: BaseException, *, request_id: str = "") -> grpc.Status:
    """The same, as the grpc.Status that context.abort_with_status takes."""
    return rpc_status.to_status(status_of(exc, request_id=request_id))


OK = status_pb2.Status(code=code_pb2.OK)
