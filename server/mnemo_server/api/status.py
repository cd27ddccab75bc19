"""The one place errors become gRPC statuses.

Domain errors (errors.MnemoError) become a google.rpc.Status with ErrorInfo
{reason, domain "mnemo.dev", metadata}, BadRequest field violations and
RetryInfo where they apply. Anything else becomes INTERNAL with a generic
message: the traceback is logged with the request id, never sent.
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
    info = error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN, metadata=exc.metadata)
    if request_id:
        info.metadata["request_id"] = request_id
    details = [_pack(info)]
    if exc.violations:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description, reason=exc.reason
                        )
                        for v in exc.violations
                    ]
                )
            )
        )
    if exc.retry_after_s is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(exc.retry_after_s * 1e9))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    return status_pb2.Status(code=getattr(code_pb2, exc.code), message=exc.message, details=details)


def grpc_status_of(exc: BaseException, *, request_id: str = "") -> grpc.Status:
    """The same, as the grpc.Status that context.abort_with_status takes."""
    return rpc_status.to_status(status_of(exc, request_id=request_id))


OK = status_pb2.Status(code=code_pb2.OK)
