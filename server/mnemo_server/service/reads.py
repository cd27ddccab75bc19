"""Reads by id, listings, histories and the change feed's replay.

A read by id answers MEMORY_NOT_FOUND for a memory that is missing,
expired, of another tenant or outside a restricted key's users and agents,
so it never reveals what exists. Page tokens are bound to their query
(pagination.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mnemo_server import filters, validation
from mnemo_server.errors import NotFoundError, OutOfRangeError, invalid
from mnemo_server.feed import FeedEvent
from mnemo_server.models import Memory, Principal, Scope, VersionRecord
from mnemo_server.pagination import decode_token, encode_token, fingerprint
from mnemo_server.service.state import ServiceState
from mnemo_server.store.base import ORDER_FIELDS, OrderTerm


class Reads(ServiceState):
    """GetMemory, ListMemories, GetMemoryHistory and a watch's replay."""

    def get(self, principal: Principal, memory_id: str, *, with_embedding: bool = False) -> Memory:
        validation.check_id(memory_id, "id")
        now = self.clock()
        memory: Memory | None
        if self.caches is None or self._behind():
            # Behind another worker's writes: the cache may hold what they replaced.
            memory = self.store.get(principal.tenant, memory_id, with_embedding=with_embedding)
        else:
            lookup = self.caches.records.lookup(principal.tenant, [memory_id], with_embedding=with_embedding)
            memory = lookup.found.get(memory_id)
            if memory is None:
                memory = self.store.get(principal.tenant, memory_id, with_embedding=with_embedding)
                if memory is not None:
                    self.caches.records.fill(lookup, [memory], now_us=now)
        if memory is None or memory.is_expired(now) or not principal.allows(memory.scope):
            raise NotFoundError(f"memory {memory_id!r} not found", metadata={"id": memory_id})
        return memory

    def list_memories(
        self,
        principal: Principal,
        *,
        scope: Scope,
        filter_text: str,
        order_by: str,
        page_size: int,
        page_token: str,
        with_embedding: bool = False,
    ) -> tuple[list[Memory], str]:
        self.confine(principal, scope)
        expr = filters.parse_filter(filter_text)
        order = parse_order_by(order_by)
        size = validation.check_page_size(page_size, "page_size", self.limits)
        query = fingerprint(
            "list",
            principal.tenant,
            scope,
            filters.format_filter(expr) if expr else "",
            [(t.field, t.descending) for t in order],
        )
        cursor = decode_token(page_token, query, [*(_SORT_TYPES[t.field] for t in order), str])
        rows = self.store.list(
            principal.tenant,
            scope=scope,
            filter=expr,
            order=order,
            after=tuple(cursor) if cursor is not None else None,
            limit=size + 1,
            now_us=self.clock(),
            with_embedding=with_embedding,
        )
        next_token = ""
        if len(rows) > size:
            rows = rows[:size]
            next_token = encode_token(query, _sort_key(rows[-1], order))
        return rows, next_token

    def history(
        self, principal: Principal, memory_id: str, *, page_size: int, page_token: str
    ) -> tuple[list[VersionRecord], str]:
        validation.check_id(memory_id, "id")
        size = validation.check_page_size(page_size, "page_size", self.limits)
        query = fingerprint("history", principal.tenant, memory_id)
        cursor = decode_token(page_token, query, [int])
        before = int(cursor[0]) if cursor else None
        records = self.store.history(principal.tenant, memory_id, before_version=before, limit=size + 1)
        shown = (records[0].after or records[0].before) if records else None
        if (not records and before is None) or (
            principal.restricted and (shown is None or not principal.allows(shown.scope))
        ):
            raise NotFoundError(f"memory {memory_id!r} not found", metadata={"id": memory_id})
        next_token = ""
        if len(records) > size:
            records = records[:size]
            next_token = encode_token(query, [records[-1].version])
        return records, next_token

    def feed_batch(
        self, principal: Principal, *, after: int, scope: Scope, limit: int = 1000
    ) -> list[FeedEvent]:
        """Logged changes after `after` (for watch replay)."""
        self.confine(principal, scope)
        compacted = self.store.compacted_revision()
        if after < compacted:
            raise OutOfRangeError(
                f"revision {after} is compacted; the log starts after revision {compacted}",
                reason="REVISION_COMPACTED",
                metadata={"oldest_revision": str(compacted)},
            )
        current = self.store.current_revision()
        if after > current:
            # Accepted, such a watch would wait for revisions this store may never reach.
            raise OutOfRangeError(
                f"revision {after} is ahead of the store, which is at revision {current}",
                reason="REVISION_AHEAD",
                metadata={"current_revision": str(current)},
            )
        entries = self.store.feed_since(after, tenant=principal.tenant, scope=scope, limit=limit)
        return [FeedEvent(e.change, e.memory) for e in entries]


def parse_order_by(text: str) -> list[OrderTerm]:
    if not text.strip():
        return [OrderTerm("create_time", descending=True)]
    terms = []
    for part in text.split(","):
        words = part.split()
        if (
            not words
            or len(words) > 2
            or words[0] not in ORDER_FIELDS
            or (len(words) == 2 and words[1].lower() not in ("asc", "desc"))
        ):
            raise invalid(
                "INVALID_ORDER_BY",
                "order_by",
                f"expected fields of {', '.join(ORDER_FIELDS)} each optionally followed by"
                f" asc or desc, got {part.strip()!r}",
            )
        terms.append(OrderTerm(words[0], len(words) == 2 and words[1].lower() == "desc"))
    if len({t.field for t in terms}) != len(terms):
        raise invalid("INVALID_ORDER_BY", "order_by", "names a field twice")
    return terms


#: The type of each sort field's value in a list cursor.
_SORT_TYPES: dict[str, type] = {"create_time": int, "update_time": int, "id": str}


def _sort_key(memory: Memory, order: Sequence[OrderTerm]) -> list[Any]:
    values: dict[str, Any] = {
        "create_time": memory.create_time_us,
        "update_time": memory.update_time_us,
        "id": memory.id,
    }
    return [values[t.field] for t in order] + [memory.id]
