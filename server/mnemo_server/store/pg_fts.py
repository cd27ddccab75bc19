"""The keyword index of the PostgreSQL store: the same tokens and BM25 as FTS5.

PostgreSQL's own text parser reads "v2.3.1" as one version token and
"A-7731" as a hyphenated word, which would not agree with the SQLite store
(sqlite_fts.py) on what matches. So the tokens are made here, by the same
rule as unicode61 with remove_diacritics (runs of letters and digits, lower
case, accents removed: memory_state.tokenize), and handed to PostgreSQL as a
ready tsvector literal with positions (`memories.words`, written in the same
statement as the content, so always in the same transaction). A query is a
tsquery literal: each phrase of store/keywords.py becomes its tokens joined
by `<->` (adjacent, in order), the phrases joined by `|`. Tokens hold only
letters and digits and are quoted, so user text is never query syntax.

Ranking is FTS5's BM25 (k1 = 1.2, b = 0.75) over the whole store's
statistics: rows and tokens from tenant_usage, rows per phrase counted with
the GIN index, and each candidate's phrase frequencies from its content.

Limit: PostgreSQL caps positions at 16,383, so a phrase that starts after
the 16,383rd token of a memory is not found (content is at most 32 KiB).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from mnemo_server.store.keywords import query_phrases
from mnemo_server.store.memory_state import tokenize

K1: Final = 1.2
B: Final = 0.75
_MAX_POSITION: Final = 16383


def _quote(token: str) -> str:
    # Tokens are letters and digits only; the doubling is defence in depth.
    return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"


def words(content: str) -> tuple[str, int]:
    """(tsvector literal, token count) of a memory's content."""
    tokens = tokenize(content)
    positions: dict[str, list[int]] = {}
    for i, token in enumerate(tokens):
        positions.setdefault(token, []).append(min(i + 1, _MAX_POSITION))
    literal = " ".join(f"{_quote(t)}:{','.join(map(str, sorted(set(p))))}" for t, p in positions.items())
    return literal, len(tokens)


def phrases(text: str) -> list[tuple[str, ...]]:
    """The query's phrases with accents folded as the stored side is."""
    out: dict[tuple[str, ...], None] = {}
    for phrase in query_phrases(text):
        folded = tuple(t for token in phrase for t in tokenize(token))
        if folded:
            out.setdefault(folded, None)
    return list(out)


def phrase_query(phrase: Sequence[str]) -> str:
    return " <-> ".join(_quote(t) for t in phrase)


def any_query(ps: Sequence[Sequence[str]]) -> str:
    return " | ".join(f"({phrase_query(p)})" for p in ps)


def occurrences(doc: Sequence[str], phrase: Sequence[str]) -> int:
    n = len(phrase)
    target = tuple(phrase)
    return sum(1 for i in range(len(doc) - n + 1) if tuple(doc[i : i + n]) == target)


def bm25(
    ps: Sequence[tuple[str, ...]],
    *,
    rows: int,
    total_tokens: int,
    having: Sequence[int],
    candidates: Sequence[tuple[int, str, str]],
    limit: int,
) -> list[tuple[int, float]]:
    """(key, score) of the best `limit` candidates (key, id, content), best
    first, ties by id; `having[i]` is how many rows hold phrase i."""
    if not ps or rows <= 0:
        return []
    average = total_tokens / rows
    idf = []
    for n in having:
        value = math.log((rows - n + 0.5) / (n + 0.5))
        idf.append(value if value > 0 else 1e-6)
    scored: list[tuple[float, str, int]] = []
    for key, memory_id, content in candidates:
        doc = tokenize(content)
        total, matched = 0.0, False
        for i, phrase in enumerate(ps):
            f = occurrences(doc, phrase)
            if f:
                matched = True
                total += idf[i] * (f * (K1 + 1)) / (f + K1 * (1 - B + B * len(doc) / average))
        if matched:
            scored.append((total, memory_id, key))
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [(key, score) for score, _, key in scored[:limit]]
