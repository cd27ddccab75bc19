"""When and how long to wait before retrying a failed call."""

from __future__ import annotations

import random
from dataclasses import dataclass

from mnemo.errors import MnemoError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter for UNAVAILABLE and RESOURCE_EXHAUSTED.

    A call is tried at most `max_attempts` times. The n-th retry waits
    `min(max_backoff, initial_backoff * multiplier ** (n - 1))` seconds, or the
    server's google.rpc.RetryInfo delay when that is longer, stretched by a random
    factor in [1, 1 + jitter]. RESOURCE_EXHAUSTED is retried only when the server
    sent RetryInfo (a rate limit, not a quota). No retry outlives the call's timeout.
    Writes are retried only when they carry a request id.

    Example:
        >>> RetryPolicy(max_attempts=1)  # never retry
        RetryPolicy(max_attempts=1, initial_backoff=0.1, max_backoff=5.0, multiplier=2.0, jitter=0.2)
    """

    max_attempts: int = 4
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1 or self.jitter < 0:
            raise ValueError("backoffs and jitter must not be negative, and multiplier at least 1")

    def retryable(self, error: MnemoError) -> bool:
        """Whether the error is worth retrying at all."""
        if error.code == "UNAVAILABLE":
            return True
        return error.code == "RESOURCE_EXHAUSTED" and error.retry_after is not None

    def backoff(self, retry: int, error: MnemoError | None = None) -> float:
        """The wait before the `retry`-th retry (1-based), jitter included."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        if error is not None and error.retry_after is not None:
            base = max(base, error.retry_after)
        return base * (1.0 + self.jitter * random.random())

    def delay(self, attempt: int, error: MnemoError) -> float | None:
        """The wait before trying again after `attempt` attempts failed with `error`,
        or None when the call should fail now."""
        if attempt >= self.max_attempts or not self.retryable(error):
            return None
        return self.backoff(attempt, error)


DEFAULT_RETRY = RetryPolicy()

def resume_revision(error: MnemoError) -> int | None:
    """The revision an error of a watch says to resume from (ErrorInfo metadata
    "resume_revision", as WATCH_TOO_SLOW and SERVER_DRAINING carry), if any."""
    value = error.metadata.get("resume_revision", "")
    return int(value) if value.isdigit() else None
