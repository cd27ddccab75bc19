"""The filter language: parsing, errors, precedence, scope_of, formatting, predicates."""

from __future__ import annotations

import random

import pytest

from mnemo_server import errors
from mnemo_server.filters import (
    ANY,
    MAX_COMPARISONS,
    MAX_DEPTH,
    MAX_FILTER_BYTES,
    And,
    Comparison,
    Expr,
    Not,
    Or,
    format_filter,
    metadata_keys,
    parse_filter,
    scope_of,
    to_predicate,
)
from mnemo_server.models import Memory, MemoryKind, Scope

T2026 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def c(field: str, op: str, value: object) -> Comparison:
    return Comparison(field, op, value)  # type: ignore[arg-type]


VALID: list[tuple[str, Expr | None]] = [
    ("", None),
    ("   \n\t", None),
    ("user_id = alice", c("user_id", "=", "alice")),
    ('user_id="alice"', c("user_id", "=", "alice")),
    ("agent_id != 'bot'", c("agent_id", "!=", "bot")),
    ("run_id = run-42", c("run_id", "=", "run-42")),
    ("user_id = 007", c("user_id", "=", "007")),  # string fields keep the text of a bare number
    ('id >= "m10"', c("id", ">=", "m10")),
    ("id < m2", c("id", "<", "m2")),
    ("user_id:*", c("user_id", ":", ANY)),
    ('user_id:"*"', c("user_id", ":", "*")),  # a quoted star is just a string
    ("kind = semantic", c("kind", "=", int(MemoryKind.SEMANTIC))),
    ('kind = "EPISODIC"', c("kind", "=", int(MemoryKind.EPISODIC))),
    ("kind != MEMORY_KIND_PROCEDURAL", c("kind", "!=", int(MemoryKind.PROCEDURAL))),
    ("kind:Procedural", c("kind", ":", int(MemoryKind.PROCEDURAL))),
    ('tags:"x"', c("tags", ":", "x")),
    ("tags = x", c("tags", "=", "x")),
    ("tags:*", c("tags", ":", ANY)),
    ("pinned = true", c("pinned", "=", True)),
    ("pinned = FALSE", c("pinned", "=", False)),
    ('create_time > "2026-01-01T00:00:00Z"', c("create_time", ">", T2026)),
    ('update_time <= "2026-01-01T01:00:00+01:00"', c("update_time", "<=", T2026)),
    ("create_time = '2026-01-01t00:00:00.000001z'", c("create_time", "=", T2026 + 1)),
    ('create_time < "2026-01-01T00:00:00.123000000Z"', c("create_time", "<", T2026 + 123_000)),
    ('expire_time < "1969-12-31T23:59:59Z"', c("expire_time", "<", -1_000_000)),
    ("expire_time = null", c("expire_time", "=", None)),
    ("expire_time:*", c("expire_time", ":", ANY)),
    ('metadata.topic = "food"', c("metadata.topic", "=", "food")),
    ("metadata.topic = food", c("metadata.topic", "=", "food")),
    ("metadata.count >= 3", c("metadata.count", ">=", 3)),
    ('metadata.count >= "3"', c("metadata.count", ">=", "3")),  # quoted: always a string
    ("metadata.score < -1.5e3", c("metadata.score", "<", -1500.0)),
    ("metadata.score < .5", c("metadata.score", "<", 0.5)),
    ("metadata.x = 3.0", c("metadata.x", "=", 3.0)),
    ("metadata.flag = true", c("metadata.flag", "=", True)),
    ("metadata.flag != False", c("metadata.flag", "!=", False)),
    ("metadata.x = null", c("metadata.x", "=", None)),
    ("metadata.x:*", c("metadata.x", ":", ANY)),
    ('metadata.list:"a"', c("metadata.list", ":", "a")),
    ("metadata.big = 9223372036854775807", c("metadata.big", "=", 2**63 - 1)),
    ("metadata.small = -9223372036854775808", c("metadata.small", "=", -(2**63))),
    ("metadata.a.b.c = 1", c("metadata.a.b.c", "=", 1)),
    ('metadata."a b".c = 1', c('metadata."a b".c', "=", 1)),
    ('metadata."x.y" = 1', c('metadata."x.y"', "=", 1)),
    ('metadata.a."b" = 1', c("metadata.a.b", "=", 1)),  # needless quotes disappear
    ("metadata.é = 1", c('metadata."é"', "=", 1)),
    (
        'metadata.v = "tab\\there \\u00e9 \\U0001F600 \\ud83d\\ude00"',
        c("metadata.v", "=", "tab\there é 😀 😀"),
    ),
    ("NOT pinned = true", Not(c("pinned", "=", True))),
    ("-pinned = true", Not(c("pinned", "=", True))),
    ("NOT NOT pinned = true", Not(Not(c("pinned", "=", True)))),
    ("(pinned = true)", c("pinned", "=", True)),
    ("((pinned = true))", c("pinned", "=", True)),
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[t for t, _ in VALID])
def test_valid_filters_parse(text: str, expected: Expr | None) -> None:
    assert parse_filter(text) == expected


