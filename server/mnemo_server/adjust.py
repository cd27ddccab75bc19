"""Score adjustments after ranking: recency decay and importance or pin boosts.

Off unless a search asks. The candidates of the search's mode (its best
`pool_depth(top_k)`, already fused in hybrid mode) each get

    score = base * recency * importance * pin
    base       = BM25 or RRF score; in vector mode (1 + cosine) / 2, in [0, 1]
    recency    = (1 - w) + w * 0.5 ** (age / half_life)      age >= 0, w in [0, 1]
    importance = 1 + importance_weight * clamp(metadata[key], 0, 1)
    pin        = 1 + pin_boost if pinned else 1

and the best `top_k` by that score are returned, ties by id. Every factor is
positive and the base is never negative, so a factor can only lower (decay)
or raise (boost) a hit, never flip its sign. Pure functions of the hits and
the search's time: the same store, query and clock give the same ranking.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from mnemo_server.errors import invalid
from mnemo_server.models import HitExplanation, Memory, SearchHit

#: Candidates ranked before adjusting, at least: deep enough that a fresh or
#: important memory well below the top can still rise into it.
POOL_DEPTH: Final = 200
#: And at least this many times top_k.
POOL_FACTOR: Final = 4
MAX_BOOST: Final = 100.0
MAX_KEY_LENGTH: Final = 128

RECENCY_REASON: Final = "INVALID_RECENCY_DECAY"
IMPORTANCE_REASON: Final = "INVALID_IMPORTANCE_BOOST"


class RecencyBasis(enum.Enum):
    CREATE_TIME = "create_time"
    UPDATE_TIME = "update_time"
    LAST_RETRIEVE_TIME = "last_retrieve_time"


@dataclass(frozen=True, slots=True)
class Adjustments:
    """What a search asked for; every part None (or "") means none."""

    recency_half_life_s: float | None = None
    recency_basis: RecencyBasis | None = None
    recency_weight: float | None = None
    importance_key: str = ""
    importance_weight: float | None = None
    pin_boost: float | None = None

    @property
    def active(self) -> bool:
        return self.recency_half_life_s is not None or bool(self.importance_key) or self.pin_boost is not None

    @property
    def time_dependent(self) -> bool:
        """Whether the result depends on the clock (then it is never cached)."""
        return self.recency_half_life_s is not None


NONE: Final = Adjustments()


def check(a: Adjustments, join: Any) -> None:
    """Raises INVALID_ARGUMENT for the first invalid part; `join(name)` names its field."""
    h = a.recency_half_life_s
    if h is not None and not (math.isfinite(h) and h > 0):
        raise invalid(RECENCY_REASON, join("recency_half_life_seconds"), "must be positive and finite")
    if a.recency_weight is not None:
        if not (math.isfinite(a.recency_weight) and 0.0 <= a.recency_weight <= 1.0):
            raise invalid(RECENCY_REASON, join("recency_weight"), "must lie in [0, 1]")
        if h is None:
            raise invalid(RECENCY_REASON, join("recency_weight"), "needs recency_half_life_seconds")
    if a.recency_basis is not None and h is None:
        raise invalid(RECENCY_REASON, join("recency_basis"), "needs recency_half_life_seconds")
    if len(a.importance_key) > MAX_KEY_LENGTH:
        raise invalid(IMPORTANCE_REASON, join("importance_key"), f"at most {MAX_KEY_LENGTH} characters")
    if a.importance_weight is not None:
        if not _boost_ok(a.importance_weight):
            raise invalid(IMPORTANCE_REASON, join("importance_weight"), f"must lie in [0, {MAX_BOOST:g}]")
        if not a.importance_key:
            raise invalid(IMPORTANCE_REASON, join("importance_weight"), "needs importance_key")
    if a.pin_boost is not None and not _boost_ok(a.pin_boost):
        raise invalid(IMPORTANCE_REASON, join("pin_boost"), f"must lie in [0, {MAX_BOOST:g}]")


def _boost_ok(x: float) -> bool:
    return math.isfinite(x) and 0.0 <= x <= MAX_BOOST


def pool_depth(top_k: int) -> int:
    """How many candidates are ranked before adjusting (see POOL_DEPTH)."""
    return max(POOL_FACTOR * top_k, POOL_DEPTH)


def importance_of(metadata: Mapping[str, Any], key: str) -> float:
    """The memory's importance: metadata[key] clamped to [0, 1]; 0 when it
    is missing, not a number (booleans are not numbers) or NaN."""
    value = metadata.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    x = float(value)
    if math.isnan(x):
        return 0.0
    return min(1.0, max(0.0, x))


def age_us(memory: Memory, basis: RecencyBasis, now_us: int) -> int:
    """Microseconds since the basis time (falling back as RecencyBasis documents), >= 0."""
    if basis is RecencyBasis.CREATE_TIME:
        t = memory.create_time_us
    elif basis is RecencyBasis.LAST_RETRIEVE_TIME and memory.last_retrieve_time_us is not None:
        t = memory.last_retrieve_time_us
    else:
        t = memory.update_time_us or memory.create_time_us
    return max(0, now_us - t)


def base_score(score: float, *, vector_mode: bool) -> float:
    """The non-negative score the factors multiply."""
    return (1.0 + score) / 2.0 if vector_mode else max(0.0, score)


def apply(
    candidates: Sequence[SearchHit],
    a: Adjustments,
    *,
    now_us: int,
    vector_mode: bool,
    top_k: int,
    explain: bool,
) -> list[SearchHit]:
    """The best `top_k` of the candidates by adjusted score, ties by id; with
    `explain`, each hit's explanation gains the parts used."""
    out = []
    basis = a.recency_basis or RecencyBasis.UPDATE_TIME
    weight = 1.0 if a.recency_weight is None else a.recency_weight
    importance_weight = 1.0 if a.importance_weight is None else a.importance_weight
    for hit in candidates:
        base = base_score(hit.score, vector_mode=vector_mode)
        parts: dict[str, Any] = {"base_score": base}
        score = base
        if a.recency_half_life_s is not None:
            age_s = age_us(hit.memory, basis, now_us) / 1e6
            factor = (1.0 - weight) + weight * 0.5 ** (age_s / a.recency_half_life_s)
            score *= factor
            parts.update(recency_factor=factor, age_seconds=age_s)
        if a.importance_key:
            importance = importance_of(hit.memory.metadata, a.importance_key)
            factor = 1.0 + importance_weight * importance
            score *= factor
            parts.update(importance=importance, importance_factor=factor)
        if a.pin_boost is not None:
            factor = 1.0 + a.pin_boost if hit.memory.pinned else 1.0
            score *= factor
            parts.update(pin_factor=factor)
        explanation = None
        if explain:
            explanation = dataclasses.replace(hit.explanation or HitExplanation(), **parts)
        out.append(SearchHit(hit.memory, score, explanation))
    out.sort(key=lambda h: (-h.score, h.memory.id))
    return out[:top_k]
