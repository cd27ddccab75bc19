"""Literals and metadata paths, read and written: timestamps (RFC 3339 or
epoch), bare words (numbers, true/false/null), quoted strings, and the keys
of `metadata.<key>[.<key>...]` (bare or quoted)."""

from __future__ import annotations

import datetime as dt
import math
import re
from functools import lru_cache
from typing import Final

from mnemo_server import validation
from mnemo_server.filters.ast import error_at
from mnemo_server.filters.lexer import read_string

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


def parse_time(text: str, pos: int) -> int:
    match = _TIME_RE.fullmatch(text)
    if match is None:
        raise error_at(pos, f'"{text}" is not a quoted RFC 3339 time such as "2026-01-01T00:00:00Z"')
    year, month, day, hour, minute, second, frac, zulu, sign, off_h, off_m = match.groups()
    # Rounding a finer literal would change what `>=` or `<` admit, so refuse it.
    if frac and frac[6:].strip("0"):
        raise error_at(pos, "times have at most microsecond precision")
    micros = int((frac or "0")[:6].ljust(6, "0"))
    offset = dt.timedelta(0)
    if not zulu:
        if int(off_h) > 23 or int(off_m) > 59:
            raise error_at(pos, f'"{text}" has an invalid UTC offset')
        offset = dt.timedelta(hours=int(off_h), minutes=int(off_m)) * (1 if sign == "+" else -1)
    try:
        local = dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError as exc:
        raise error_at(pos, f'"{text}" is not a valid time: {exc}') from None
    # Naive arithmetic: an offset may move 0001-01-01 or 9999-12-31 out of
    # datetime's range, which the aware subtraction would raise on.
    us = (
        (local - _NAIVE_EPOCH) // dt.timedelta(microseconds=1)
        + micros
        - offset // dt.timedelta(microseconds=1)
    )
    if not validation.MIN_TIME_US <= us <= validation.MAX_TIME_US:
        raise error_at(pos, f'"{text}" lies outside {validation.TIME_RANGE}')
    return us


def format_time(us: int) -> str:
    """RFC 3339 in UTC with 'Z', fractional seconds only when non-zero."""
    when = _EPOCH + dt.timedelta(microseconds=us)
    # Not strftime: glibc does not zero-pad years below 1000.
    text = (
        f"{when.year:04d}-{when.month:02d}-{when.day:02d}T{when.hour:02d}:{when.minute:02d}:{when.second:02d}"
    )
    return f"{text}.{when.microsecond:06d}Z" if when.microsecond else f"{text}Z"


def bare_literal(text: str, pos: int) -> str | int | float | bool | None:
    """Types a bare word as a metadata value: quoted text is always a string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    if _INT_RE.fullmatch(text):
        value = int(text)
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise error_at(pos, f"integer {text} is outside the signed 64-bit range")
        return value
    if _FLOAT_RE.fullmatch(text):
        number = float(text)
        if not math.isfinite(number):
            raise error_at(pos, f"number {text} is not finite")
        return number
    return text


# --------------------------------------------------------------------------- metadata paths

# Keys written bare in canonical text; anything else is double-quoted.
_BARE_KEY_RE: Final = re.compile(r"[A-Za-z0-9_-]+")


def check_key(key: str, pos: int) -> None:
    # SQLite (3.40) matches JSON path keys against the raw JSON text of the
    # stored key, so a key JSON must escape could never be found by SQL;
    # refusing it keeps SQL and the predicate in agreement.
    if not key:
        raise error_at(pos, "metadata keys must not be empty")
    if any(c in '"\\' or ord(c) < 0x20 for c in key):
        raise error_at(pos, "metadata keys in filters may not contain '\"', '\\' or control characters")


def format_string(value: str) -> str:
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


def metadata_field(keys: list[str]) -> str:
    return "metadata." + ".".join(k if _BARE_KEY_RE.fullmatch(k) else format_string(k) for k in keys)


@lru_cache(maxsize=1024)
def metadata_keys(field: str) -> tuple[str, ...]:
    """The keys of a metadata field name: 'metadata."a b".c' -> ("a b", "c")."""
    if not field.startswith("metadata."):
        raise ValueError(f"not a metadata field: {field!r}")
    keys: list[str] = []
    i = len("metadata.")
    while i <= len(field):
        if field[i : i + 1] == '"':
            key, i = read_string(field, i)
        else:
            end = field.find(".", i)
            end = len(field) if end < 0 else end
            key, i = field[i:end], end
        keys.append(key)
        i += 1  # the '.' separator
    return tuple(keys)
