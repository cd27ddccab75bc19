"""Expr -> canonical filter text that parses back to the same Expr (the
service keys page tokens and caches on it)."""

from __future__ import annotations

from mnemo_server.filters.ast import ANY, TIME_FIELDS, And, Comparison, Expr, Literal, Or
from mnemo_server.filters.literals import format_string, format_time
from mnemo_server.models import MemoryKind


def _format_value(field: str, value: Literal) -> str:
    if value is ANY:
        return "*"
    if field == "kind" and isinstance(value, int):
        return MemoryKind(value).name
    if field in TIME_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        return format_string(format_time(value))
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return format_string(str(value))


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
