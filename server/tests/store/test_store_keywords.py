"""The keyword index: exact through every write path, congruent with a
brute-force BM25 oracle, isolated by tenant and scope, and deaf to query
syntax in user text."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from mnemo_server.filters import parse_filter
from mnemo_server.models import Scope
from mnemo_server.store.base import RecordStore
from mnemo_server.store.keywords import query_phrases
from mnemo_server.store.sqlite import SqliteStore

from .. import keyword_oracle as oracle
from .factory import IMPLEMENTATIONS, T0, Opener, create, delete, memory, update

TEXTS = {
    "m1": "Booked flight LH440 from Frankfurt to Boston on 2024-03-05.",
    "m2": "Order A-7731 shipped; the invoice for A-7731 is pending.",
    "m3": "Upgraded the client to v2.3.1 after the v2.3.0 crash.",
    "m4": "Alice prefers window seats on long flights.",
    "m5": "The ticket number 7731 was closed (duplicate).",
    "m6": "Café meeting with Zoë about the NEAR-term roadmap AND budget.",
    "m7": "Flight flight flight: the word repeats to test term frequency.",
    "m8": 'She said "hello" * world - (not) OR maybe NOT.',
}

NASTY = [
    '"',
    '""',
    'foo"bar',
    "*",
    "lh*",
    "NEAR(a b)",
    "a NEAR b",
    "-flight",
    "flight -boston",
    "(flight OR boston)",
    "flight AND boston",
    "NOT flight",
    "OR",
    "AND NOT OR",
    "content:flight",
    "^flight",
    "{content}: x",
    "+",
    "'; DROP TABLE memories; --",
    "\\",
    "A-7731",
    "hello*",
    '"hello" world',
]


@pytest.fixture(params=IMPLEMENTATIONS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> RecordStore:
    opener: Opener = request.param
    s = opener(tmp_path)
    yield s
    s.close()


def search(
    store: RecordStore, text: str, *, tenant: str = "t1", scope: Scope = Scope(), **kw: object
) -> list[int]:
    hits = store.keyword_search(
        tenant,
        text,
        scope=scope,
        filter=kw.get("filter"),
        now_us=int(kw.get("now_us", T0)),
        limit=int(kw.get("limit", 10)),  # type: ignore[arg-type]
    )
    return [h.key for h in hits]


def _seed(store: RecordStore) -> dict[str, int]:
    stored = create(store, *(memory(i, content=t) for i, t in TEXTS.items()))
    return {m.id: m.key for m in stored}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("LH440", {"m1"}),
        ("lh440", {"m1"}),
        ("A-7731", {"m2"}),
        ("7731", {"m2", "m5"}),
        ("v2.3.1", {"m3"}),
        ("v2.3", {"m3"}),
        ("2024-03-05", {"m1"}),
        ("cafe zoe", {"m6"}),
        ("frankfurt,", {"m1"}),
    ],
)
def test_identifiers_names_and_dates_are_found(store: RecordStore, query: str, expected: set[str]) -> None:
    keys = _seed(store)
    by_key = {v: k for k, v in keys.items()}
    assert {by_key[k] for k in search(store, query)} == expected


@pytest.mark.parametrize("query", ["", "   ", "!!! ... ---", "the and of", "*", '"', "()", "is it"])
def test_queries_without_words_have_no_hits(store: RecordStore, query: str) -> None:
    _seed(store)
    assert search(store, query) == []


@pytest.mark.parametrize("query", NASTY)
def test_query_syntax_is_plain_text_and_agrees_with_the_oracle(store: RecordStore, query: str) -> None:
    keys = _seed(store)
    expected = oracle.bm25(query, TEXTS, TEXTS, 10)
    hits = store.keyword_search("t1", query, scope=Scope(), filter=None, now_us=T0, limit=10)
    assert [h.key for h in hits] == [keys[i] for i, _ in expected]
    for hit, (_, score) in zip(hits, expected, strict=True):
        assert hit.score == pytest.approx(score, rel=1e-9, abs=1e-12)


def test_phrases_are_what_the_oracle_reads() -> None:
    for query in [*NASTY, "LH440 lh440 The flight", "v2.3.1, A-7731!"]:
        assert query_phrases(query) == oracle.phrases(query)


@pytest.mark.parametrize(
    "query",
    ["flight", "flight boston", "the flight to Boston", "A-7731 7731", "window seats flights", "v2.3.0"],
)
def test_ranking_is_bm25_over_the_scope(store: RecordStore, query: str) -> None:
    """Only the eligible memories rank, with the whole index's statistics."""
    corpus = dict(TEXTS)
    bob = {f"b{i}": f"bob flight {i} boston" for i in range(5)}
    other_tenant = {f"x{i}": "flight flight boston A-7731 LH440" for i in range(5)}
    keys = _seed(store)
    keys |= {
        m.id: m.key
        for m in create(store, *(memory(i, scope=Scope("bob"), content=t) for i, t in bob.items()))
    }
    keys |= {
        m.id: m.key
        for m in create(store, *(memory(i, tenant="t2", content=t) for i, t in other_tenant.items()))
    }
    corpus |= bob | other_tenant
    for scope, eligible in [(Scope("alice"), TEXTS), (Scope("bob"), bob), (Scope(), {**TEXTS, **bob})]:
        expected = oracle.bm25(query, corpus, eligible, 3)
        hits = store.keyword_search("t1", query, scope=scope, filter=None, now_us=T0, limit=3)
        assert [h.key for h in hits] == [keys[i] for i, _ in expected], scope
        assert [h.score for h in hits] == pytest.approx([s for _, s in expected], rel=1e-9)


