"""mem0's filter dicts, translated into a Mnemo scope and filter expression.

mem0 hands its vector stores filters such as
``{"user_id": "alice", "topic": {"in": ["food", "travel"]}, "$or": [...]}``.
Scope keys (`user_id`, `agent_id`, `run_id`) with a plain string become the
request's scope; every other key is a metadata key (`metadata.<key>` in
docs/filters.md). Anything Mnemo cannot express exactly raises
`UnsupportedFilterError`: a filter is never dropped or widened quietly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SCOPE_KEYS = ("user_id", "agent_id", "run_id")

# The metadata key that keeps mem0 collections apart inside one tenant.
COLLECTION_KEY = "mem0_collection"

_COMPARISONS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BAD_KEY = re.compile(r'["\\\x00-\x1f\x7f]')


class UnsupportedFilterError(ValueError):
    """A mem0 filter that Mnemo cannot apply exactly (it is refused, never ignored)."""


@dataclass(frozen=True)
class Translated:
    """A mem0 filter as Mnemo takes it: scope fields plus a filter expression."""

    scope: dict[str, str] = field(default_factory=dict)
    expression: str = ""

    @property
    def user_id(self) -> str | None:
        return self.scope.get("user_id")

    @property
    def agent_id(self) -> str | None:
        return self.scope.get("agent_id")

    @property
    def run_id(self) -> str | None:
        return self.scope.get("run_id")


def quote(text: str) -> str:
    """A string literal of the filter language."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    escaped = "".join(c if ord(c) >= 0x20 else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


def literal(value: Any, key: str) -> str:
    """A filter-language value for a mem0 filter value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnsupportedFilterError(f"filter on {key!r}: {value} is not a finite number")
        return repr(value)
    if isinstance(value, str):
        return quote(value)
    raise UnsupportedFilterError(
        f"filter on {key!r}: values of type {type(value).__name__} cannot be compared"
    )


def field_name(key: str) -> str:
    """The filter-language field of a mem0 payload key."""
    if key in SCOPE_KEYS:
        return key
    if not key or _BAD_KEY.search(key):
        raise UnsupportedFilterError(
            f"filter key {key!r}: keys may not be empty or hold quotes or backslashes"
        )
    return f"metadata.{key}" if _WORD.match(key) else f"metadata.{quote(key)}"


def _any_of(name: str, values: Any, key: str) -> str:
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        raise UnsupportedFilterError(f"filter on {key!r}: 'in' and 'nin' take a non-empty list")
    return "(" + " OR ".join(f"{name} = {literal(v, key)}" for v in values) + ")"


def condition(key: str, value: Any) -> str:
    """One mem0 condition (`key: value` or `key: {op: value, ...}`) as an expression."""
    name = field_name(key)
    if value == "*":
        return f"{name}:*"
    if isinstance(value, list):  # mem0's FAISS store reads a list as "any of"
        return _any_of(name, value, key)
    if not isinstance(value, Mapping):
        return f"{name} = {literal(value, key)}"
    if not value:
        raise UnsupportedFilterError(f"filter on {key!r}: an empty operator object")
    parts: list[str] = []
    for op, operand in value.items():
        if op in _COMPARISONS:
            parts.append(f"{name} {_COMPARISONS[op]} {literal(operand, key)}")
        elif op == "in":
            parts.append(_any_of(name, operand, key))
        elif op == "nin":
            parts.append("NOT " + _any_of(name, operand, key))
        elif op in ("contains", "icontains"):
            raise UnsupportedFilterError(
                f"filter on {key!r}: {op!r} (substring match) is not supported by Mnemo; "
                "use 'eq', 'in' or keyword search"
            )
        else:
            raise UnsupportedFilterError(f"filter on {key!r}: unknown operator {op!r}")
    return " AND ".join(parts)


def _group(conditions: Any, op: str) -> list[str]:
    if not isinstance(conditions, Sequence) or isinstance(conditions, str) or not conditions:
        raise UnsupportedFilterError(f"{op} takes a non-empty list of conditions")
    groups = []
    for c in conditions:
        if not isinstance(c, Mapping) or not c:
            raise UnsupportedFilterError(f"{op}: each condition must be a non-empty object")
        groups.append(expression(c))
    return groups


def expression(filters: Mapping[str, Any]) -> str:
    """A whole mem0 filter object as one expression (all of its conditions)."""
    parts: list[str] = []
    for key, value in filters.items():
        if key in ("$or", "OR"):
            parts.append("(" + " OR ".join(f"({g})" for g in _group(value, key)) + ")")
        elif key in ("$not", "NOT"):
            parts.extend(f"NOT ({g})" for g in _group(value, key))
        elif key in ("$and", "AND"):
            parts.extend(f"({g})" for g in _group(value, key))
        else:
            parts.append(condition(key, value))
    return " AND ".join(parts)


def translate(filters: Mapping[str, Any] | None, collection: str) -> Translated:
    """mem0 filters (and the store's collection) as a Mnemo scope and filter.

    Raises:
        UnsupportedFilterError: for an operator or value Mnemo cannot apply exactly.
    """
    scope: dict[str, str] = {}
    rest: dict[str, Any] = {}
    for key, value in (filters or {}).items():
        if key in SCOPE_KEYS and isinstance(value, str) and value not in ("", "*"):
            scope[key] = value
        elif key in SCOPE_KEYS and value is None:
            continue  # mem0 passes unset scope ids as None
        else:
            rest[key] = value
    own = f"metadata.{COLLECTION_KEY} = {quote(collection)}"
    extra = expression(rest)
    return Translated(scope, f"{own} AND ({extra})" if extra else own)
