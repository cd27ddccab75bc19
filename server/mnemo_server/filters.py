"""The filter language: a documented subset of AIP-160 (docs/filters.md).

    parse_filter(text) -> Expr | None      (None for an empty filter)
    to_predicate(expr) -> Callable[[Memory], bool]
    scope_of(expr) -> Scope | None         (when expr is only scope equalities)
    format_filter(expr) -> str             (canonical text; parses back to expr)

The store compiles an Expr to SQL itself (store/sqlite_filter.py); the SQL and
the predicate must agree on every memory, so the semantics below are written
once here and mirrored there:

- every comparison is two-valued: a missing metadata key, an unset
  expire_time or a value of another type makes it false, never "unknown";
- `a != v` is exactly `NOT a = v` (so a missing key matches `!=`);
- `:` is AIP-160 "has": on a list, contains; on a metadata object, has the
  key; on a scalar, equals (not substring: `user_id:"al"` must never match
  "alice" in a server whose scopes isolate users);
- `field:*` is presence: non-empty string/list, key present (even if null),
  expire_time set, pinned true.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from mnemo_server import errors, validation
from mnemo_server.models import Memory, MemoryKind, Scope

#: Fields a comparison may name; "metadata.<key>[.<key>...]" is also allowed.
FIELDS = (
    "user_id",
    "agent_id",
    "run_id",
    "kind",
    "tags",
    "create_time",
    "update_time",
    "expire_time",
    "pinned",
    "id",
)
OPERATORS = ("=", "!=", "<", "<=", ">", ">=", ":")

MAX_FILTER_BYTES: Final = 8192
MAX_DEPTH: Final = 32
MAX_COMPARISONS: Final = 200

STRING_FIELDS: Final = ("user_id", "agent_id", "run_id", "id")
TIME_FIELDS: Final = ("create_time", "update_time", "expire_time")
SCOPE_FIELDS: Final = ("user_id", "agent_id", "run_id")
ORDERING_OPS: Final = ("<", "<=", ">", ">=")


class Wildcard(enum.Enum):
    """The `*` of `field:*` (presence); distinct from the string "*"."""

    ANY = "*"


ANY: Final = Wildcard.ANY

Literal = str | int | float | bool | None | Wildcard


@dataclass(frozen=True, slots=True)
class Comparison:
    """`field op value`. For kind the value is the MemoryKind int; for times,
    microseconds since the epoch (None: `expire_time = null`); metadata paths
    keep their dotted form, with keys that are not plain words double-quoted
    (`metadata."a b".c`; see metadata_keys)."""

    field: str
    op: str
    value: Literal


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Expr


Expr = Comparison | And | Or | Not


# --------------------------------------------------------------------------- errors


def _error(pos: int, description: str) -> errors.InvalidArgumentError:
    """Positions are 1-based character offsets into the filter text."""
    return errors.invalid("INVALID_FILTER", "filter", f"{description} (at position {pos + 1})")


# --------------------------------------------------------------------------- lexer


class _Kind(enum.Enum):
    LPAREN = "'('"
    RPAREN = "')'"
    OP = "an operator"
    MINUS = "'-'"
    STAR = "'*'"
    STRING = "a quoted string"
    WORD = "a word"
    EOF = "the end of the filter"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _Kind
    text: str  # decoded content for STRING, source text otherwise
    pos: int
    end: int


# Characters that end a bare word. Everything else (letters, digits, '.', '-',
# '_', '@', non-ASCII ...) may appear inside one, so ids like run-42 and
# numbers like -1.5e3 need no quotes.
_WORD_BREAK: Final = frozenset("()\"'<>=!:*")
_ESCAPES: Final = {
    "\\": "\\",
    '"': '"',
    "'": "'",
    "/": "/",
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
}
_KEYWORDS: Final = frozenset({"AND", "OR", "NOT"})
_NUMBER_START_RE: Final = re.compile(r"[0-9]|\.[0-9]")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append(_Token(_Kind.LPAREN if ch == "(" else _Kind.RPAREN, ch, i, i + 1))
            i += 1
        elif ch in "<>":
            op = text[i : i + 2] if text[i + 1 : i + 2] == "=" else ch
            tokens.append(_Token(_Kind.OP, op, i, i + len(op)))
            i += len(op)
        elif ch == "!":
            if text[i + 1 : i + 2] != "=":
                raise _error(i, "'!' must be followed by '=' (negate with NOT or '-')")
            tokens.append(_Token(_Kind.OP, "!=", i, i + 2))
            i += 2
        elif ch in "=:":
            tokens.append(_Token(_Kind.OP, ch, i, i + 1))
            i += 1
        elif ch == "*":
            tokens.append(_Token(_Kind.STAR, ch, i, i + 1))
            i += 1
        elif ch in "\"'":
            value, end = _read_string(text, i)
            tokens.append(_Token(_Kind.STRING, value, i, end))
            i = end
        elif ch == "-" and not _NUMBER_START_RE.match(text, i + 1):
            # A '-' that does not start a number negates what follows.
            tokens.append(_Token(_Kind.MINUS, ch, i, i + 1))
            i += 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in _WORD_BREAK:
                i += 1
            tokens.append(_Token(_Kind.WORD, text[start:i], start, i))
    tokens.append(_Token(_Kind.EOF, "", n, n))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = text[i + 1 : i + 2]
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i += 2
        elif esc in ("u", "U"):
            width = 4 if esc == "u" else 8
            digits = text[i + 2 : i + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise _error(i, f"'\\{esc}' must be followed by {width} hex digits")
            code = int(digits, 16)
            i += 2 + width
            if 0xD800 <= code <= 0xDBFF and text[i : i + 2] == "\\u":
                low_digits = text[i + 2 : i + 6]
                if len(low_digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in low_digits):
                    low = int(low_digits, 16)
                    if 0xDC00 <= low <= 0xDFFF:
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        i += 6
            if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                raise _error(i - 2 - width, "escape is not a valid Unicode character")
            out.append(chr(code))
        else:
            raise _error(i, f"unknown escape '\\{esc}' in string")
    raise _error(start, "unterminated string")


# --------------------------------------------------------------------------- literals

_INT_RE: Final = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE: Final = re.compile(r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TIME_RE: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NAIVE_EPOCH: Final = dt.datetime(1970, 1, 1)
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def _parse_time(text: str, pos: int) -> int:
    match = _TIME_RE.fullmatch(text)
    if match is None:
        raise _error(pos, f'"{text}" is not a quoted RFC 3339 time such as "2026-01-01T00:00:00Z"')
    year, month, day, hour, minute, second, frac, zulu, sign, off_h, off_m = match.groups()
    # Rounding a finer literal would change what `>=` or `<` admit, so refuse it.
    if frac and frac[6:].strip("0"):
        raise _error(pos, "times have at most microsecond precision")
    micros = int((frac or "0")[:6].ljust(6, "0"))
    offset = dt.timedelta(0)
    if not zulu:
        if int(off_h) > 23 or int(off_m) > 59:
            raise _error(pos, f'"{text}" has an invalid UTC offset')
        offset = dt.timedelta(hours=int(off_h), minutes=int(off_m)) * (1 if sign == "+" else -1)
    try:
        local = dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError as exc:
        raise _error(pos, f'"{text}" is not a valid time: {exc}') from None
    # Naive arithmetic: an offset may move 0001-01-01 or 9999-12-31 out of
    # datetime's range, which the aware subtraction would raise on.
    us = (
        (local - _NAIVE_EPOCH) // dt.timedelta(microseconds=1)
        + micros
        - offset // dt.timedelta(microseconds=1)
    )
    if not validation.MIN_TIME_US <= us <= validation.MAX_TIME_US:
        raise _error(pos, f'"{text}" lies outside {validation.TIME_RANGE}')
    return us


def format_time(us: int) -> str:
    """RFC 3339 in UTC with 'Z', fractional seconds only when non-zero."""
    when = _EPOCH + dt.timedelta(microseconds=us)
    # Not strftime: glibc does not zero-pad years below 1000.
    text = (
        f"{when.year:04d}-{when.month:02d}-{when.day:02d}T{when.hour:02d}:{when.minute:02d}:{when.second:02d}"
    )
    return f"{text}.{when.microsecond:06d}Z" if when.microsecond else f"{text}Z"


def _bare_literal(text: str, pos: int) -> str | int | float | bool | None:
    """Types a bare word as a metadata value: quoted text is always a string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    if _INT_RE.fullmatch(text):
        value = int(text)
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise _error(pos, f"integer {text} is outside the signed 64-bit range")
        return value
    if _FLOAT_RE.fullmatch(text):
        number = float(text)
        if not math.isfinite(number):
            raise _error(pos, f"number {text} is not finite")
        return number
    return text


