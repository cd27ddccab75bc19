"""The domain error tree. Imports no grpc: `api/status.py` alone maps these to
gRPC statuses with google.rpc details.

    MnemoError                      (INTERNAL / INTERNAL, LLM_OUTPUT_INVALID)
    ├── InvalidArgumentError        (INVALID_ARGUMENT / reason given per raise: INVALID_ID,
    │                                INVALID_TIME, REQUEST_UNDECODABLE, ...)
    ├── NotFoundError               (NOT_FOUND / MEMORY_NOT_FOUND, API_KEY_NOT_FOUND, OPERATION_NOT_FOUND)
    ├── AlreadyExistsError          (ALREADY_EXISTS / MEMORY_ALREADY_EXISTS)
    ├── FailedPreconditionError     (FAILED_PRECONDITION / ETAG_MISMATCH, REQUEST_ID_REUSED, ...)
    ├── OutOfRangeError             (OUT_OF_RANGE / REVISION_COMPACTED, REVISION_AHEAD)
    ├── AbortedError                (ABORTED / BATCH_ABORTED, WATCH_TOO_SLOW)
    ├── ResourceExhaustedError      (RESOURCE_EXHAUSTED / RATE_LIMITED, QUOTA_EXCEEDED, ...)
    │   └── StorageFullError        (RESOURCE_EXHAUSTED / STORAGE_FULL)
    ├── UnauthenticatedError        (UNAUTHENTICATED / API_KEY_MISSING, API_KEY_INVALID)
    ├── PermissionDeniedError       (PERMISSION_DENIED / ROLE_FORBIDDEN, SCOPE_FORBIDDEN, MEMORY_ID_FORBIDDEN)
    ├── UnavailableError            (UNAVAILABLE / SERVER_NOT_READY, SERVER_DRAINING, EMBEDDER_UNAVAILABLE,
    │   │                            LLM_UNAVAILABLE, STORE_UNAVAILABLE, REVISION_NOT_REACHED)
    │   └── DataDirectoryLostError  (UNAVAILABLE / DATA_DIRECTORY_LOST)
    ├── DeadlineExceededError       (DEADLINE_EXCEEDED / LLM_TIMEOUT)
    └── UnimplementedError          (UNIMPLEMENTED / NOT_IMPLEMENTED)

Reasons are public API: each is a value of mnemo.v1.ErrorReason (without its
prefix) and is documented in docs/errors.md; a test keeps the three in step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field: a path such as "memory.content" or "requests[2].vector"."""

    field: str
    description: str


class MnemoError(Exception):
    """The root of all errors the server reports on purpose."""

    code = "INTERNAL"
    default_reason = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        violations: Sequence[FieldViolation] = (),
        metadata: Mapping[str, str] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.violations = tuple(violations)
        self.metadata = dict(metadata or {})
        self.retry_after_s = retry_after_s

    def with_field_prefix(self, prefix: str) -> MnemoError:
        """The same error with every violation's field put under `prefix`
        (used when a batch item fails: "memory.content" -> "operations[3].create.memory.content")."""
        self.violations = tuple(
            FieldViolation(f"{prefix}.{v.field}" if v.field else prefix, v.description)
            for v in self.violations
        )
        return self


class InvalidArgumentError(MnemoError):
    code = "INVALID_ARGUMENT"
    default_reason = "INVALID_ARGUMENT"


def invalid(reason: str, field: str, description: str) -> InvalidArgumentError:
    """An INVALID_ARGUMENT error about one field."""
    return InvalidArgumentError(
        f"{field}: {description}", reason=reason, violations=[FieldViolation(field, description)]
    )


class NotFoundError(MnemoError):
    code = "NOT_FOUND"
    default_reason = "MEMORY_NOT_FOUND"


class AlreadyExistsError(MnemoError):
    code = "ALREADY_EXISTS"
    default_reason = "MEMORY_ALREADY_EXISTS"


class FailedPreconditionError(MnemoError):
    code = "FAILED_PRECONDITION"
    default_reason = "ETAG_MISMATCH"


class OutOfRangeError(MnemoError):
    code = "OUT_OF_RANGE"
    default_reason = "REVISION_COMPACTED"


class AbortedError(MnemoError):
    code = "ABORTED"
    default_reason = "BATCH_ABORTED"


class ResourceExhaustedError(MnemoError):
    code = "RESOURCE_EXHAUSTED"
    default_reason = "RATE_LIMITED"


class UnauthenticatedError(MnemoError):
    code = "UNAUTHENTICATED"
    default_reason = "API_KEY_INVALID"


class PermissionDeniedError(MnemoError):
    code = "PERMISSION_DENIED"
    default_reason = "ROLE_FORBIDDEN"


class UnavailableError(MnemoError):
    code = "UNAVAILABLE"
    default_reason = "SERVER_NOT_READY"


class StorageFullError(ResourceExhaustedError):
    """The disk under the data directory is full: nothing was written."""

    default_reason = "STORAGE_FULL"


class DataDirectoryLostError(UnavailableError):
    """The data directory was deleted or replaced under the running server."""

    default_reason = "DATA_DIRECTORY_LOST"


class DeadlineExceededError(MnemoError):
    """Something the server waited for (the extraction LLM) took too long."""

    code = "DEADLINE_EXCEEDED"
    default_reason = "LLM_TIMEOUT"


class UnimplementedError(MnemoError):
    code = "UNIMPLEMENTED"
    default_reason = "NOT_IMPLEMENTED"
