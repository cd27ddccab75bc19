"""The reranker seam, and the stage that never lets a reranker fail a search.

A `Reranker` scores (query, text) pairs: higher is more relevant. The
`RerankStage` gives it the texts of a search's best `top_n` candidates (the
search passes them), puts them in its order (ties by the previous order)
and scores them with its scores. When the reranker raises, times out or answers something malformed,
the stage returns the candidates as they were, counts the failure by kind
(`failures`, read by telemetry_metrics.py as mnemo_rerank_failures_total)
and logs at most one warning per `log_interval_s`.
"""

from __future__ import annotations

import abc
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final

from mnemo_server.models import SearchHit

log = logging.getLogger("mnemo.rerank")

#: The kinds of failure counted.
KINDS: Final = ("unavailable", "timeout", "malformed")


class RerankFailure(Exception):
    """A reranker call that gave no usable scores; `kind` is one of KINDS."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class Reranker(abc.ABC):
    """Scores texts against a query (a cross-encoder)."""

    name: str = "reranker"

    @abc.abstractmethod
    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """One finite score per text, in order. Raises RerankFailure."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Releases connections or models."""


class RerankStage:
    """Runs a Reranker over a search's top candidates, degrading on failure."""

    def __init__(
        self,
        reranker: Reranker,
        *,
        top_n: int,
        by_default: bool = False,
        log_interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reranker = reranker
        self.top_n = top_n
        self.by_default = by_default
        self._log_interval_s = log_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_log = -math.inf
        self._suppressed = 0
        self.failures: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.applied = 0

    def rerank(self, query: str, hits: Sequence[SearchHit]) -> list[SearchHit] | None:
        """The hits in the reranker's order (ties by the order given), each
        scored with its score; None when the reranker failed (then serve
        the hits as they were)."""
        if not hits:
            return []
        try:
            scores = self.reranker.score(query, [h.memory.content for h in hits])
            if len(scores) != len(hits) or not all(math.isfinite(s) for s in scores):
                raise RerankFailure("malformed", f"{len(scores)} scores for {len(hits)} texts, or not finite")
        except RerankFailure as exc:
            self._failed(exc.kind, str(exc))
            return None
        except Exception as exc:  # a reranker's own bug must not fail the search either
            self._failed("unavailable", type(exc).__name__)
            return None
        order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
        with self._lock:
            self.applied += 1
        return [SearchHit(hits[i].memory, float(scores[i]), hits[i].explanation) for i in order]

    def _failed(self, kind: str, detail: str) -> None:
        now = self._clock()
        with self._lock:
            self.failures[kind] = self.failures.get(kind, 0) + 1
            if now - self._last_log < self._log_interval_s:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._last_log = self._suppressed, 0, now
        log.warning(
            "rerank: %s failed (%s: %s); serving the un-reranked order "
            "(%d more failures since the last warning)",
            self.reranker.name,
            kind,
            detail,
            suppressed,
        )

    def close(self) -> None:
        self.reranker.close()
