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
    )
    if ctx.json:
        print_json(to_json(result.raw), ctx.out)
    elif a.explain:
        table(
            ("SCORE", "VECTOR", "KEYWORD", "ID", "USER", "KIND", "CONTENT"),
            (
                (
                    f"{h.score:.4f}",
                    _ranked(h.explanation.vector_rank, h.explanation.vector_score),
                    _ranked(h.explanation.keyword_rank, h.explanation.keyword_score),
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
