"""Hybrid ranking: reciprocal rank fusion (RRF) of the vector and keyword rankings.

Each half ranks its best `candidate_depth(top_k)` memories of the scope and
filter (ranks from 1, ties by id); a memory scores the sum of 1 / (k + rank)
over the rankings it appears in, so one found by both halves outranks one
found by either alone at the same ranks. Scores lie in (0, 2 / (k + 1)].
RRF needs no score calibration between cosine similarity and BM25, which
live on unrelated scales (Cormack, Clarke and Buettcher, SIGIR 2009).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Final

from mnemo_server.models import HitExplanation, Memory, SearchHit

DEFAULT_RRF_K: Final = 60
MAX_RRF_K: Final = 10_000
#: How many candidates each half contributes at least.
CANDIDATE_DEPTH: Final = 50


def candidate_depth(top_k: int) -> int:
    return max(top_k, CANDIDATE_DEPTH)


def ranked(hits: Sequence[SearchHit]) -> list[SearchHit]:
    """Best first, ties by id (the order of every search response)."""
    return sorted(hits, key=lambda h: (-h.score, h.memory.id))


def fuse(rankings: Sequence[Sequence[SearchHit]], *, k: int, top_k: int) -> list[SearchHit]:
    """The best `top_k` of the fused rankings, each already `ranked`."""
    scores: dict[int, float] = {}
    memories: dict[int, Memory] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            key = hit.memory.key
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
            memories.setdefault(key, hit.memory)
    return ranked([SearchHit(memories[key], score) for key, score in scores.items()])[:top_k]


def explain(
    hits: Sequence[SearchHit],
    *,
    vector: Sequence[SearchHit] | None,
    keyword: Sequence[SearchHit] | None,
    fused: bool,
) -> list[SearchHit]:
    """`hits` with their explanations: each half's score and rank in its
    ranking (`ranked`, as given to `fuse`), for the halves that ran (not
    None) and found the hit, and with `fused` the hit's score as fused."""
    vector_at = {h.memory.key: (rank, h.score) for rank, h in enumerate(vector or (), start=1)}
    keyword_at = {h.memory.key: (rank, h.score) for rank, h in enumerate(keyword or (), start=1)}
    out = []
    for hit in hits:
        v = vector_at.get(hit.memory.key)
        w = keyword_at.get(hit.memory.key)
        explanation = HitExplanation(
            vector_score=None if v is None else v[1],
            vector_rank=None if v is None else v[0],
            keyword_score=None if w is None else w[1],
            keyword_rank=None if w is None else w[0],
            fused_score=hit.score if fused else None,
        )
        out.append(dataclasses.replace(hit, explanation=explanation))
    return out


def mark_reranked(hits: Sequence[SearchHit], *, applied: bool) -> list[SearchHit]:
    """Explained hits, saying whether the reranker ordered them (and its score)."""
    out = []
    for hit in hits:
        explanation = hit.explanation or HitExplanation()
        explanation = dataclasses.replace(
            explanation, reranked=applied, rerank_score=None if not applied else hit.score
        )
        out.append(dataclasses.replace(hit, explanation=explanation))
    return out