def test_another_tenant_or_user_never_crowds_out_a_scope(store: RecordStore) -> None:
    (mine,) = create(store, memory("mine", content="LH440 once, among many other words here"))
    create(store, *(memory(f"o{i}", tenant="t2", content="LH440 LH440") for i in range(50)))
    create(store, *(memory(f"b{i}", scope=Scope("bob"), content="LH440 LH440") for i in range(50)))
    assert search(store, "LH440", scope=Scope("alice"), limit=1) == [mine.key]
    assert len(search(store, "LH440", tenant="t1", limit=100)) == 51
    assert search(store, "LH440", tenant="t3") == []


def test_filters_apply_before_ranking(store: RecordStore) -> None:
    a, b = create(
        store,
        memory("a", content="LH440 LH440 LH440", tags=["work"]),
        memory("b", content="LH440 and a longer text around it", tags=["travel"]),
    )
    assert search(store, "LH440", filter=parse_filter('tags:"travel"'), limit=1) == [b.key]
    assert search(store, "LH440", limit=1) == [a.key]


def test_expired_memories_are_not_found(store: RecordStore) -> None:
    (m,) = create(store, memory("m", content="LH440", expire_time_us=T0 + 10))
    assert search(store, "LH440", now_us=T0) == [m.key]
    assert search(store, "LH440", now_us=T0 + 10) == []


def test_the_index_follows_update_and_delete(store: RecordStore) -> None:
    (m,) = create(store, memory("m", content="old words LH440"))
    m2 = update(store, m, content="new words A-7731")
    assert search(store, "LH440") == []
    assert search(store, "A-7731") == [m.key]
    assert search(store, "words") == [m.key]
    update(store, m2, tags=("x",))  # content unchanged: the index is untouched
    assert search(store, "A-7731") == [m.key]
    delete(store, dataclasses.replace(m2, version=m2.version + 1))
    assert search(store, "A-7731") == []
    assert search(store, "words") == []


def test_a_rolled_back_write_leaves_no_index_entry(store: RecordStore) -> None:
    with pytest.raises(RuntimeError), store.write() as txn:
        txn.insert(dataclasses.replace(memory("m", content="LH440"), revision=txn.next_revision()))
        raise RuntimeError
    assert search(store, "LH440") == []


def test_sqlite_index_is_exact_after_every_path_and_a_restart(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "mnemo.db")
    keys = _seed(store)
    stored = {m.id: m for m in [store.get("t1", i, with_embedding=True) for i in TEXTS] if m}
    update(store, stored["m1"], content="Booked flight LH441 instead")
    delete(store, dataclasses.replace(stored["m2"], version=2))
    with store.write() as txn:  # expiry and forgetting delete rows the same way
        txn.delete(dataclasses.replace(stored["m3"], revision=txn.next_revision()))
    store.check_keyword_index()
    store.close()
    store = SqliteStore(tmp_path / "mnemo.db")
    try:
        store.check_keyword_index()
        assert search(store, "LH441") == [keys["m1"]]
        assert search(store, "LH440 A-7731 v2.3.1") == []
    finally:
        store.close()


def test_a_version_1_file_gets_its_keyword_index(tmp_path: Path) -> None:
    path = tmp_path / "mnemo.db"
    store = SqliteStore(path)
    keys = _seed(store)
    store.close()
    conn = sqlite3.connect(path)  # back to the version 1 layout, rows kept
    for trigger in ("memories_fts_insert", "memories_fts_delete", "memories_fts_update"):
        conn.execute(f"DROP TRIGGER {trigger}")
    conn.execute("DROP TABLE memories_fts")
    conn.execute("DROP TABLE extraction_jobs")  # version 3's
    conn.execute("UPDATE meta SET value = '1' WHERE name = 'schema_version'")
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    try:
        assert store.get_meta("schema_version") == "3"
        store.check_keyword_index()
        assert search(store, "A-7731") == [keys["m2"]]
    finally:
        store.close()


def test_a_damaged_index_is_detected(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "mnemo.db")
    try:
        _seed(store)
        with store._writing() as conn:
            conn.execute(
                "INSERT INTO memories_fts (memories_fts, rowid, content) VALUES ('delete', 1, ?)",
                (TEXTS["m1"],),
            )
        with pytest.raises(sqlite3.DatabaseError):
            store.check_keyword_index()
    finally:
        store.close()
