"""Every failed call raises a `MnemoError`; there is one subclass per gRPC code.

    MnemoError                      code, reason, message, details, field_violations,
    │                               metadata, retry_after, request_id
    ├── CancelledError              CANCELLED
    ├── UnknownError                UNKNOWN
    ├── InvalidArgumentError        INVALID_ARGUMENT     (INVALID_FILTER, CONTENT_EMPTY, ...)
    ├── DeadlineExceededError       DEADLINE_EXCEEDED
    ├── NotFoundError               NOT_FOUND            (MEMORY_NOT_FOUND, API_KEY_NOT_FOUND)
    ├── AlreadyExistsError          ALREADY_EXISTS       (MEMORY_ALREADY_EXISTS)
    ├── PermissionDeniedError       PERMISSION_DENIED    (ROLE_FORBIDDEN, SCOPE_FORBIDDEN)
    ├── ResourceExhaustedError      RESOURCE_EXHAUSTED   (RATE_LIMITED, QUOTA_EXCEEDED, ...)
    ├── FailedPreconditionError     FAILED_PRECONDITION  (ETAG_MISMATCH, REQUEST_ID_REUSED, ...)
    ├── AbortedError                ABORTED              (BATCH_ABORTED, WATCH_TOO_SLOW)
    ├── OutOfRangeError             OUT_OF_RANGE         (REVISION_COMPACTED, REVISION_AHEAD)
    ├── UnimplementedError          UNIMPLEMENTED        (NOT_IMPLEMENTED)
    ├── InternalError               INTERNAL             (INTERNAL)
    ├── UnavailableError            UNAVAILABLE          (SERVER_NOT_READY, SERVER_DRAINING, ...)
    ├── DataLossError               DATA_LOSS
    └── UnauthenticatedError        UNAUTHENTICATED      (API_KEY_MISSING, API_KEY_INVALID)

Branch on the class (or `code`) and on `reason`, never on the message text. The
reasons are listed in the server's docs/errors.md. An error that did not come
from a Mnemo server (a refused connection, a deadline, a proxy) has an empty
`reason`.

Example:
    >>> from mnemo.errors import NotFoundError
    >>> try:
    ...     client.get("no-such-memory")
    ... except NotFoundError as err:
    ...     print(err.code, err.reason)
    NOT_FOUND MEMORY_NOT_FOUND
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from mnemo._core.pb import Message, error_details_pb2, status_pb2

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "CancelledError",
    "DataLossError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FieldViolation",
    "InternalError",
    "InvalidArgumentError",
    "MnemoError",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "UnknownError",
    "from_rpc_error",
    "from_status",
]

#: The ErrorInfo domain of errors a Mnemo server reports.
DOMAIN = "mnemo.dev"

_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid request field, from google.rpc.BadRequest.

    Attributes:
        field: The path of the field, such as "memory.content" or "requests[2].vector".
        description: What is wrong with it, for people.
        reason: The reason of the violation, when the server gave one.
    """

    field: str
    description: str
    reason: str = ""


class MnemoError(Exception):
    """A call failed. The root of every error the client raises for a failed call.

    Attributes:
        code: The gRPC status code name, such as "NOT_FOUND".
        reason: The stable reason from google.rpc.ErrorInfo, such as "MEMORY_NOT_FOUND";
            empty when the failure did not come from a Mnemo server.
        message: The status message, for people.
        details: The decoded google.rpc detail messages of the status.
        field_violations: The invalid fields, from google.rpc.BadRequest.
        metadata: The ErrorInfo metadata, such as {"current_etag": ...}.
        retry_after: Seconds to wait before retrying, from google.rpc.RetryInfo.
        request_id: The request id the server logged the call under, if it sent one.
    """

    code: str = "UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        reason: str = "",
        details: Sequence[Message] = (),
        field_violations: Sequence[FieldViolation] = (),
        metadata: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        request_id: str = "",
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.reason = reason
        self.details = tuple(details)
        self.field_violations = tuple(field_violations)
        self.metadata: dict[str, str] = dict(metadata or {})
        self.retry_after = retry_after
        self.request_id = request_id

    @property
    def grpc_code(self) -> grpc.StatusCode:
        """The code as a `grpc.StatusCode`."""
        return _GRPC_CODES.get(self.code, grpc.StatusCode.UNKNOWN)

    def __str__(self) -> str:
        head = f"{self.code} {self.reason}".strip()
        return f"{head}: {self.message}" if self.message else head

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(code={self.code!r}, reason={self.reason!r}, message={self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))


def _rebuild(cls: type[MnemoError], message: str, state: dict[str, Any]) -> MnemoError:
    err = cls(message)
    err.__dict__.update(state)
    return err


class CancelledError(MnemoError):
    """CANCELLED: the call was cancelled, usually by the caller."""

    code = "CANCELLED"


