"""Request ids: what one is bound to, and the one replay check every write path uses.

A write call, each op of a batch, and a forget may carry a request id. Within
the idempotency window a retry with the same id answers what the first call
answered (`replayed`); the same id on a different request is refused with
REQUEST_ID_REUSED. Outcomes are kept as the store's `StoredOutcome` rows
(`stored` / `restored`), never with embeddings.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from mnemo_server.errors import FailedPreconditionError, MnemoError
from mnemo_server.pagination import fingerprint
from mnemo_server.service.types import WriteOp, WriteOutcome
from mnemo_server.store.base import IdempotentRecord, StoredOutcome


def replayed(
    record: IdempotentRecord | None, *, request_id: str, fingerprint: str, now: int, window_us: int
) -> tuple[StoredOutcome, ...] | None:
    """The outcomes first stored under `request_id`, or None when it is new
    (or its window has passed). Raises REQUEST_ID_REUSED when the id was
    used for a different request."""
    if record is None or record.create_time_us < now - window_us:
        return None
    if record.fingerprint != fingerprint:
        raise FailedPreconditionError(
            f"request_id {request_id!r} was already used for a different request",
            reason="REQUEST_ID_REUSED",
            metadata={"request_id": request_id},
        )
    return record.outcomes


def ops_fingerprint(ops: Sequence[WriteOp], atomic: bool) -> str:
    """What a request id is bound to: the request, without ids and places."""
    payload = [dataclasses.asdict(dataclasses.replace(op, request_id="", field="")) for op in ops]
    return fingerprint(atomic, json.dumps(payload, sort_keys=True, default=_exact))


def _exact(value: Any) -> Any:
    """JSON for what json.dumps cannot encode, exactly (str() would
    abbreviate a long array, so two vectors could share a fingerprint)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def stored(outcome: WriteOutcome) -> StoredOutcome:
    """An outcome as the store keeps it: no embedding, the error as plain values."""
    error = None
    if outcome.error is not None:
        error = (
            outcome.error.code,
            outcome.error.reason,
            outcome.error.message,
            dict(outcome.error.metadata),
        )
    memory = None if outcome.memory is None else dataclasses.replace(outcome.memory, embedding=None)
    return StoredOutcome(
        outcome.kind, memory, outcome.deduplicated, outcome.similarity, outcome.revision, error
    )


def restored(row: StoredOutcome) -> WriteOutcome:
    """A stored outcome as the first call answered it."""
    error = None
    if row.error is not None:
        code, reason, message, metadata = row.error
        error = _ERROR_BY_CODE.get(code, MnemoError)(message, reason=reason, metadata=metadata)
    return WriteOutcome(row.kind, row.memory, row.deduplicated, row.similarity, row.revision, error)


_ERROR_BY_CODE: dict[str, type[MnemoError]] = {cls.code: cls for cls in MnemoError.__subclasses__()}
