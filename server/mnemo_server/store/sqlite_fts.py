"""The keyword index of the SQLite store: an FTS5 table over `memories`.

`memories_fts` is an external-content FTS5 table (it indexes
`memories.content` without storing a second copy) keyed by the memory's row
key. Triggers on `memories` keep it in step inside the writing transaction,
so every path that changes a row (create, update, delete, expiry, forget,
retention, import) changes the index in the same commit: it can never be
out of step with the records, after a crash included.

Tokenizer: `unicode61 remove_diacritics 2`. Tokens are maximal runs of
letters and digits, folded to lower case without accents; every other
character separates tokens. Identifiers with punctuation are matched as
phrases of their parts (store/keywords.py): "A-7731" is the phrase
`a 7731`, which also finds "a 7731" and lets "7731" alone find it.
Keeping `-`, `.` and `_` inside tokens (`tokenchars`) would make
"sentence." a different token from "sentence" and stop a part of an
identifier from matching; no stemming, so "LH440" is never rewritten.

Scores are FTS5's BM25 (k1 = 1.2, b = 0.75) negated, so higher is better.
Its statistics (row count, average length, rows per phrase) are those of
the whole table; scope, filter and expiry decide which rows are eligible, in
the same query, before ranking and LIMIT.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final

from mnemo_server.store.keywords import query_phrases

TOKENIZE: Final = "unicode61 remove_diacritics 2"

DDL: Final = (
    f"""
    CREATE VIRTUAL TABLE memories_fts USING fts5(
        content, content = 'memories', content_rowid = 'key', tokenize = '{TOKENIZE}'
    )
    """,
    """
    CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
        INSERT INTO memories_fts (rowid, content) VALUES (NEW.key, NEW.content);
    END
    """,
    # An external-content table must be told the old text to remove it.
    """
    CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, content) VALUES ('delete', OLD.key, OLD.content);
    END
    """,
    """
    CREATE TRIGGER memories_fts_update AFTER UPDATE OF content ON memories
    WHEN OLD.content IS NOT NEW.content BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, content) VALUES ('delete', OLD.key, OLD.content);
        INSERT INTO memories_fts (rowid, content) VALUES (NEW.key, NEW.content);
    END
    """,
)


def create(conn: sqlite3.Connection, *, populate: bool) -> None:
    """Creates the table and its triggers (inside the caller's transaction);
    `populate` indexes the rows already in `memories` (a migration)."""
    for statement in DDL:
        conn.execute(statement)
    if populate:
        conn.execute("INSERT INTO memories_fts (memories_fts) VALUES ('rebuild')")


def match_expression(text: str) -> str | None:
    """The FTS5 MATCH expression for user text, or None when it has no
    phrase. Tokens hold only letters and digits, so quoting them cannot
    break out of the string, and FTS5 reads each as a plain phrase."""
    phrases = query_phrases(text)
    if not phrases:
        return None
    return " OR ".join('"' + " ".join(tokens) + '"' for tokens in phrases)


def search_sql(where: Sequence[str]) -> str:
    """Keys and scores of the best matches among the rows that satisfy
    `where` (over alias m); parameters: the MATCH expression, the where
    parameters, the limit. Ties are broken by id, as hits are."""
    return (
        "SELECT m.key, -bm25(memories_fts) AS score"
        " FROM memories_fts JOIN memories AS m ON m.key = memories_fts.rowid"
        f" WHERE memories_fts MATCH ? AND {' AND '.join(where)}"
        " ORDER BY score DESC, m.id LIMIT ?"
    )


def check(conn: sqlite3.Connection) -> None:
    """Raises sqlite3.DatabaseError when the index differs from `memories`."""
    conn.execute("INSERT INTO memories_fts (memories_fts, rank) VALUES ('integrity-check', 1)")