A, B, C, D = (c(f, "=", v) for f, v in (("user_id", "a"), ("agent_id", "b"), ("run_id", "c"), ("id", "d")))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user_id=a AND agent_id=b", And((A, B))),
        ("user_id=a agent_id=b", And((A, B))),  # juxtaposition is AND
        ("user_id=a OR agent_id=b", Or((A, B))),
        # AIP-160: OR binds tighter than AND, unlike SQL.
        ("user_id=a OR agent_id=b AND run_id=c", And((Or((A, B)), C))),
        ("user_id=a AND agent_id=b OR run_id=c", And((A, Or((B, C))))),
        ("user_id=a OR agent_id=b run_id=c OR id=d", And((Or((A, B)), Or((C, D))))),
        ("(user_id=a AND agent_id=b) OR run_id=c", Or((And((A, B)), C))),
        # NOT binds tightest.
        ("NOT user_id=a OR agent_id=b", Or((Not(A), B))),
        ("-user_id=a agent_id=b", And((Not(A), B))),
        ("NOT (user_id=a OR agent_id=b)", Not(Or((A, B)))),
        # Nested groups of the same operator flatten.
        ("(user_id=a AND agent_id=b) AND (run_id=c AND id=d)", And((A, B, C, D))),
        ("user_id=a OR (agent_id=b OR run_id=c)", Or((A, B, C))),
    ],
)
def test_precedence(text: str, expected: Expr) -> None:
    assert parse_filter(text) == expected


INVALID = [
    "user_id",  # no operator
    "user_id =",  # no value
    "= alice",
    "user = alice",  # unknown field
    "a OR b",
    "user_id.x = 1",  # no sub-fields
    "metadata = 1",  # metadata needs a key
    "metadata. = 1",
    "metadata.a..b = 1",
    'metadata."" = 1',
    'metadata."a\\"b" = 1',  # keys SQLite cannot address
    'metadata."a"b = 1',
    'metadata.""',
    "user_id == alice",
    "user_id ! alice",
    "user_id = alice AND",
    "AND user_id = alice",
    "user_id = alice OR",
    "NOT",
    "user_id = AND",
    "(user_id = alice",
    "user_id = alice)",
    "()",
    "user_id = (alice)",
    "user_id < *",  # '*' only after ':'
    "tags < x",
    "tags:*x",
    "kind = 2",
    "kind = unspecified",
    "kind > EPISODIC",
    "pinned = yes",
    "pinned < true",
    "create_time > 2026-01-01T00:00:00Z",  # times must be quoted
    'create_time > "2026-01-01"',
    'create_time > "2026-13-01T00:00:00Z"',
    'create_time > "2026-01-01T00:00:60Z"',
    'create_time > "2026-01-01T00:00:00"',  # an offset is required
    'create_time > "2026-01-01T00:00:00+24:00"',
    'create_time > "2026-01-01T00:00:00.0000001Z"',  # below a microsecond
    "create_time = null",
    "expire_time < null",
    "metadata.x > true",
    "metadata.x <= null",
    "metadata.n = 9223372036854775808",
    "metadata.n = -9223372036854775809",
    "metadata.f = 1e999",
    '"user_id" = alice',
    'user_id = "unterminated',
    "user_id = 'bad \\q escape'",
    'user_id = "\\u12"',
    'user_id = "\\ud800"',  # a lone surrogate
]


@pytest.mark.parametrize("text", INVALID)
def test_invalid_filters_are_invalid_argument(text: str) -> None:
    with pytest.raises(errors.InvalidArgumentError) as caught:
        parse_filter(text)
    err = caught.value
    assert err.reason == "INVALID_FILTER"
    assert [v.field for v in err.violations] == ["filter"]
    assert "position" in err.violations[0].description


def test_the_comma_case_really_is_a_value() -> None:
    # Documented: ',' is an ordinary word character, so this is the string "alice,".
    assert parse_filter("user_id = alice, ") == c("user_id", "=", "alice,")


def test_error_positions_point_at_the_problem() -> None:
    with pytest.raises(errors.InvalidArgumentError) as caught:
        parse_filter('user_id = "a" AND colour = red')
    assert "unknown field 'colour'" in caught.value.violations[0].description
    assert "position 19" in caught.value.violations[0].description