# --------------------------------------------------------------------------- metadata paths

# Keys written bare in canonical text; anything else is double-quoted.
_BARE_KEY_RE: Final = re.compile(r"[A-Za-z0-9_-]+")


def _check_key(key: str, pos: int) -> None:
    # SQLite (3.40) matches JSON path keys against the raw JSON text of the
    # stored key, so a key JSON must escape could never be found by SQL;
    # refusing it keeps SQL and the predicate in agreement.
    if not key:
        raise _error(pos, "metadata keys must not be empty")
    if any(c in '"\\' or ord(c) < 0x20 for c in key):
        raise _error(pos, "metadata keys in filters may not contain '\"', '\\' or control characters")


def _format_string(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _metadata_field(keys: list[str]) -> str:
    return "metadata." + ".".join(k if _BARE_KEY_RE.fullmatch(k) else _format_string(k) for k in keys)


@lru_cache(maxsize=1024)
def metadata_keys(field: str) -> tuple[str, ...]:
    """The keys of a metadata field name: 'metadata."a b".c' -> ("a b", "c")."""
    if not field.startswith("metadata."):
        raise ValueError(f"not a metadata field: {field!r}")
    keys: list[str] = []
    i = len("metadata.")
    while i <= len(field):
        if field[i : i + 1] == '"':
            key, i = _read_string(field, i)
        else:
            end = field.find(".", i)
            end = len(field) if end < 0 else end
            key, i = field[i:end], end
        keys.append(key)
        i += 1  # the '.' separator
    return tuple(keys)


# --------------------------------------------------------------------------- parser

_EQUALITY_OPS: Final = ("=", "!=", ":")


class _Parser:
    """Recursive descent over the AIP-160 grammar (docs/filters.md):

    expression = factor { ["AND"] factor }      (juxtaposition is AND)
    factor     = term { "OR" term }             (OR binds tighter than AND)
    term       = ("NOT" | "-") term | simple
    simple     = "(" expression ")" | field comparator value
    """

    def __init__(self, text: str) -> None:
        self._tokens = _tokenize(text)
        self._i = 0
        self._depth = 0
        self._comparisons = 0

    def parse(self) -> Expr:
        expr = self._expression()
        tok = self._peek()
        if tok.kind is not _Kind.EOF:
            raise _error(tok.pos, f"unexpected {self._describe(tok)}")
        return expr

    # -- helpers

    def _peek(self) -> _Token:
        return self._tokens[self._i]

    def _next(self) -> _Token:
        tok = self._tokens[self._i]
        if tok.kind is not _Kind.EOF:
            self._i += 1
        return tok

    def _is_keyword(self, tok: _Token, word: str) -> bool:
        return tok.kind is _Kind.WORD and tok.text == word

    @staticmethod
    def _describe(tok: _Token) -> str:
        if tok.kind in (_Kind.WORD, _Kind.OP):
            return f"'{tok.text}'"
        return str(tok.kind.value)

    def _starts_term(self, tok: _Token) -> bool:
        if tok.kind in (_Kind.LPAREN, _Kind.MINUS):
            return True
        return tok.kind is _Kind.WORD and tok.text not in ("AND", "OR")

    def _enter(self, pos: int) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _error(pos, f"filter nests deeper than {MAX_DEPTH} levels")

    # -- grammar

    def _expression(self) -> Expr:
        items = [self._factor()]
        while True:
            tok = self._peek()
            if self._is_keyword(tok, "AND"):
                self._next()
                if not self._starts_term(self._peek()):
                    raise _error(self._peek().pos, "expected a comparison after AND")
            elif not self._starts_term(tok):
                break
            items.append(self._factor())
        return _and(items)

    def _factor(self) -> Expr:
        items = [self._term()]
        while self._is_keyword(self._peek(), "OR"):
            self._next()
            if not self._starts_term(self._peek()):
                raise _error(self._peek().pos, "expected a comparison after OR")
            items.append(self._term())
        return _or(items)

    def _term(self) -> Expr:
        tok = self._peek()
        if self._is_keyword(tok, "NOT") or tok.kind is _Kind.MINUS:
            self._next()
            self._enter(tok.pos)
            if not self._starts_term(self._peek()):
                raise _error(self._peek().pos, f"expected a comparison after {self._describe(tok)}")
            item = self._term()
            self._depth -= 1
            return Not(item)
        return self._simple()

    def _simple(self) -> Expr:
        tok = self._peek()
        if tok.kind is _Kind.LPAREN:
            self._next()
            self._enter(tok.pos)
            if self._peek().kind is _Kind.RPAREN:
                raise _error(self._peek().pos, "empty parentheses")
            expr = self._expression()
            close = self._next()
            if close.kind is not _Kind.RPAREN:
                raise _error(
                    close.pos,
                    f"expected ')' to close the '(' at position {tok.pos + 1}, found {self._describe(close)}",
                )
            self._depth -= 1
            return expr
        return self._restriction()

    def _restriction(self) -> Comparison:
        field_tok = self._peek()
        field, keys = self._field()
        op_tok = self._next()
        if op_tok.kind is not _Kind.OP:
            raise _error(op_tok.pos, f"expected an operator after {field}, found {self._describe(op_tok)}")
        self._comparisons += 1
        if self._comparisons > MAX_COMPARISONS:
            raise _error(field_tok.pos, f"filter has more than {MAX_COMPARISONS} comparisons")
        value_tok = self._next()
        value = self._value(field, op_tok.text, value_tok, is_metadata=keys is not None)
        return Comparison(field, op_tok.text, value)

    def _field(self) -> tuple[str, list[str] | None]:
        """A field name; metadata keys may be quoted: metadata."a b".c ."""
        first = self._next()
        if first.kind is not _Kind.WORD or first.text in _KEYWORDS:
            raise _error(first.pos, f"expected a field name, found {self._describe(first)}")
        pieces = [first]
        # Adjacent (no space) words and strings form one path: metadata."x".y
        while self._peek().kind in (_Kind.WORD, _Kind.STRING) and self._peek().pos == pieces[-1].end:
            pieces.append(self._next())
        segments: list[str] = []
        pending_dot = False  # the previous piece ended with '.', a key must follow
        for index, piece in enumerate(pieces):
            if piece.kind is _Kind.STRING:
                if not pending_dot:
                    raise _error(piece.pos, "expected '.' before a quoted key")
                segments.append(piece.text)
                pending_dot = False
                continue
            parts = piece.text.split(".")
            if index > 0:
                if parts[0] != "":
                    raise _error(piece.pos, "expected '.' after a quoted key")
                parts = parts[1:]
            pending_dot = parts[-1] == ""
            if pending_dot:
                parts = parts[:-1]
            if "" in parts:
                raise _error(piece.pos, f"empty key in field '{piece.text}'")
            segments.extend(parts)
        if pending_dot:
            raise _error(pieces[-1].end - 1, "expected a key after '.'")
        head = segments[0]
        if head == "metadata":
            keys = segments[1:]
            if not keys:
                raise _error(first.pos, "metadata needs a key: metadata.<key>")
            for key in keys:
                _check_key(key, first.pos)
            return _metadata_field(keys), keys
        if head not in FIELDS:
            raise _error(
                first.pos,
                f"unknown field '{head}'; expected one of {', '.join(FIELDS)} or metadata.<key>",
            )
        if len(segments) > 1:
            raise _error(first.pos, f"field '{head}' has no sub-fields")
        return head, None

    def _value(self, field: str, op: str, tok: _Token, *, is_metadata: bool) -> Literal:
        if tok.kind is _Kind.STAR:
            if op != ":":
                raise _error(tok.pos, "'*' (presence) is only allowed after ':'")
            return ANY
        if tok.kind not in (_Kind.WORD, _Kind.STRING) or (tok.kind is _Kind.WORD and tok.text in _KEYWORDS):
            raise _error(tok.pos, f"expected a value after {field} {op}, found {self._describe(tok)}")
        quoted = tok.kind is _Kind.STRING
        if is_metadata:
            value = tok.text if quoted else _bare_literal(tok.text, tok.pos)
            if (value is None or isinstance(value, bool)) and op in ORDERING_OPS:
                raise _error(tok.pos, f"'{op}' needs a string or a number; {tok.text} has no order")
            return value
        if field in STRING_FIELDS:
            return tok.text
        if field == "tags":
            if op not in ("=", "!=", ":"):
                raise _error(tok.pos, f"tags supports '=', '!=' and ':', not '{op}'")
            return tok.text
        if field == "kind":
            if op not in _EQUALITY_OPS:
                raise _error(tok.pos, f"kind supports '=', '!=' and ':', not '{op}'")
            name = tok.text.upper().removeprefix("MEMORY_KIND_")
            if name not in MemoryKind.__members__:
                raise _error(tok.pos, f"unknown kind '{tok.text}'; expected EPISODIC, SEMANTIC or PROCEDURAL")
            return int(MemoryKind[name])
        if field == "pinned":
            if op not in _EQUALITY_OPS:
                raise _error(tok.pos, f"pinned supports '=', '!=' and ':', not '{op}'")
            if tok.text.lower() not in ("true", "false"):
                raise _error(tok.pos, f"pinned compares with true or false, not '{tok.text}'")
            return tok.text.lower() == "true"
        # A time field.
        if field == "expire_time" and not quoted and tok.text.lower() == "null":
            if op not in ("=", "!="):
                raise _error(tok.pos, f"'{op}' cannot compare with null; use '=' or '!='")
            return None
        return _parse_time(tok.text, tok.pos)


def _and(items: list[Expr]) -> Expr:
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, And) else (item,))
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def _or(items: list[Expr]) -> Expr:
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, Or) else (item,))
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


