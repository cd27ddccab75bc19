"""SqliteReads: the record reads of the SQLite store.

Point reads, listing (keyset pages), filter and keyword matches, vectors for
the index, expiry and counts; each runs on the calling thread's reader
connection (sqlite_connections.py), so reads proceed during a write and see
the last commit.

Listing order: rows sort by the order terms, then by id in the direction of
the last term (store/order.py), which makes the sort key unique; pages
continue strictly after the previous page's key, so every row is returned
exactly once however many rows share a time.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Sequence
from typing import Any, Final

import numpy as np

from mnemo_server.filters import Expr
from mnemo_server.models import Memory, Scope
from mnemo_server.store import sqlite_codec as codec
from mnemo_server.store import sqlite_fts
from mnemo_server.store.base import (
    IdempotentRecord,
    KeywordHit,
    OrderTerm,
    ScopeCountRow,
    TenantCountRow,
    VectorRow,
)
from mnemo_server.store.order import sort_terms
from mnemo_server.store.sqlite_connections import SqliteConnections
from mnemo_server.store.sqlite_filter import compile_filter

_ORDER_COLUMNS: Final = {
    "create_time": "create_time_us",
    "update_time": "update_time_us",
    "id": "id",
}


class SqliteReads(SqliteConnections):
    # ------------------------------------------------------------------ point reads

    def get(self, tenant: str, memory_id: str, *, with_embedding: bool = False) -> Memory | None:
        columns = codec.select_list("m", with_embedding=with_embedding)
        row = (
            self._reader()
            .execute(
                f"SELECT {columns} FROM memories AS m WHERE m.tenant = ? AND m.id = ?",
                (tenant, memory_id),
            )
            .fetchone()
        )
        return None if row is None else codec.row_to_memory(row)

    def get_idempotent(self, tenant: str, request_id: str) -> IdempotentRecord | None:
        row = (
            self._reader()
            .execute(
                "SELECT fingerprint, response, create_time_us FROM idempotency"
                " WHERE tenant = ? AND request_id = ?",
                (tenant, request_id),
            )
            .fetchone()
        )
        if row is None:
            return None
        return IdempotentRecord(row[0], codec.outcomes_from_json(row[1]), row[2])

    def get_many(self, tenant: str, memory_ids: Sequence[str]) -> builtins.list[Memory]:
        if not memory_ids:
            return []
        columns = codec.select_list("m", with_embedding=False)
        rows = self._reader().execute(
            f"SELECT {columns} FROM memories AS m"
            " WHERE m.tenant = ? AND m.id IN (SELECT value FROM json_each(?))",
            (tenant, codec.dumps(list(memory_ids))),
        )
        return [codec.row_to_memory(row) for row in rows]

    def get_by_keys(self, keys: Sequence[int], *, with_embedding: bool = False) -> dict[int, Memory]:
        if not keys:
            return {}
        columns = codec.select_list("m", with_embedding=with_embedding)
        # One JSON array parameter instead of N placeholders: no limit on N,
        # and one cached statement for every batch size.
        rows = (
            self._reader()
            .execute(
                f"SELECT {columns} FROM memories AS m WHERE m.key IN (SELECT value FROM json_each(?))",
                (codec.dumps([int(k) for k in keys]),),
            )
            .fetchall()
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
        """See RecordStore.list; `after` is store.order.sort_key() of the
        previous page's last row: its order values, then its id."""
        if limit <= 0:
            return []
        terms = sort_terms(order)
        if after is not None and len(after) != len(terms):
            raise ValueError(f"after has {len(after)} values; the sort key has {len(terms)}")
        if any(t.field == "id" for t in order):
            # The appended id only repeats an order term; leave it out of the SQL.
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
        sql = f"SELECT {columns} FROM memories AS m WHERE {' AND '.join(where)} ORDER BY {order_sql} LIMIT ?"
        rows = self._reader().execute(sql, (*params, limit)).fetchall()
        return [codec.row_to_memory(row) for row in rows]

    def match_keys(
        self, tenant: str, *, scope: Scope, filter: Expr | None, now_us: int
    ) -> builtins.list[int]:
        where, params = live_where(tenant, scope, filter, now_us)
        sql = f"SELECT m.key FROM memories AS m WHERE {' AND '.join(where)} ORDER BY m.key"
        return [row[0] for row in self._reader().execute(sql, params)]

    def keyword_search(
        self, tenant: str, text: str, *, scope: Scope, filter: Expr | None, now_us: int, limit: int
    ) -> builtins.list[KeywordHit]:
        """See RecordStore.keyword_search and sqlite_fts.py (tokenizer, scores)."""
        match = sqlite_fts.match_expression(text)
        if match is None or limit <= 0:
            return []
        where, params = live_where(tenant, scope, filter, now_us)
        rows = self._reader().execute(sqlite_fts.search_sql(where), (match, *params, limit))
        return [KeywordHit(key, float(score)) for key, score in rows]

    def check_keyword_index(self) -> None:
        """Raises sqlite3.DatabaseError when the keyword index differs from
        the memories (a consistency check for tests and operators)."""
        with self._writing() as conn:
            sqlite_fts.check(conn)

    # ------------------------------------------------------------------ vectors

    def iter_vectors(self, *, batch_size: int = 10000) -> Iterator[builtins.list[VectorRow]]:
        """Key-ordered batches, each its own query (keyset on key): a rebuild
        of a large store never holds one read snapshot open, which would stop
        WAL checkpoints for its whole duration. Pair it with changes_since()
        from a revision read before the first batch."""
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        last = -1
        while True:
            rows = (
                self._reader()
                .execute(
                    "SELECT key, tenant, user_id, agent_id, run_id, embedding FROM memories"
                    " WHERE key > ? ORDER BY key LIMIT ?",
                    (last, batch_size),
                )
                .fetchall()
            )
            if not rows:
                return
            yield _vector_rows(rows)
            last = rows[-1][0]

    def vectors_by_keys(self, keys: Sequence[int]) -> builtins.list[VectorRow]:
        if not keys:
            return []
        rows = (
            self._reader()
            .execute(
                "SELECT key, tenant, user_id, agent_id, run_id, embedding FROM memories"
                " WHERE key IN (SELECT value FROM json_each(?)) ORDER BY key",
                (codec.dumps([int(k) for k in keys]),),
            )
            .fetchall()
        )
        return _vector_rows(rows)

    # ------------------------------------------------------------------ expiry

    def expired(self, now_us: int, *, limit: int) -> builtins.list[Memory]:
        columns = codec.select_list("m", with_embedding=False)
        rows = (
            self._reader()
            .execute(
                f"SELECT {columns} FROM memories AS m"
                " WHERE m.expire_time_us IS NOT NULL AND m.expire_time_us <= ?"
                " ORDER BY m.expire_time_us, m.key LIMIT ?",
                (now_us, limit),
            )
            .fetchall()
        )
        return [codec.row_to_memory(row) for row in rows]

    def expiring_keys(self, now_us: int) -> builtins.list[int]:
        rows = self._reader().execute(
            "SELECT key FROM memories WHERE expire_time_us IS NOT NULL AND expire_time_us <= ? ORDER BY key",
            (now_us,),
        )
        return [row[0] for row in rows]

    # ------------------------------------------------------------------ counts

    def tenant_counts(self) -> builtins.list[TenantCountRow]:
        """Every stored memory, expired-but-unswept ones included; bytes are
        the UTF-8 length of the content."""
        rows = self._reader().execute(
            "SELECT tenant, count(*), coalesce(sum(length(CAST(content AS BLOB))), 0)"
            " FROM memories GROUP BY tenant ORDER BY tenant"
        )
        return [TenantCountRow(tenant, count, size) for tenant, count, size in rows]

    def scope_counts(self, tenant: str, *, scope: Scope, limit: int) -> builtins.list[ScopeCountRow]:
        where = ["tenant = ?"]
        params: list[object] = [tenant]
        for column, value in (
            ("user_id", scope.user_id),
            ("agent_id", scope.agent_id),
            ("run_id", scope.run_id),
        ):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        rows = self._reader().execute(
            "SELECT user_id, agent_id, run_id, count(*) AS n FROM memories"
            f" WHERE {' AND '.join(where)} GROUP BY user_id, agent_id, run_id"
            " ORDER BY n DESC, user_id, agent_id, run_id LIMIT ?",
            (*params, limit),
        )
        return [ScopeCountRow(tenant, Scope(u, a, r), n) for u, a, r, n in rows]

    def count(self, tenant: str | None = None) -> int:
        if tenant is None:
            row = self._reader().execute("SELECT count(*) FROM memories").fetchone()
        else:
            row = (
                self._reader().execute("SELECT count(*) FROM memories WHERE tenant = ?", (tenant,)).fetchone()
            )
        return int(row[0])


