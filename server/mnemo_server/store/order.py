"""Keyset pagination keys, shared by every RecordStore implementation.

A listing sorts by its order terms and then by `id`, which is unique within a
tenant, so the sort key of a row is unique and "the rows after this key" is
well defined: every row appears on exactly one page even when many rows share
a create_time. The key always ends with the id, even when an order term is
already `id` (then the last value only repeats it), so callers can build it
without knowing that rule: order values, then id (RecordStore.list).

The `id` tie-break runs in the direction of the last order term (ascending
when there is none). That choice lets the common single-term orders
(`create_time desc`) walk one index, (tenant, create_time, id), in one
direction instead of sorting every matching row for every page.
"""

from __future__ import annotations

from collections.abc import Sequence

from mnemo_server.models import Memory
from mnemo_server.store.base import ORDER_FIELDS, OrderTerm


def sort_terms(order: Sequence[OrderTerm]) -> tuple[OrderTerm, ...]:
    """The full sort: the order terms, then `id`.

    Raises:
        ValueError: an unknown or repeated field (the API validates order_by
            before it reaches a store, so this is a programming error).
    """
    seen: set[str] = set()
    for term in order:
        if term.field not in ORDER_FIELDS:
            raise ValueError(f"cannot order by {term.field!r}; expected one of {ORDER_FIELDS}")
        if term.field in seen:
            raise ValueError(f"order names {term.field!r} twice")
        seen.add(term.field)
    descending = order[-1].descending if order else False
    return (*order, OrderTerm("id", descending))


def sort_key(memory: Memory, order: Sequence[OrderTerm]) -> tuple[object, ...]:
    """The `after` tuple that continues a listing after `memory`."""
    values: dict[str, object] = {
        "create_time": memory.create_time_us,
        "update_time": memory.update_time_us,
        "id": memory.id,
    }
    return tuple(values[term.field] for term in sort_terms(order))