def parse_filter(text: str) -> Expr | None:
    """Parses a filter; None when it is empty or blank.

    Raises:
        errors.InvalidArgumentError: reason INVALID_FILTER, field "filter",
            with a description naming the position of the problem.
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILTER_BYTES:
        raise errors.invalid("INVALID_FILTER", "filter", f"filter is longer than {MAX_FILTER_BYTES} bytes")
    if not text.strip():
        return None
    return _Parser(text).parse()


# --------------------------------------------------------------------------- formatting


def _format_value(field: str, value: Literal) -> str:
    if value is ANY:
        return "*"
    if field == "kind" and isinstance(value, int):
        return MemoryKind(value).name
    if field in TIME_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        return _format_string(format_time(value))
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return _format_string(str(value))


def format_filter(expr: Expr) -> str:
    """Canonical text for an Expr: parse_filter(format_filter(e)) == e.

    Equivalent spellings (quotes, kind names, time zones) format alike, so the
    text can bind a page token to its query. Parentheses appear only where the
    structure needs them (OR binds tighter than AND, so `a OR b AND c` needs
    none), which keeps the output within the depth limit of its input.
    """
    if isinstance(expr, Comparison):
        value = _format_value(expr.field, expr.value)
        return f"{expr.field}:{value}" if expr.op == ":" else f"{expr.field} {expr.op} {value}"
    if isinstance(expr, And):
        return " AND ".join(format_filter(item) for item in expr.items)
    if isinstance(expr, Or):
        return " OR ".join(
            f"({format_filter(item)})" if isinstance(item, And) else format_filter(item)
            for item in expr.items
        )
    inner = format_filter(expr.item)
    return f"NOT ({inner})" if isinstance(expr.item, And | Or) else f"NOT {inner}"


# --------------------------------------------------------------------------- scope


def scope_of(expr: Expr | None) -> Scope | None:
    """The Scope an expr is equivalent to, when it is a conjunction of
    equalities on user_id/agent_id/run_id with non-empty values; else None.

    An empty value is excluded because an empty Scope field means "any".
    """
    if expr is None:
        return None
    items = expr.items if isinstance(expr, And) else (expr,)
    fields: dict[str, str] = {}
    for item in items:
        if not (
            isinstance(item, Comparison)
            and item.field in SCOPE_FIELDS
            and item.op in ("=", ":")
            and isinstance(item.value, str)
            and item.value
        ):
            return None
        if fields.setdefault(item.field, item.value) != item.value:
            return None  # user_id = "a" AND user_id = "b": matches nothing
    return Scope(**fields)


# --------------------------------------------------------------------------- predicate

Predicate = Callable[[Memory], bool]


class _Missing:
    """A metadata path that does not resolve (distinct from a JSON null)."""


_MISSING: Final = _Missing()

_ORDER_FUNCS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_equal(actual: object, literal: object) -> bool:
    """Metadata equality: same JSON type (integers and floats are one type)."""
    if isinstance(literal, bool):
        return isinstance(actual, bool) and actual == literal
    if literal is None:
        return actual is None
    if isinstance(literal, str):
        return isinstance(actual, str) and actual == literal
    return _is_number(actual) and actual == literal


def _json_order(actual: object, op: str, literal: object) -> bool:
    if isinstance(literal, str):
        return isinstance(actual, str) and _ORDER_FUNCS[op](actual, literal)
    return _is_number(actual) and _ORDER_FUNCS[op](actual, literal)


def _json_has(actual: object, literal: object) -> bool:
    if isinstance(actual, list | tuple):
        return any(json_equal(element, literal) for element in actual)
    if isinstance(actual, Mapping):
        return isinstance(literal, str) and literal in actual
    return json_equal(actual, literal)


def _resolve(metadata: Mapping[str, Any], keys: tuple[str, ...]) -> object:
    node: object = metadata
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return _MISSING
        node = node[key]
    return node


def _metadata_predicate(comparison: Comparison) -> Predicate:
    keys = metadata_keys(comparison.field)
    op, literal = comparison.op, comparison.value
    if literal is ANY:
        return lambda m: _resolve(m.metadata, keys) is not _MISSING
    if op == ":":
        return lambda m: _json_has(_resolve(m.metadata, keys), literal)
    if op in ("=", "!="):
        negate = op == "!="
        return lambda m: json_equal(_resolve(m.metadata, keys), literal) != negate
    return lambda m: _json_order(_resolve(m.metadata, keys), op, literal)


_ACCESSORS: Final[dict[str, Callable[[Memory], Any]]] = {
    "user_id": lambda m: m.scope.user_id,
    "agent_id": lambda m: m.scope.agent_id,
    "run_id": lambda m: m.scope.run_id,
    "id": lambda m: m.id,
    "kind": lambda m: int(m.kind),
    "pinned": lambda m: bool(m.pinned),
    "create_time": lambda m: m.create_time_us,
    "update_time": lambda m: m.update_time_us,
    "expire_time": lambda m: m.expire_time_us,
}


def _field_predicate(comparison: Comparison) -> Predicate:
    field, op, literal = comparison.field, comparison.op, comparison.value
    if field == "tags":
        if literal is ANY:
            return lambda m: len(m.tags) > 0
        return lambda m: (literal in m.tags) != (op == "!=")
    get = _ACCESSORS[field]
    if literal is ANY:
        if field == "expire_time":
            return lambda m: m.expire_time_us is not None
        if field in STRING_FIELDS or field == "pinned":
            return lambda m: bool(get(m))
        return lambda m: get(m) != 0  # kind, create_time, update_time
    if op in ("=", "!=", ":"):
        negate = op == "!="
        # `is None` for `expire_time = null`; plain equality otherwise (an
        # unset expire_time equals no time).
        if literal is None:
            return lambda m: (get(m) is None) != negate
        return lambda m: (get(m) == literal) != negate
    compare = _ORDER_FUNCS[op]
    return lambda m: (value := get(m)) is not None and compare(value, literal)


def to_predicate(expr: Expr | None) -> Predicate:
    """A Python test with exactly the semantics of the store's SQL."""
    if expr is None:
        return lambda m: True
    if isinstance(expr, Comparison):
        if expr.field.startswith("metadata."):
            return _metadata_predicate(expr)
        return _field_predicate(expr)
    if isinstance(expr, And):
        preds = [to_predicate(item) for item in expr.items]
        return lambda m: all(p(m) for p in preds)
    if isinstance(expr, Or):
        preds = [to_predicate(item) for item in expr.items]
        return lambda m: any(p(m) for p in preds)
    inner = to_predicate(expr.item)
    return lambda m: not inner(m)
