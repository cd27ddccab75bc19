"""The search command."""

from __future__ import annotations

from mnemo.cli.context import EXIT_OK, Context
from mnemo.cli.options import scope_of
from mnemo.cli.output import (
    print_json,
    shorten,
    table,
    to_json,
)
from mnemo.types import HitExplanation


def cmd_search(ctx: Context) -> int:
    a = ctx.args
    result = ctx.client.search(
        a.query,
        **scope_of(a),
        filter=a.filter,
        top_k=a.top_k,
        min_score=a.min_score,
        mode=a.mode,
        rrf_k=a.rrf_k,
        explain=a.explain,
        recency_half_life_seconds=a.recency_half_life,
        recency_basis=a.recency_basis,
        recency_weight=a.recency_weight,
        importance_key=a.importance_key,
        importance_weight=a.importance_weight,
        pin_boost=a.pin_boost,
        rerank=a.rerank,
        min_revision=a.min_revision,
    )
    if ctx.json:
        print_json(to_json(result.raw), ctx.out)
    elif a.explain:
        table(
            ("SCORE", "VECTOR", "KEYWORD", "ADJUSTED", "ID", "USER", "KIND", "CONTENT"),
            (
                (
                    f"{h.score:.4f}",
                    _ranked(h.explanation.vector_rank, h.explanation.vector_score),
                    _ranked(h.explanation.keyword_rank, h.explanation.keyword_score),
                    _adjusted(h.explanation),
                    h.memory.id,
                    h.memory.user_id or "-",
                    h.memory.kind.value.lower(),
                    shorten(h.memory.content),
                )
                for h in result.hits
                if h.explanation is not None
            ),
            ctx.out,
        )
    else:
        table(
            ("SCORE", "ID", "USER", "KIND", "CONTENT"),
            (
                (
                    f"{h.score:.3f}",
                    h.memory.id,
                    h.memory.user_id or "-",
                    h.memory.kind.value.lower(),
                    shorten(h.memory.content),
                )
                for h in result.hits
            ),
            ctx.out,
        )
    return EXIT_OK


def _ranked(rank: int | None, score: float | None) -> str:
    """One ranking's part of an explanation: "#rank score", or "-" when it did not find the hit."""
    return "-" if rank is None or score is None else f"#{rank} {score:.3f}"


def _adjusted(e: HitExplanation) -> str:
    """The adjustments' part: "base x factor ..." ("-" when none was asked for)."""
    if e.base_score is None:
        return "-" if e.reranked is None else ("reranked" if e.reranked else "not reranked")
    parts = [f"{e.base_score:.3f}"]
    if e.recency_factor is not None:
        parts.append(f"x{e.recency_factor:.3f} (age {e.age_seconds or 0:.0f}s)")
    if e.importance_factor is not None:
        parts.append(f"x{e.importance_factor:.3f} (imp {e.importance or 0:.2f})")
    if e.pin_factor is not None:
        parts.append(f"x{e.pin_factor:.3f} (pin)")
    if e.reranked is not None:
        parts.append("reranked" if e.reranked else "not reranked")
    return " ".join(parts)