def test_limits() -> None:
    parse_filter(" AND ".join(["pinned = true"] * MAX_COMPARISONS))
    with pytest.raises(errors.InvalidArgumentError, match="more than 200 comparisons"):
        parse_filter(" AND ".join(["pinned = true"] * (MAX_COMPARISONS + 1)))
    parse_filter("(" * MAX_DEPTH + "pinned = true" + ")" * MAX_DEPTH)
    parse_filter("NOT " * MAX_DEPTH + "pinned = true")
    for deep in (
        "(" * (MAX_DEPTH + 1) + "pinned = true" + ")" * (MAX_DEPTH + 1),
        "-" * (MAX_DEPTH + 1) + "pinned = true",
    ):
        with pytest.raises(errors.InvalidArgumentError, match="deeper than 32"):
            parse_filter(deep)
    long_value = "x" * (MAX_FILTER_BYTES - len('user_id = ""'))
    assert parse_filter(f'user_id = "{long_value}"') is not None
    with pytest.raises(errors.InvalidArgumentError, match="longer than 8192 bytes") as caught:
        parse_filter(f'user_id = "{long_value}x"')
    assert caught.value.reason == "INVALID_FILTER"
    with pytest.raises(errors.InvalidArgumentError, match="longer than 8192 bytes"):
        parse_filter('user_id = "' + "é" * 4100 + '"')  # bytes, not characters


@pytest.mark.parametrize(
    ("text", "scope"),
    [
        ('user_id = "alice"', Scope("alice")),
        ("user_id = alice AND agent_id = bot run_id = r1", Scope("alice", "bot", "r1")),
        ("user_id:alice", Scope("alice")),
        ("user_id = alice AND user_id = alice", Scope("alice")),
        ("user_id = alice AND user_id = bob", None),  # contradiction: not a scope
        ('user_id = ""', None),  # an empty Scope field would mean "any"
        ("user_id = alice OR agent_id = bot", None),
        ("user_id != alice", None),
        ("user_id:*", None),
        ("user_id = alice AND pinned = true", None),
        ("NOT user_id = alice", None),
        ("id = alice", None),
        ("", None),
    ],
)
def test_scope_of(text: str, scope: Scope | None) -> None:
    assert scope_of(parse_filter(text)) == scope


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("user_id=alice", 'user_id = "alice"'),
        ("kind = semantic", "kind = SEMANTIC"),
        ("kind:'memory_kind_episodic'", "kind:EPISODIC"),
        ('create_time>"2026-01-01T01:00:00+01:00"', 'create_time > "2026-01-01T00:00:00Z"'),
        ('create_time>"2026-01-01T00:00:00.5Z"', 'create_time > "2026-01-01T00:00:00.500000Z"'),
        ('create_time>"0005-01-01T00:00:00Z"', 'create_time > "0005-01-01T00:00:00Z"'),
        ("metadata.x = 1e3", "metadata.x = 1000.0"),
        ("metadata.x = TRUE", "metadata.x = true"),
        ("metadata.x:*", "metadata.x:*"),
        ('metadata.x:"*"', 'metadata.x:"*"'),
        ('metadata."a b".c = "q\\"uote"', 'metadata."a b".c = "q\\"uote"'),
        ("user_id=a OR agent_id=b run_id=c", 'user_id = "a" OR agent_id = "b" AND run_id = "c"'),
        (
            "(user_id=a run_id=c) OR agent_id=b",
            '(user_id = "a" AND run_id = "c") OR agent_id = "b"',
        ),
        ("-(user_id=a OR agent_id=b)", 'NOT (user_id = "a" OR agent_id = "b")'),
    ],
)
def test_format_filter_is_canonical(text: str, canonical: str) -> None:
    expr = parse_filter(text)
    assert expr is not None
    assert format_filter(expr) == canonical
    assert parse_filter(canonical) == expr


def random_expr(rng: random.Random, depth: int = 0) -> Expr:
    roll = rng.random()
    if depth > 3 or roll < 0.45:
        return rng.choice(
            [
                c(
                    "user_id",
                    rng.choice(["=", "!=", "<", ":"]),
                    rng.choice(["a", "", "x y", 'q"\\', "true", "*", "3"]),
                ),
                c("tags", rng.choice(["=", ":", "!="]), rng.choice(["a", "long tag", "\n"])),
                c("tags", ":", ANY),
                c("kind", rng.choice(["=", "!=", ":"]), rng.choice([1, 2, 3])),
                c("pinned", rng.choice(["=", "!="]), rng.choice([True, False])),
                c(
                    "create_time",
                    rng.choice([">", "<=", "="]),
                    rng.choice([0, T2026, T2026 + 1, -5]),
                ),
                c("expire_time", rng.choice(["=", "!="]), None),
                c(
                    rng.choice(["metadata.a", 'metadata."b c".d', "metadata.x-y"]),
                    rng.choice(["=", "!=", ":"]),
                    rng.choice(["s", 1, -2, 0.5, 1e300, True, None, 2**63 - 1]),
                ),
                c(rng.choice(["metadata.a", "user_id", "expire_time", "pinned"]), ":", ANY),
            ]
        )
    if roll < 0.6:
        return Not(random_expr(rng, depth + 1))
    items = [random_expr(rng, depth + 1) for _ in range(rng.randrange(2, 4))]
    flat: list[Expr] = []
    kind = And if rng.random() < 0.5 else Or
    for item in items:  # the parser flattens, so the generator must too
        flat.extend(item.items if isinstance(item, kind) else (item,))
    return kind(tuple(flat))