class UnknownError(MnemoError):
    """UNKNOWN: the failure has no better code."""

    code = "UNKNOWN"


class InvalidArgumentError(MnemoError):
    """INVALID_ARGUMENT: a request field is invalid; see `field_violations`."""

    code = "INVALID_ARGUMENT"


class DeadlineExceededError(MnemoError):
    """DEADLINE_EXCEEDED: the call did not finish within its timeout."""

    code = "DEADLINE_EXCEEDED"


class NotFoundError(MnemoError):
    """NOT_FOUND: the memory or API key does not exist (or is not visible)."""

    code = "NOT_FOUND"


class AlreadyExistsError(MnemoError):
    """ALREADY_EXISTS: a memory with the client-chosen id exists."""

    code = "ALREADY_EXISTS"


class PermissionDeniedError(MnemoError):
    """PERMISSION_DENIED: the API key may not make this call or reach this scope."""

    code = "PERMISSION_DENIED"


class ResourceExhaustedError(MnemoError):
    """RESOURCE_EXHAUSTED: a rate limit, quota or stream limit was reached."""

    code = "RESOURCE_EXHAUSTED"


class FailedPreconditionError(MnemoError):
    """FAILED_PRECONDITION: for example a stale etag or a reused request id."""

    code = "FAILED_PRECONDITION"


class AbortedError(MnemoError):
    """ABORTED: an atomic batch was rolled back, or a watcher fell behind."""

    code = "ABORTED"


class OutOfRangeError(MnemoError):
    """OUT_OF_RANGE: a watch asked for a revision the server no longer holds."""

    code = "OUT_OF_RANGE"


class UnimplementedError(MnemoError):
    """UNIMPLEMENTED: the server does not implement this call."""

    code = "UNIMPLEMENTED"


class InternalError(MnemoError):
    """INTERNAL: an unexpected server error, logged under `request_id`."""

    code = "INTERNAL"


class UnavailableError(MnemoError):
    """UNAVAILABLE: the server cannot be reached, is starting or is draining.

    An empty `reason` means the client could not reach a server at all.
    """

    code = "UNAVAILABLE"


class DataLossError(MnemoError):
    """DATA_LOSS: unrecoverable data loss or corruption."""

    code = "DATA_LOSS"


class UnauthenticatedError(MnemoError):
    """UNAUTHENTICATED: the API key is missing, unknown, revoked or expired."""

    code = "UNAUTHENTICATED"


_CLASSES: dict[str, type[MnemoError]] = {
    cls.code: cls
    for cls in (
        CancelledError,
        UnknownError,
        InvalidArgumentError,
        DeadlineExceededError,
        NotFoundError,
        AlreadyExistsError,
        PermissionDeniedError,
        ResourceExhaustedError,
        FailedPreconditionError,
        AbortedError,
        OutOfRangeError,
        UnimplementedError,
        InternalError,
        UnavailableError,
        DataLossError,
        UnauthenticatedError,
    )
}
_GRPC_CODES = {code.name: code for code in grpc.StatusCode}
_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


def from_status(status: status_pb2.Status) -> MnemoError:
    """The error a google.rpc.Status stands for (as found in batch results and streams).

    Args:
        status: A status whose code is not OK.
    """
    code = _CODE_NAMES.get(status.code, "UNKNOWN")
    reason, retry_after = "", None
    domain_metadata: dict[str, str] = {}
    violations: list[FieldViolation] = []
    details: list[Message] = []
    for any_detail in status.details:
        if any_detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_detail.Unpack(info)
            reason, domain_metadata = info.reason, dict(info.metadata)
            details.append(info)
        elif any_detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_detail.Unpack(bad)
            violations.extend(FieldViolation(v.field, v.description, v.reason) for v in bad.field_violations)
            details.append(bad)
        elif any_detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            any_detail.Unpack(retry)
            retry_after = retry.retry_delay.ToNanoseconds() / 1e9
            details.append(retry)
        else:
            details.append(any_detail)
    cls = _CLASSES.get(code, MnemoError)
    return cls(
        status.message,
        reason=reason,
        details=details,
        field_violations=violations,
        metadata=domain_metadata,
        retry_after=retry_after,
        request_id=domain_metadata.get("request_id", ""),
        code=code,
    )


def from_rpc_error(exc: grpc.RpcError) -> MnemoError:
    """The error a failed gRPC call (sync or asyncio) stands for."""
    code: grpc.StatusCode = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    message = (exc.details() if hasattr(exc, "details") else None) or ""
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == _DETAILS_KEY:
            status = status_pb2.Status.FromString(value)
            if status.code == code.value[0]:
                return from_status(status)
    status = status_pb2.Status(code=code.value[0], message=message)
    return from_status(status)
