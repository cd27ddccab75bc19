"""PgReads: the record reads of the PostgreSQL store.

Point reads, listing (keyset pages, as in sqlite_reads.py), filter and
keyword matches (pg_fts.py), vectors for the index, expiry and counts. Each
read is one statement on a pooled autocommit connection (so it sees the
last commit), or one REPEATABLE READ transaction where it needs several
statements to agree (keyword search: statistics and candidates).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Sequence
from typing import Final

from mnemo_server.filters import Expr
from mnemo_server.models import Memory, Scope
from mnemo_server.store import pg_fts
from mnemo_server.store import sqlite_codec as codec
from mnemo_server.store.base import (
    IdempotentRecord,
    KeywordHit,
    OrderTerm,
    ScopeCountRow,
    TenantCountRow,
    VectorRow,
)
from mnemo_server.store.order import sort_terms
from mnemo_server.store.pg_connections import PgConnections
from mnemo_server.store.pg_filter import compile_filter
from mnemo_server.store.sqlite_reads import _vector_rows

_ORDER_COLUMNS: Final = {"create_time": "create_time_us", "update_time": "update_time_us", "id": "id"}
_VECTOR_COLUMNS: Final = "key, tenant, user_id, agent_id, run_id, embedding"


class PgReads(PgConnections):
    # ------------------------------------------------------------------ point reads

    def get(self, tenant: str, memory_id: str, *, with_embedding: bool = False) -> Memory | None:
        columns = codec.select_list("m", with_embedding=with_embedding)
        row = self._one(
            f"SELECT {columns} FROM memories AS m WHERE m.tenant = %s AND m.id = %s", (tenant, memory_id)
        )
        return None if row is None else codec.row_to_memory(row)

    def get_idempotent(self, tenant: str, request_id: str) -> IdempotentRecord | None:
        row = self._one(
            "SELECT fingerprint, response, create_time_us FROM idempotency WHERE tenant = %s AND"
            " request_id = %s",
            (tenant, request_id),
        )
        return None if row is None else IdempotentRecord(row[0], codec.outcomes_from_json(row[1]), row[2])

    def get_many(self, tenant: str, memory_ids: Sequence[str]) -> builtins.list[Memory]:
        if not memory_ids:
            return []
        columns = codec.select_list("m", with_embedding=False)
        rows = self._all(
            f"SELECT {columns} FROM memories AS m WHERE m.tenant = %s AND m.id = ANY(%s)",
            (tenant, list(memory_ids)),
        )
        return [codec.row_to_memory(row) for row in rows]

    def get_by_keys(self, keys: Sequence[int], *, with_embedding: bool = False) -> dict[int, Memory]:
        if not keys:
            return {}
        columns = codec.select_list("m", with_embedding=with_embedding)
        rows = self._all(
            f"SELECT {columns} FROM memories AS m WHERE m.key = ANY(%s)", ([int(k) for k in keys],)
        )
        return {row[0]: codec.row_to_memory(row) for row in rows}

    # ------------------------------------------------------------------ queries

    def list(
        self,
        tenant: str,
        *,
        scope: Scope,
        filter: Expr | None,
        order: Sequence[OrderTerm],
        after: tuple[object, ...] | None,
        limit: int,
        now_us: int,
        with_embedding: bool = False,
    ) -> builtins.list[Memory]:
        """See RecordStore.list and SqliteReads.list (the same keyset paging)."""
        if limit <= 0:
            return []
        terms = sort_terms(order)
        if after is not None and len(after) != len(terms):
            raise ValueError(f"after has {len(after)} values; the sort key has {len(terms)}")
        if any(t.field == "id" for t in order):
            terms = terms[:-1]
            after = None if after is None else after[:-1]
        where, params = live_where(tenant, scope, filter, now_us)
        if after is not None:
            keyset_sql, keyset_params = _keyset(terms, after)
            where.append(keyset_sql)
            params.extend(keyset_params)
        order_sql = ", ".join(
            f"m.{_ORDER_COLUMNS[t.field]} {'DESC' if t.descending else 'ASC'}" for t in terms
        )
        columns = codec.select_list("m", with_embedding=with_embedding)
        sql = f"SELECT {columns} FROM memories AS m WHERE {' AND '.join(where)} ORDER BY {order_sql} LIMIT %s"
        return [codec.row_to_memory(row) for row in self._all(sql, (*params, limit))]

    def match_keys(
        self, tenant: str, *, scope: Scope, filter: Expr | None, now_us: int
    ) -> builtins.list[int]:
        where, params = live_where(tenant, scope, filter, now_us)
        sql = f"SELECT m.key FROM memories AS m WHERE {' AND '.join(where)} ORDER BY m.key"
        return [row[0] for row in self._all(sql, params)]

    def keyword_search(
        self, tenant: str, text: str, *, scope: Scope, filter: Expr | None, now_us: int, limit: int
    ) -> builtins.list[KeywordHit]:
        """See RecordStore.keyword_search and pg_fts.py (tokens, BM25)."""
        phrases = pg_fts.phrases(text)
        if not phrases or limit <= 0:
            return []
        any_query = pg_fts.any_query(phrases)
        where, params = live_where(tenant, scope, filter, now_us)
        counts = ", ".join("count(*) FILTER (WHERE words @@ %s::tsquery)" for _ in phrases)
        with self._conn() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            stats = conn.execute(
                "SELECT coalesce(sum(memory_count), 0), coalesce(sum(word_count), 0) FROM tenant_usage"
            ).fetchone()
            having = conn.execute(
                f"SELECT {counts} FROM memories WHERE words @@ %s::tsquery",
                (*(pg_fts.phrase_query(p) for p in phrases), any_query),
            ).fetchone()
            candidates = conn.execute(
                f"SELECT m.key, m.id, m.content FROM memories AS m"
                f" WHERE m.words @@ %s::tsquery AND {' AND '.join(where)}",
                (any_query, *params),
            ).fetchall()
        assert stats is not None and having is not None
        ranked = pg_fts.bm25(
            phrases,
            rows=int(stats[0]),
            total_tokens=int(stats[1]),
            having=[int(n) for n in having],
            candidates=[(int(k), str(i), str(c)) for k, i, c in candidates],
            limit=limit,
        )
        return [KeywordHit(key, score) for key, score in ranked]

    # ------------------------------------------------------------------ vectors

    def iter_vectors(self, *, batch_size: int = 10000) -> Iterator[builtins.list[VectorRow]]:
        """Key-ordered batches, each its own query (keyset on key)."""
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        last = -1
        while True:
            rows = self._all(
                f"SELECT {_VECTOR_COLUMNS} FROM memories WHERE key > %s ORDER BY key LIMIT %s",
                (last, batch_size),
            )
            if not rows:
                return
            yield _vector_rows(rows)
            last = rows[-1][0]

    def vectors_by_keys(self, keys: Sequence[int]) -> builtins.list[VectorRow]:
        if not keys:
            return []
        rows = self._all(
            f"SELECT {_VECTOR_COLUMNS} FROM memories WHERE key = ANY(%s) ORDER BY key",
            ([int(k) for k in keys],),
        )
        return _vector_rows(rows)

    # ------------------------------------------------------------------ expiry

    def expired(self, now_us: int, *, limit: int) -> builtins.list[Memory]:
        columns = codec.select_list("m", with_embedding=False)
        rows = self._all(
            f"SELECT {columns} FROM memories AS m WHERE m.expire_time_us IS NOT NULL AND m.expire_time_us"
            " <= %s"
            " ORDER BY m.expire_time_us, m.key LIMIT %s",
            (now_us, limit),
        )
        return [codec.row_to_memory(row) for row in rows]

    def expiring_keys(self, now_us: int) -> builtins.list[int]:
        rows = self._all(
            "SELECT key FROM memories WHERE expire_time_us IS NOT NULL AND expire_time_us <= %s ORDER BY key",
            (now_us,),
        )
        return [row[0] for row in rows]

    # ------------------------------------------------------------------ counts

    def tenant_counts(self) -> builtins.list[TenantCountRow]:
        rows = self._all(
            "SELECT tenant, count(*), coalesce(sum(octet_length(content)), 0) FROM memories"
            " GROUP BY tenant ORDER BY tenant"
        )
        return [TenantCountRow(tenant, int(count), int(size)) for tenant, count, size in rows]

    def scope_counts(self, tenant: str, *, scope: Scope, limit: int) -> builtins.list[ScopeCountRow]:
        where, params = scope_where(scope)
        rows = self._all(
            "SELECT user_id, agent_id, run_id, count(*) AS n FROM memories AS m"
            f" WHERE {' AND '.join(['m.tenant = %s', *where])} GROUP BY user_id, agent_id, run_id"
            " ORDER BY n DESC, user_id, agent_id, run_id LIMIT %s",
            (tenant, *params, limit),
        )
        return [ScopeCountRow(tenant, Scope(u, a, r), int(n)) for u, a, r, n in rows]

    def count(self, tenant: str | None = None) -> int:
        if tenant is None:
            row = self._one("SELECT count(*) FROM memories")
        else:
            row = self._one("SELECT count(*) FROM memories WHERE tenant = %s", (tenant,))
        assert row is not None
        return int(row[0])


def scope_where(scope: Scope) -> tuple[builtins.list[str], builtins.list[object]]:
    """WHERE terms (alias m) for the non-empty fields of `scope`."""
    where: builtins.list[str] = []
    params: builtins.list[object] = []
    for column, value in (("user_id", scope.user_id), ("agent_id", scope.agent_id), ("run_id", scope.run_id)):
        if value:
            where.append(f"m.{column} = %s")
            params.append(value)
    return where, params


def live_where(
    tenant: str, scope: Scope, filter: Expr | None, now_us: int
) -> tuple[builtins.list[str], builtins.list[object]]:
    """The WHERE terms (and parameters) of the live memories of a tenant's
    scope that match `filter` at `now_us`; alias `m`."""
    where = ["m.tenant = %s", "(m.expire_time_us IS NULL OR m.expire_time_us > %s)"]
    params: builtins.list[object] = [tenant, now_us]
    scope_sql, scope_params = scope_where(scope)
    where += scope_sql
    params += scope_params
    if filter is not None:
        sql, filter_params = compile_filter(filter, alias="m")
        where.append(sql)
        params.extend(filter_params)
    return where, params


def _keyset(terms: Sequence[OrderTerm], after: Sequence[object]) -> tuple[str, builtins.list[object]]:
    """Rows strictly after `after` in the order of `terms` (as sqlite_reads._keyset)."""
    columns = [f"m.{_ORDER_COLUMNS[t.field]}" for t in terms]
    if len({t.descending for t in terms}) == 1:
        op = "<" if terms[0].descending else ">"
        return f"(({', '.join(columns)}) {op} ({', '.join('%s' for _ in columns)}))", list(after)
    first_op = "<=" if terms[0].descending else ">="
    clauses: builtins.list[str] = []
    params: builtins.list[object] = [after[0]]
    for i, term in enumerate(terms):
        parts = [f"{columns[j]} = %s" for j in range(i)]
        parts.append(f"{columns[i]} {'<' if term.descending else '>'} %s")
        params.extend([*after[:i], after[i]])
        clauses.append("(" + " AND ".join(parts) + ")")
    return f"({columns[0]} {first_op} %s AND ({' OR '.join(clauses)}))", params
