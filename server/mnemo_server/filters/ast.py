"""The filter language's tree (Comparison, And, Or, Not), the fields and
limits it knows, the error every part reports, and `scope_of`: the Scope an
expression is equivalent to. docs/filters.md is the language itself."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from mnemo_server import errors
from mnemo_server.models import Scope

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


def error_at(pos: int, description: str) -> errors.InvalidArgumentError:
    """Positions are 1-based character offsets into the filter text."""
    return errors.invalid("INVALID_FILTER", "filter", f"{description} (at position {pos + 1})")


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
