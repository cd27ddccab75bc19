"""Filters end to end: the store's SQL must select exactly what to_predicate accepts.

Random memories (every field, every JSON type, missing keys, ties) and random
filters (every operator, type mismatches, nesting, negation); for each filter
the store's match_keys and list must equal the predicate applied in Python.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnemo_server.filters import format_filter, parse_filter, to_predicate
from mnemo_server.models import Memory, MemoryKind, Scope
from mnemo_server.store.base import RecordStore

from .factory import IMPLEMENTATIONS, T0, Opener, create, memory

NOW = T0 + 1_000
TIME_FIELDS = ["create_time", "update_time", "expire_time"]
TIMES = [T0 - 1_000_000, T0, T0 + 1, T0 + 86_400_000_000]
STRINGS = ["food", "Food", "travel", "", "é", "foo bar", "a'b\"c", "9"]
NUMBERS: list[int | float] = [-2, 0, 1, 3, 3.0, 0.5, -1.25, 2**63 - 1, -(2**63), 9]
SCALARS: list[object] = [*STRINGS, *NUMBERS, True, False, None]
META_KEYS = ["topic", "count", "flag", "list", "nested", "maybe", "a b"]
TAGS = ["x", "y", "z", "long tag", "é", "9"]


def random_value(rng: random.Random, depth: int = 0) -> object:
    roll = rng.random()
    if roll < 0.15 and depth < 2:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if roll < 0.25 and depth < 2:
        return {k: random_value(rng, depth + 1) for k in rng.sample(META_KEYS, rng.randrange(3))}
    return rng.choice(SCALARS)


def random_memory(rng: random.Random, i: int) -> Memory:
    return memory(
        f"m{i:03d}",
        tenant=rng.choice(["t1", "t1", "t1", "t2"]),
        scope=Scope(rng.choice(["alice", "bob", ""]), rng.choice(["", "a1", "a2"]), rng.choice(["", "r1"])),
        kind=rng.choice(list(MemoryKind)),
        tags=rng.sample(TAGS, rng.randrange(4)),
        metadata={k: random_value(rng) for k in rng.sample(META_KEYS, rng.randrange(len(META_KEYS)))},
        pinned=rng.random() < 0.3,
        create_time_us=rng.choice(TIMES),
        update_time_us=rng.choice(TIMES),
        expire_time_us=rng.choice([None, None, T0, NOW, NOW + 1, T0 + 10**10]),
    )


def literal_text(rng: random.Random, value: object) -> str:
    """A literal as filter text: quoted or bare where that parses the same."""
    if value is None:
        return rng.choice(["null", "NULL"])
    if isinstance(value, bool):
        return rng.choice(["true", "True"]) if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if text.isalpha() and text.lower() not in ("true", "false", "null") and rng.random() < 0.5:
        return text  # a bare word
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def random_comparison(rng: random.Random) -> str:
    fields = ["user_id", "agent_id", "run_id", "id", "kind", "tags", "pinned"]
    field = rng.choice([*fields, *TIME_FIELDS, "meta", "meta", "meta", "meta"])
    if field == "meta":
        keys = [rng.choice(META_KEYS) for _ in range(rng.choice([1, 1, 1, 2]))]
        path = "metadata." + ".".join(k if k.isalnum() else f'"{k}"' for k in keys)
        op = rng.choice(["=", "!=", "<", "<=", ">", ">=", ":", ":"])
        if op == ":" and rng.random() < 0.3:
            return f"{path}:*"
        pool = SCALARS if op in ("=", "!=", ":") else [*STRINGS, *NUMBERS]
        if op == ":" and rng.random() < 0.3:
            return f'{path}:"{rng.choice(META_KEYS)}"'  # object has key
        return f"{path} {op} {literal_text(rng, rng.choice(pool))}"
    if field in ("user_id", "agent_id", "run_id", "id"):
        op = rng.choice(["=", "!=", "<", ">=", ":"])
        if op == ":" and rng.random() < 0.4:
            return f"{field}:*"
        value = rng.choice(["alice", "bob", "", "a1", "r1", "m010", "m1"])
        return f'{field} {op} "{value}"'
    if field == "kind":
        kind = rng.choice(["episodic", "SEMANTIC", "MEMORY_KIND_PROCEDURAL"])
        return f"kind {rng.choice(['=', '!=', ':'])} {kind}"
    if field == "tags":
        if rng.random() < 0.2:
            return "tags:*"
        return f'tags {rng.choice(["=", "!=", ":"])} "{rng.choice(TAGS)}"'
    if field == "pinned":
        return rng.choice(["pinned = true", "pinned = false", "pinned:*", "pinned != true"])
    if field == "expire_time" and rng.random() < 0.3:
        return rng.choice(["expire_time = null", "expire_time != null", "expire_time:*"])
    op = rng.choice(["=", "!=", "<", "<=", ">", ">="])
    when = rng.choice(
        ['"2026-01-01T00:00:00Z"', '"2026-01-01T00:00:00.000001Z"', '"2026-01-01T01:00:00+01:00"',
         '"2025-12-31T23:59:59Z"', '"2026-01-02T00:00:00Z"']
    )  # fmt: skip
    return f"{field} {op} {when}"


def random_filter(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth >= 3 or roll < 0.4:
        return random_comparison(rng)
    if roll < 0.55:
        return rng.choice(["NOT ", "-"]) + random_filter(rng, depth + 1)
    items = [random_filter(rng, depth + 1) for _ in range(rng.randrange(2, 4))]
    joiner = rng.choice([" AND ", " OR ", " "])
    text = joiner.join(items)
    return f"({text})" if rng.random() < 0.6 else text


@pytest.fixture(params=IMPLEMENTATIONS, scope="module")
def corpus(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RecordStore, list[Memory]]]:
    opener: Opener = request.param
    store = opener(tmp_path_factory.mktemp("filters"))
    rng = random.Random(160)
    stored = create(store, *[random_memory(rng, i) for i in range(300)])
    yield store, stored
    store.close()


def test_sql_agrees_with_the_predicate_on_random_filters(
    corpus: tuple[RecordStore, list[Memory]],
) -> None:
    store, memories = corpus
    rng = random.Random(2026)
    matched_some = 0
    for _ in range(600):
        text = random_filter(rng)
        expr = parse_filter(text)
        assert expr is not None
        assert parse_filter(format_filter(expr)) == expr, text
        predicate = to_predicate(expr)
        for tenant in ("t1", "t2"):
            expected = sorted(
                m.key for m in memories if m.tenant == tenant and not m.is_expired(NOW) and predicate(m)
            )
            got = store.match_keys(tenant, scope=Scope(), filter=expr, now_us=NOW)
            assert got == expected, f"{text!r} -> {format_filter(expr)!r}"
            matched_some += bool(expected)
    # The generator must produce selective filters, not only all-or-nothing ones.
    assert matched_some > 300


def test_list_applies_the_same_filter_with_scope_and_paging(
    corpus: tuple[RecordStore, list[Memory]],
) -> None:
    store, memories = corpus
    rng = random.Random(7)
    for _ in range(60):
        expr = parse_filter(random_filter(rng))
        assert expr is not None
        predicate = to_predicate(expr)
        scope = Scope("alice")
        expected = sorted(
            m.id
            for m in memories
            if m.tenant == "t1" and scope.contains(m.scope) and not m.is_expired(NOW) and predicate(m)
        )
        got: list[str] = []
        after: tuple[object, ...] | None = None
        for _ in range(len(expected) + 2):
            rows = store.list("t1", scope=scope, filter=expr, order=[], after=after, limit=9, now_us=NOW)
            got.extend(m.id for m in rows)
            if len(rows) < 9:
                break
            after = (rows[-1].id,)
        assert got == expected


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ('metadata.topic = "food"', {"str"}),
        ('metadata.topic:"food"', {"str", "list"}),  # ':' on a list is "contains"
        ("metadata.topic:*", {"str", "list", "num", "null", "obj"}),
        ("metadata.topic = null", {"null"}),
        (
            'metadata.topic != "food"',
            {"list", "num", "null", "obj", "none"},
        ),  # missing keys match '!='
        ("metadata.topic >= 3", {"num"}),
        ('metadata.topic > "a"', {"str"}),  # strings compare with strings only
        ('metadata.topic:"k"', {"obj"}),  # ':' on an object is "has key"
        ('metadata.topic.k = "food"', {"obj"}),
        ('metadata.topic:"foo"', set()),  # not a substring match
        ("metadata.topic = 3", {"num"}),
        ("metadata.topic = true", set()),
    ],
)
@pytest.mark.parametrize("opener", IMPLEMENTATIONS)
def test_metadata_semantics(tmp_path: Path, opener: Opener, text: str, ids: set[str]) -> None:
    store = opener(tmp_path)
    try:
        create(
            store,
            memory("str", metadata={"topic": "food"}),
            memory("list", metadata={"topic": ["food", 1]}),
            memory("num", metadata={"topic": 3.0}),
            memory("null", metadata={"topic": None}),
            memory("obj", metadata={"topic": {"k": "food"}}),
            memory("none", metadata={}),
        )
        expr = parse_filter(text)
        keys = store.match_keys("t1", scope=Scope(), filter=expr, now_us=NOW)
        got = {m.id for m in store.get_by_keys(keys).values()}
        assert got == ids
    finally:
        store.close()
