"""A small progress bar on stderr, drawn only where someone can see it."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO


class Progress:
    """Counts work done and redraws one line at most ten times a second.

    Args:
        label: What is being counted, such as "exported".
        total: How many items there are, when known.
        enabled: Draw at all; None means only when the stream is a terminal.
        stream: Where to draw; stderr by default.
    """

    WIDTH = 30

    def __init__(
        self,
        label: str,
        *,
        total: int | None = None,
        enabled: bool | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.count = 0
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._start = time.monotonic()
        self._drawn = 0.0

    def advance(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if self.enabled and now - self._drawn >= 0.1:
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float, end: str = "") -> None:
        elapsed = max(now - self._start, 1e-9)
        rate = f"{self.count / elapsed:,.0f}/s"
        if self.total:
            done = min(self.count / self.total, 1.0)
            bar = "#" * int(done * self.WIDTH)
            text = f"{self.label} [{bar:<{self.WIDTH}}] {self.count:,}/{self.total:,} {rate}"
        else:
            text = f"{self.label} {self.count:,} {rate}"
        self.stream.write(f"\r{text}{end}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic(), end="\n")
            self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
