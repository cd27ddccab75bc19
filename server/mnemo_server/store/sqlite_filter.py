"""Compiles a filter Expr to an SQLite boolean expression.

The contract is filters.to_predicate: for every memory the SQL and the
predicate agree. Two rules make that hold:

- every compiled comparison is 0 or 1, never NULL (a NULL would turn
  `NOT x` into "unknown" and drop rows the predicate keeps): nullable inputs
  are guarded by `IS NOT NULL` or coalesce();
- metadata comparisons check the JSON type first, because json_extract()
  returns true as 1 and would otherwise make `metadata.flag = 1` match.

User values are always bound parameters; the only text interpolated is
column names and operators, taken from fixed tables here.
"""

from __future__ import annotations

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
        # `!=` is defined as NOT `=` everywhere (a missing key matches it).
        sql, params = _comparison(Comparison(expr.field, "=", expr.value), alias)
        return f"(NOT {sql})", params
    return _comparison(expr, alias)


def _comparison(c: Comparison, alias: str) -> Sql:
    if c.field.startswith("metadata."):
        return _metadata(c, alias)
    if c.field == "tags":
        if c.value is ANY:
            return f"(json_array_length({alias}.tags) > 0)", []
        return f"EXISTS (SELECT 1 FROM json_each({alias}.tags) AS t WHERE t.value = ?)", [c.value]
    column = f"{alias}.{_COLUMNS[c.field]}"
    if c.value is ANY:
        if c.field == "expire_time":
            return f"({column} IS NOT NULL)", []
        if c.field in STRING_FIELDS:
            return f"({column} <> '')", []
        return f"({column} <> 0)", []  # pinned, kind, create_time, update_time
    if c.value is None:  # expire_time = null
        return f"({column} IS NULL)", []
    value: object = int(c.value) if isinstance(c.value, bool) else c.value
    comparison = f"{column} {_SQL_OPS[c.op]} ?"
    if c.field == "expire_time":
        return f"({column} IS NOT NULL AND {comparison})", [value]
    return f"({comparison})", [value]


def _json_path(keys: tuple[str, ...]) -> str:
    # The parser refuses keys with '"', '\' or control characters, so quoting
    # each key is enough to make it literal; an Expr built by hand is checked
    # here, because such a key would silently match nothing in SQL.
    for key in keys:
        if not key or any(c in '"\\' or ord(c) < 0x20 for c in key):
            raise ValueError(f"metadata key {key!r} cannot be addressed in SQLite")
    return "$" + "".join(f'."{key}"' for key in keys)


def _type_test(type_sql: str, value: Literal) -> str:
    """SQL testing that a JSON type expression suits `value` (no params)."""
    if value is True:
        return f"{type_sql} = 'true'"
    if value is False:
        return f"{type_sql} = 'false'"
    if value is None:
        return f"{type_sql} = 'null'"
    if isinstance(value, str):
        return f"{type_sql} = 'text'"
    return f"{type_sql} IN ('integer', 'real')"


def _metadata(c: Comparison, alias: str) -> Sql:
    path = _json_path(metadata_keys(c.field))
    doc = f"{alias}.metadata"
    if c.value is ANY:
        return f"(json_type({doc}, ?) IS NOT NULL)", [path]
    json_type = f"coalesce(json_type({doc}, ?), '')"
    scalar_sql = f"({_type_test(json_type, c.value)}"
    scalar_params: list[object] = [path]
    if c.value is None or isinstance(c.value, bool):
        scalar_sql += ")"  # the type alone decides: only '=', '!=', ':' reach here
    else:
        scalar_sql += f" AND json_extract({doc}, ?) {_SQL_OPS[c.op]} ?)"
        scalar_params += [path, c.value]
    if c.op != ":":
        return scalar_sql, scalar_params
    # `:` also means "the list contains" and "the object has the key".
    element = _type_test("e.type", c.value)
    element_params: list[object] = []
    if not (c.value is None or isinstance(c.value, bool)):
        element += " AND e.value = ?"
        element_params.append(c.value)
    sql = (
        f"({scalar_sql}"
        f" OR ({json_type} = 'array'"
        f" AND EXISTS (SELECT 1 FROM json_each({doc}, ?) AS e WHERE {element}))"
    )
    params = [*scalar_params, path, path, *element_params]
    if isinstance(c.value, str):
        sql += (
            f" OR ({json_type} = 'object'"
            f" AND EXISTS (SELECT 1 FROM json_each({doc}, ?) AS e WHERE e.key = ?))"
        )
        params += [path, path, c.value]
    return sql + ")", params
