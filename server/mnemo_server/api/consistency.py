"""Consistency tokens: a read that asks for at least a revision waits for it.

`reach(servicer, min_revision, remaining_s)` returns once this server's index
has applied `min_revision` and gives the revision the read then reflects.
When it is behind (a replica that has not caught up with another's write
yet) it registers an asyncio future with the service's applied revision
(service/consistency.py), asks the worker pool for one catch-up
(`catch_up_to`), and awaits whichever settles first, bounded by
`server.consistency_wait_ms` and the call's deadline: the event loop stays
free and nothing polls. The bound passed, it fails UNAVAILABLE /
REVISION_NOT_REACHED with a retry hint; a revision the store never
committed is OUT_OF_RANGE / REVISION_AHEAD (from `catch_up_to`).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from mnemo_server.errors import UnavailableError, invalid

#: Kept back from the call's deadline, so the caller gets REVISION_NOT_REACHED, not DEADLINE_EXCEEDED.
_DEADLINE_MARGIN_S: Final = 0.05
#: The retry hint (RetryInfo) of REVISION_NOT_REACHED.
RETRY_AFTER_S: Final = 0.1


def check(min_revision: int, field: str = "min_revision") -> None:
    """Refuses a negative token (INVALID_ARGUMENT), before any wait."""
    if min_revision < 0:
        raise invalid("INVALID_ARGUMENT", field, f"must not be negative, got {min_revision}")


def remaining_of(context: Any) -> float | None:
    """Seconds left of the call's deadline, None when it has none."""
    try:
        remaining = context.time_remaining()
    except Exception:  # not a gRPC context (Connect over HTTP sets none)
        return None
    return None if remaining is None else float(remaining)


async def reach(servicer: Any, min_revision: int, remaining_s: float | None = None) -> int:
    """Waits until the index has applied `min_revision`; returns the applied revision."""
    service = servicer.service
    applied = service.applied
    if min_revision <= applied.value:
        return int(applied.value)
    wait_s = service.settings.server.consistency_wait_ms / 1000
    if remaining_s is not None:
        wait_s = max(0.0, min(wait_s, remaining_s - _DEADLINE_MARGIN_S))
    loop = asyncio.get_running_loop()
    reached: asyncio.Future[None] = loop.create_future()

    def wake() -> None:  # on whichever thread raised the applied revision
        loop.call_soon_threadsafe(_settle, reached)

    cancel = applied.when_reached(min_revision, wake)
    # The catch-up runs in the worker pool and may outlive this wait; it is
    # what raises the applied revision (or says the revision is ahead).
    catch_up = asyncio.ensure_future(servicer.run(service.catch_up_to, min_revision))
    try:
        done, _ = await asyncio.wait({reached, catch_up}, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
        failed = catch_up.exception() if catch_up in done else None
        if failed is not None:
            raise failed
        # A catch-up that returned has applied at least min_revision (its
        # wake-up may still be on its way to this loop).
    finally:
        cancel()
        if not catch_up.done():
            catch_up.add_done_callback(_retrieve)
    if applied.value < min_revision:
        raise UnavailableError(
            f"this server has applied revision {applied.value}, not yet {min_revision}, "
            f"after waiting {wait_s * 1000:.0f} ms; retry, here or on another server",
            reason="REVISION_NOT_REACHED",
            metadata={"applied_revision": str(applied.value), "min_revision": str(min_revision)},
            retry_after_s=RETRY_AFTER_S,
        )
    return int(applied.value)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Marks a late catch-up's outcome as seen (its failure was the store's, reported elsewhere)."""
    if not task.cancelled():
        task.exception()
