"""How keyword search reads user text: the store-independent part.

User text is never query syntax. It is cut at whitespace into chunks; each
chunk becomes one phrase of its word tokens (maximal runs of letters and
digits; every other character separates tokens), so "A-7731" is the phrase
`a 7731`, "v2.3.1" the phrase `v2 3 1` and "LH440," the single token
`lh440`. A phrase matches a memory holding those tokens next to each other
in that order; a query matches a memory holding any of its phrases (OR),
ranked by BM25. Single-word chunks that are common English stop words are
dropped; a query left with no phrase (empty, punctuation only, stop words
only) has no keyword hits. Quotes, `*`, `-`, parentheses, `NEAR`, `AND`,
`OR` and `NOT` are ordinary text: they either separate tokens or are words.

A store turns the phrases into its own query language (store/sqlite_fts.py:
FTS5 quoted phrases; a PostgreSQL store: phraseto_tsquery joined by `||`).
"""

from __future__ import annotations

import re
from typing import Final

#: Phrases beyond this many are ignored (bounds the cost of one query).
MAX_PHRASES: Final = 64

# Letters and digits: the token characters of SQLite's unicode61 tokenizer
# (Unicode categories L* and N*), which the index uses on the stored side.
_TOKEN: Final = re.compile(r"[^\W_]+")

#: Dropped from queries when they stand alone (never from stored text).
STOP_WORDS: Final = frozenset(
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


def query_phrases(text: str) -> list[tuple[str, ...]]:
    """The phrases of a keyword query, in order, without repeats; each is a
    tuple of lower-cased tokens (accents are folded by the store)."""
    phrases: dict[tuple[str, ...], None] = {}
    for chunk in text.split():
        tokens = tuple(_TOKEN.findall(chunk.lower()))
        if not tokens:
            continue
        if len(tokens) == 1 and tokens[0] in STOP_WORDS:
            continue
        phrases.setdefault(tokens, None)
        if len(phrases) == MAX_PHRASES:
            break
    return list(phrases)
