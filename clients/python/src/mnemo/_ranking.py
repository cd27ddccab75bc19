"""How search hits are ranked: what a search may ask for (`RecencyBasis`) and
what an explained hit reports (`HitExplanation`). Re-exported by `mnemo.types`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RecencyBasis(StrEnum):
    """The time a recency decay counts a memory's age from (mnemo.v1.RecencyBasis)."""

    UNSPECIFIED = "UNSPECIFIED"
    CREATE_TIME = "CREATE_TIME"
    UPDATE_TIME = "UPDATE_TIME"
    LAST_RETRIEVE_TIME = "LAST_RETRIEVE_TIME"


@dataclass(frozen=True, slots=True, kw_only=True)
class HitExplanation:
    """How a search hit was ranked: the vector half's cosine similarity and
    rank (from 1), the keyword half's BM25 score and rank, and in hybrid mode
    the fused score, sum of 1 / (rrf_k + rank) over the ranks given. A part
    is None when its half did not find the hit or did not run."""

    vector_score: float | None = None
    vector_rank: int | None = None
    keyword_score: float | None = None
    keyword_rank: int | None = None
    fused_score: float | None = None
    #: With score adjustments: the score they started from ((1 + cosine) / 2 in
    #: vector mode) and each factor used; the hit's score is their product.
    base_score: float | None = None
    recency_factor: float | None = None
    age_seconds: float | None = None
    importance: float | None = None
    importance_factor: float | None = None
    pin_factor: float | None = None
    #: With rerank: whether the reranker ordered the hit (False: it failed and
    #: the plain order was served), and its score.
    reranked: bool | None = None
    rerank_score: float | None = None
