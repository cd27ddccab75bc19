"""SqliteUpkeep: retention, idempotency upkeep and export of the SQLite store.

The periodic upkeep and retention (service/lifecycle.py, run by runtime.py)
purge old idempotency records, write the noted retrieval times for retention
by last use, and pick retention victims; ExportMemories streams from one
consistent snapshot on a connection of its own.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from mnemo_server.filters import Expr
from mnemo_server.models import Memory, Scope
from mnemo_server.store import sqlite_codec as codec
from mnemo_server.store.sqlite_connections import SqliteConnections
from mnemo_server.store.sqlite_reads import live_where


class SqliteUpkeep(SqliteConnections):
    # ------------------------------------------------------------------ lifecycle upkeep

    def purge_idempotency(self, *, before_us: int) -> int:
        with self._writing() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                removed = conn.execute(
                    "DELETE FROM idempotency WHERE create_time_us < ?", (before_us,)
                ).rowcount
                conn.execute(
                    "DELETE FROM idempotency_refs WHERE NOT EXISTS (SELECT 1 FROM idempotency AS i"
                    " WHERE i.tenant = idempotency_refs.tenant"
                    " AND i.request_id = idempotency_refs.request_id)"
                )
                conn.execute("COMMIT")
                return int(removed)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def touch_retrieved(self, keys: Sequence[int], now_us: int) -> None:
        if not keys:
            return
        with self._writing() as conn:
            conn.execute(
                "UPDATE memories SET last_retrieve_time_us = ? WHERE key IN (SELECT value FROM json_each(?))",
                (now_us, codec.dumps([int(k) for k in keys])),
            )

    def retention_victims(
        self,
        *,
        tenant: str | None,
        scope: Scope,
        created_before_us: int | None,
        max_count: int,
        by_last_retrieval: bool,
        limit: int,
    ) -> builtins.list[Memory]:
        where = ["m.pinned = 0"]
        params: list[object] = []
        if tenant is not None:
            where.append("m.tenant = ?")
            params.append(tenant)
        for column, value in (
            ("user_id", scope.user_id),
            ("agent_id", scope.agent_id),
            ("run_id", scope.run_id),
        ):
            if value:
                where.append(f"m.{column} = ?")
                params.append(value)
        conditions = []
        if created_before_us is not None:
            conditions.append("m.create_time_us < ?")
            params.append(created_before_us)
        recency = (
            "coalesce(m.last_retrieve_time_us, m.create_time_us) DESC, m.key DESC"
            if by_last_retrieval
            else "m.create_time_us DESC, m.key DESC"
        )
        rank = (
            f"row_number() OVER (PARTITION BY m.tenant, m.user_id, m.agent_id, m.run_id ORDER BY {recency})"
        )
        if max_count > 0:
            conditions.append("rank > ?")
            params.append(max_count)
        if not conditions:
            return []
        columns = codec.select_list("m", with_embedding=False)
        sql = (
            f"SELECT * FROM (SELECT {columns}, {rank} AS rank FROM memories AS m"
            f" WHERE {' AND '.join(where)}) AS m WHERE {' OR '.join(conditions)} LIMIT ?"
        )
        rows = self._reader().execute(sql, (*params, limit)).fetchall()
        return [codec.row_to_memory(row[:-1]) for row in rows]

    def export_snapshot(
        self,
        tenant: str,
        *,
        scope: Scope,
        filter: Expr | None,
        now_us: int,
        with_embedding: bool,
        batch_size: int = 500,
    ) -> AbstractContextManager[tuple[int, Iterator[builtins.list[Memory]]]]:
        return self._export_snapshot(tenant, scope, filter, now_us, with_embedding, batch_size)

    @contextmanager
    def _export_snapshot(
        self,
        tenant: str,
        scope: Scope,
        filter: Expr | None,
        now_us: int,
        with_embedding: bool,
        batch_size: int,
    ) -> Iterator[tuple[int, Iterator[builtins.list[Memory]]]]:
        # Its own connection in one read transaction: WAL gives it a stable
        # snapshot however long the export streams, and the batches may be
        # fetched from different worker threads.
        conn = self._connect_again()
        # A client that cancels the export makes the servicer leave the
        # snapshot while a worker thread may still be fetching a batch:
        # closing a connection under a running statement crashes the process
        # (SIGSEGV in libsqlite3), so the close waits for the fetch.
        in_use = threading.Lock()
        try:
            conn.execute("BEGIN")
            revision = int(conn.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()[0])
            where, params = live_where(tenant, scope, filter, now_us)
            columns = codec.select_list("m", with_embedding=with_embedding)

            def batches() -> Iterator[builtins.list[Memory]]:
                last = -1
                while True:
                    with in_use:
                        rows = conn.execute(
                            f"SELECT {columns}, m.key FROM memories AS m"
                            f" WHERE {' AND '.join(where)} AND m.key > ? ORDER BY m.key LIMIT ?",
                            (*params, last, batch_size),
                        ).fetchall()
                    if not rows:
                        return
                    last = rows[-1][-1]
                    yield [codec.row_to_memory(row[:-1]) for row in rows]

            yield revision, batches()
        finally:
            with in_use:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.close()
