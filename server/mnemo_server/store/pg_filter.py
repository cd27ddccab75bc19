"""Compiles a filter Expr to a PostgreSQL boolean expression.

The contract is filters.to_predicate, as for sqlite_filter.py: for every
memory the SQL and the predicate agree. Every compiled comparison is true or
false, never NULL (coalesce() around every jsonb test), metadata is read as
jsonb (`metadata::jsonb`, stored as text so it round-trips exactly), JSON
types are tested before values (so `true` never equals 1), and strings
compare in code point order (COLLATE "C", as SQLite and Python do).

User values are always bound parameters (%s); the only text interpolated is
column names and operators from the fixed tables here.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from mnemo_server.filters import (
    ANY,
    STRING_FIELDS,
    And,
    Comparison,
    Expr,
    Literal,
    Not,
    Or,
    metadata_keys,
)

_COLUMNS: Final = {
    "user_id": "user_id",
    "agent_id": "agent_id",
    "run_id": "run_id",
    "id": "id",
    "kind": "kind",
    "pinned": "pinned",
    "create_time": "create_time_us",
    "update_time": "update_time_us",
    "expire_time": "expire_time_us",
}
_SQL_OPS: Final = {"=": "=", ":": "=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

Sql = tuple[str, list[object]]


def compile_filter(expr: Expr, *, alias: str = "m") -> Sql:
    """(sql, params) testing `expr` on the memories row aliased `alias`."""
    if isinstance(expr, And | Or):
        parts = [compile_filter(item, alias=alias) for item in expr.items]
        joiner = " AND " if isinstance(expr, And) else " OR "
        return "(" + joiner.join(sql for sql, _ in parts) + ")", [p for _, params in parts for p in params]
    if isinstance(expr, Not):
        sql, params = compile_filter(expr.item, alias=alias)
        return f"(NOT {sql})", params
    if expr.op == "!=":
        sql, params = _comparison(Comparison(expr.field, "=", expr.value), alias)
        return f"(NOT {sql})", params
    return _comparison(expr, alias)


def _comparison(c: Comparison, alias: str) -> Sql:
    if c.field.startswith("metadata."):
        return _metadata(c, alias)
    if c.field == "tags":
        if c.value is ANY:
            return f"({alias}.tags <> '[]')", []
        return (
            f"EXISTS (SELECT 1 FROM jsonb_array_elements_text({alias}.tags::jsonb) AS t(v)"
            ' WHERE t.v = %s COLLATE "C")',
            [c.value],
        )
    column = f"{alias}.{_COLUMNS[c.field]}"
    if c.value is ANY:
        if c.field == "expire_time":
            return f"({column} IS NOT NULL)", []
        if c.field in STRING_FIELDS:
            return f"({column} <> '')", []
        return f"({column} <> 0)", []
    if c.value is None:
        return f"({column} IS NULL)", []
    value: object = int(c.value) if isinstance(c.value, bool) else c.value
    if c.field in STRING_FIELDS:
        comparison = f'{column} COLLATE "C" {_SQL_OPS[c.op]} %s'
    else:
        comparison = f"{column} {_SQL_OPS[c.op]} %s"
    if c.field == "expire_time":
        return f"({column} IS NOT NULL AND {comparison})", [value]
    return f"({comparison})", [value]


def _scalar_test(node: str, op: str, value: Literal) -> Sql:
    """SQL over a jsonb expression `node` (may be NULL, never a parameter):
    its JSON type suits `value` and it compares to it by `op`. CASE, not
    AND: PostgreSQL does not promise to test the type before the cast."""
    if value is True or value is False or value is None:
        literal = "true" if value is True else "false" if value is False else "null"
        return f"coalesce({node} = '{literal}'::jsonb, false)", []
    text = f"({node} #>> '{{}}')"
    if isinstance(value, str):
        return (
            f"CASE WHEN jsonb_typeof({node}) = 'string'"
            f' THEN {text} COLLATE "C" {_SQL_OPS[op]} %s ELSE false END',
            [value],
        )
    if isinstance(value, float):
        # json.loads reads a JSON number as float or int; Python compares
        # a float literal with either numerically, as float8 does here.
        return (
            f"CASE WHEN jsonb_typeof({node}) = 'number'"
            f" THEN {text}::float8 {_SQL_OPS[op]} %s::float8 ELSE false END",
            [value],
        )
    # An int literal: exact against stored integers, float8 against stored floats.
    if not isinstance(value, int):
        raise ValueError(f"no metadata comparison with {value!r}")
    return (
        f"CASE WHEN jsonb_typeof({node}) <> 'number' OR {node} IS NULL THEN false"
        f" WHEN {text} ~ '[.eE]' THEN {text}::float8 {_SQL_OPS[op]} %s::float8"
        f" ELSE {text}::numeric {_SQL_OPS[op]} %s::numeric END",
        [float(value), Decimal(int(value))],
    )


def _metadata(c: Comparison, alias: str) -> Sql:
    """The path is one parameter, resolved once in a subquery (x.v)."""
    keys = list(metadata_keys(c.field))
    if c.value is ANY:
        return f"(({alias}.metadata::jsonb #> %s::text[]) IS NOT NULL)", [keys]
    sql, params = _scalar_test("x.v", c.op, c.value)
    if c.op == ":":
        # `:` also means "the list contains" and "the object has the key".
        element_sql, element_params = _scalar_test("e.v", "=", c.value)
        sql = (
            f"({sql} OR CASE WHEN jsonb_typeof(x.v) = 'array' THEN EXISTS"
            f" (SELECT 1 FROM jsonb_array_elements(x.v) AS e(v) WHERE {element_sql}) ELSE false END"
        )
        params = [*params, *element_params]
        if isinstance(c.value, str):
            sql += " OR CASE WHEN jsonb_typeof(x.v) = 'object' THEN jsonb_exists(x.v, %s) ELSE false END"
            params.append(c.value)
        sql += ")"
    return (
        f"EXISTS (SELECT 1 FROM (SELECT {alias}.metadata::jsonb #> %s::text[] AS v) AS x WHERE {sql})",
        [keys, *params],
    )
