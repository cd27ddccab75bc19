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

The package: ast.py (the tree, fields, limits, scope_of), lexer.py (text ->
tokens), literals.py (times, words, strings, metadata keys), parser.py
(tokens -> Expr), format.py (Expr -> text), predicate.py (Expr -> predicate).
"""

from mnemo_server.filters.ast import (
    ANY,
    FIELDS,
    MAX_COMPARISONS,
    MAX_DEPTH,
    MAX_FILTER_BYTES,
    OPERATORS,
    ORDERING_OPS,
    SCOPE_FIELDS,
    STRING_FIELDS,
    TIME_FIELDS,
    And,
    Comparison,
    Expr,
    Literal,
    Not,
    Or,
    Wildcard,
    scope_of,
)
from mnemo_server.filters.format import format_filter
from mnemo_server.filters.literals import format_time, metadata_keys
from mnemo_server.filters.parser import parse_filter
from mnemo_server.filters.predicate import Predicate, json_equal, to_predicate

__all__ = [
    "ANY",
    "FIELDS",
    "MAX_COMPARISONS",
    "MAX_DEPTH",
    "MAX_FILTER_BYTES",
    "OPERATORS",
    "ORDERING_OPS",
    "SCOPE_FIELDS",
    "STRING_FIELDS",
    "TIME_FIELDS",
    "And",
    "Comparison",
    "Expr",
    "Literal",
    "Not",
    "Or",
    "Predicate",
    "Wildcard",
    "format_filter",
    "format_time",
    "json_equal",
    "metadata_keys",
    "parse_filter",
    "scope_of",
    "to_predicate",
]
