"""Expr -> a Python predicate over a Memory, with the semantics the store's
SQL (store/sqlite_filter.py) mirrors: every comparison two-valued."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any, Final

from mnemo_server.filters.ast import ANY, STRING_FIELDS, And, Comparison, Expr, Or
from mnemo_server.filters.literals import metadata_keys
from mnemo_server.models import Memory

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
