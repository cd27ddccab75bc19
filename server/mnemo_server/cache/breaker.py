"""A circuit breaker with a background probe, so a dead backend costs no latency.

    closed --(N consecutive failures, or one refused write)--> open
    open --(after a delay)--> half_open: a background thread runs the probe
    half_open --(probe succeeds)--> closed
    half_open --(probe fails)--> open, the delay doubled up to a maximum

Requests never probe: while the breaker is not closed they skip the backend
at once, and the probe thread alone finds out when it is back. Each change
between closed and open is logged once; probe attempts log at DEBUG.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

log = logging.getLogger("mnemo.cache")

CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half_open"


class CircuitBreaker:
    """Thread-safe; `allow()` is a lock-free read on the hot path."""

    def __init__(
        self,
        *,
        name: str,
        probe: Callable[[], None],
        failure_threshold: int = 3,
        retry_after_s: float = 0.5,
        max_retry_after_s: float = 10.0,
    ) -> None:
        """Creates a closed breaker.

        Args:
            name: what the log lines call the backend ("redis at host:port").
            probe: raises unless the backend works again; run off the
                request path, in the probe thread.
            failure_threshold: consecutive failures that open the breaker.
            retry_after_s: delay before the first probe after opening.
            max_retry_after_s: the delay doubles after each failed probe up
                to this.
        """
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if not 0 < retry_after_s <= max_retry_after_s:
            raise ValueError("need 0 < retry_after_s <= max_retry_after_s")
        self._name = name
        self._probe = probe
        self._threshold = failure_threshold
        self._retry_after_s = retry_after_s
        self._max_retry_after_s = max_retry_after_s
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.openings = 0

    @property
    def state(self) -> str:
        return self._state

    def allow(self) -> bool:
        """Whether requests may use the backend now."""
        return self._state == CLOSED

    def success(self) -> None:
        if self._failures:
            with self._lock:
                self._failures = 0

    def failure(self, error: BaseException, *, immediate: bool = False) -> None:
        """Counts a failed operation; `immediate` opens at once."""
        with self._lock:
            self._failures += 1
            if self._state != CLOSED or (self._failures < self._threshold and not immediate):
                return
            self._state = OPEN
            self._opened_at = time.monotonic()
            self.openings += 1
            log.warning(
                "cache backend %s failed (%s: %s); serving without it until it recovers",
                self._name,
                type(error).__name__,
                error,
            )
            if not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._probe_until_closed, name="mnemo-cache-probe", daemon=True
                )
                self._thread.start()

    def open_now(self, error: BaseException) -> None:
        """Opens the breaker regardless of the failure count."""
        self.failure(error, immediate=True)

    def close(self) -> None:
        """Stops the probe thread; the breaker stays in its state."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

    def _probe_until_closed(self) -> None:
        delay = self._retry_after_s
        while not self._stop.wait(delay):
            self._state = HALF_OPEN
            try:
                self._probe()
            except Exception as exc:
                log.debug("cache backend %s still failing: %s", self._name, exc)
                self._state = OPEN
                delay = min(delay * 2, self._max_retry_after_s)
                continue
            with self._lock:
                self._failures = 0
                self._state = CLOSED
            log.info(
                "cache backend %s recovered after %.1f s; using it again",
                self._name,
                time.monotonic() - self._opened_at,
            )
            return