def test_format_then_parse_round_trips_random_exprs() -> None:
    rng = random.Random(160)
    for _ in range(2000):
        expr = random_expr(rng)
        text = format_filter(expr)
        assert parse_filter(text) == expr, text


def test_garbage_never_escapes_as_another_exception() -> None:
    rng = random.Random(7)
    alphabet = [
        *("user_id", "metadata.a", "kind", "tags", "create_time", "AND", "OR", "NOT"),
        *(" ", "=", "!=", "<", ":", "*", '"', "'", "\\", "(", ")", "-", ".", "\\u"),
        *("1", "1.5", "x", "true", "null", "é"),
    ]
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 12)))
        try:
            parse_filter(text)
        except errors.InvalidArgumentError as exc:
            assert exc.reason == "INVALID_FILTER"


def test_metadata_keys() -> None:
    assert metadata_keys("metadata.a") == ("a",)
    assert metadata_keys('metadata."a b".c."x.y"') == ("a b", "c", "x.y")


def m(**fields: object) -> Memory:
    base: dict[str, object] = {
        "tenant": "t",
        "id": "m1",
        "scope": Scope("alice", "bot"),
        "content": "c",
    }
    return Memory(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "memory", "expected"),
    [
        ('user_id = "alice"', m(), True),
        ('user_id:"ali"', m(), False),  # ':' is not a substring match
        ('user_id < "b"', m(), True),
        ("run_id:*", m(), False),
        ("agent_id:*", m(), True),
        ("tags:x", m(tags=("x", "y")), True),
        ("tags = y", m(tags=("x", "y")), True),
        ("tags != x", m(tags=("x", "y")), False),
        ("tags:*", m(), False),
        ("kind = semantic", m(kind=MemoryKind.SEMANTIC), True),
        ("pinned:*", m(pinned=True), True),
        ("pinned = false", m(), True),
        ("expire_time = null", m(), True),
        ('expire_time < "2030-01-01T00:00:00Z"', m(), False),  # unset compares false
        ('expire_time != "2030-01-01T00:00:00Z"', m(), True),  # ... and so matches '!='
        ('create_time >= "2026-01-01T00:00:00Z"', m(create_time_us=T2026), True),
        ("metadata.n = 3", m(metadata={"n": 3.0}), True),
        ("metadata.n = 1", m(metadata={"n": True}), False),  # booleans are not numbers
        ("metadata.flag = true", m(metadata={"flag": 1}), False),
        ('metadata.n > "2"', m(metadata={"n": 3}), False),  # string vs number: false
        ('metadata.n != "2"', m(metadata={"n": 3}), True),
        ("metadata.n < 2", m(metadata={"n": "1"}), False),
        ("metadata.n = null", m(metadata={}), False),  # missing is not null
        ("metadata.n:*", m(metadata={"n": None}), True),  # ... but present
        ("metadata.l:2", m(metadata={"l": [1, 2]}), True),
        ("metadata.l:3", m(metadata={"l": [1, 2]}), False),
        ('metadata.o:"k"', m(metadata={"o": {"k": 0}}), True),
        ("metadata.o.k = 0", m(metadata={"o": {"k": 0}}), True),
        ("metadata.l.k = 0", m(metadata={"l": [{"k": 0}]}), False),  # paths walk objects only
        ("metadata.big = 9223372036854775807", m(metadata={"big": 2**63 - 1}), True),
        ("metadata.big = 9223372036854775806", m(metadata={"big": 2**63 - 1}), False),
        ("NOT metadata.n:* OR metadata.n = 1", m(metadata={}), True),
    ],
)
def test_predicate_semantics(text: str, memory: Memory, expected: bool) -> None:
    assert to_predicate(parse_filter(text))(memory) is expected


def test_empty_filter_matches_everything() -> None:
    assert to_predicate(None)(m()) is True
    assert scope_of(None) is None
