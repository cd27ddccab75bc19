"""Brute-force oracles for keyword and hybrid search, written from the
definitions (not from the server's code): FTS5's BM25 over the unicode61
tokenizer, and reciprocal rank fusion."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

K1 = 1.2
B = 0.75
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "so",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)


def tokens(text: str) -> list[str]:
    """unicode61 with remove_diacritics: runs of letters and digits, lower case, no accents."""
    folded = "".join(c for c in unicodedata.normalize("NFD", text.lower()) if not unicodedata.combining(c))
    return re.findall(r"[^\W_]+", folded)


def phrases(query: str) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for chunk in query.split():
        p = tuple(tokens(chunk))
        if not p or (len(p) == 1 and p[0] in STOP_WORDS) or p in out:
            continue
        out.append(p)
    return out


def _occurrences(doc: Sequence[str], phrase: tuple[str, ...]) -> int:
    n = len(phrase)
    return sum(1 for i in range(len(doc) - n + 1) if tuple(doc[i : i + n]) == phrase)


def bm25(
    query: str, corpus: Mapping[str, str], eligible: Iterable[str], limit: int
) -> list[tuple[str, float]]:
    """(id, score) best first, ties by id. `corpus` is every stored row (the
    statistics are the whole index's); only `eligible` ids are ranked."""
    ps = phrases(query)
    if not ps or not corpus:
        return []
    docs = {i: tokens(text) for i, text in corpus.items()}
    n_rows = len(docs)
    avgdl = sum(len(d) for d in docs.values()) / n_rows
    idf = {}
    for p in ps:
        having = sum(1 for d in docs.values() if _occurrences(d, p))
        value = math.log((n_rows - having + 0.5) / (having + 0.5))
        idf[p] = value if value > 0 else 1e-6
    scored = []
    for i in eligible:
        d = docs[i]
        total, matched = 0.0, False
        for p in ps:
            f = _occurrences(d, p)
            if f:
                matched = True
                total += idf[p] * (f * (K1 + 1)) / (f + K1 * (1 - B + B * len(d) / avgdl))
        if matched:
            scored.append((i, total))
    scored.sort(key=lambda h: (-h[1], h[0]))
    return scored[:limit]


def rrf(rankings: Sequence[Sequence[str]], k: int, limit: int) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: sum of 1 / (k + rank), ranks from 1; ties by id."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, i in enumerate(ranking, start=1):
            scores[i] = scores.get(i, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda h: (-h[1], h[0]))[:limit]