def live_where(tenant: str, scope: Scope, filter: Expr | None, now_us: int) -> tuple[list[str], list[object]]:
    """The WHERE terms (and their parameters) of the live memories of a
    tenant's scope that match `filter` at `now_us`; alias `m`."""
    where = ["m.tenant = ?", "(m.expire_time_us IS NULL OR m.expire_time_us > ?)"]
    params: list[object] = [tenant, now_us]
    for column, value in (
        ("user_id", scope.user_id),
        ("agent_id", scope.agent_id),
        ("run_id", scope.run_id),
    ):
        if value:
            where.append(f"m.{column} = ?")
            params.append(value)
    if filter is not None:
        sql, filter_params = compile_filter(filter, alias="m")
        where.append(sql)
        params.extend(filter_params)
    return where, params


def _keyset(terms: Sequence[OrderTerm], after: Sequence[object]) -> tuple[str, list[object]]:
    """Rows strictly after `after` in the order of `terms`."""
    columns = [f"m.{_ORDER_COLUMNS[t.field]}" for t in terms]
    if len({t.descending for t in terms}) == 1:
        # One direction: a row value comparison, which SQLite can turn into
        # an index range.
        op = "<" if terms[0].descending else ">"
        return f"(({', '.join(columns)}) {op} ({', '.join('?' for _ in columns)}))", list(after)
    # Mixed directions: (a > ?) OR (a = ? AND b < ?) OR ..., led by a bound on
    # the first column that the planner can use as a range.
    first_op = "<=" if terms[0].descending else ">="
    clauses: list[str] = []
    params: list[object] = [after[0]]
    for i, term in enumerate(terms):
        parts = [f"{columns[j]} = ?" for j in range(i)]
        parts.append(f"{columns[i]} {'<' if term.descending else '>'} ?")
        params.extend([*after[:i], after[i]])
        clauses.append("(" + " AND ".join(parts) + ")")
    return f"({columns[0]} {first_op} ? AND ({' OR '.join(clauses)}))", params


def _vector_rows(rows: Sequence[Any]) -> list[VectorRow]:
    blobs = [row[5] for row in rows]
    sizes = {len(blob) for blob in blobs}
    if len(sizes) == 1 and 0 not in sizes:
        # One buffer for the whole batch: one frombuffer instead of one per row.
        matrix = np.frombuffer(b"".join(blobs), dtype=np.dtype("<f4")).reshape(len(rows), -1)
        vectors: Sequence[Any] = list(matrix)
    else:
        vectors = [codec.vector_from_blob(blob) for blob in blobs]
    scopes: dict[tuple[str, str, str], Scope] = {}
    out: list[VectorRow] = []
    for row, vector in zip(rows, vectors, strict=True):
        scope_key = (row[2], row[3], row[4])
        scope = scopes.get(scope_key)
        if scope is None:
            scope = scopes[scope_key] = Scope(*scope_key)
        out.append(VectorRow(row[0], row[1], scope, vector))
    return out
