"""PgLog: the revision log, history and upkeep of the PostgreSQL store.

The revision log (`revlog`, one row per change, numbered in commit order:
see pg.py) feeds index recovery (changes_since) and WatchMemories
(feed_since); `history` feeds GetMemoryHistory. compact_log and
purge_idempotency are the periodic upkeep; retention picks its victims here
too, and ExportMemories streams from one REPEATABLE READ snapshot.
"""

from __future__ import annotations

import builtins
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from mnemo_server.filters import Expr
from mnemo_server.models import Change, ChangeType, Memory, Scope, VersionRecord
from mnemo_server.store import sqlite_codec as codec
from mnemo_server.store.base import FeedEntry
from mnemo_server.store.pg_reads import PgReads, live_where, scope_where

_CHANGE_COLUMNS = "revision, tenant, memory_id, key, change_type, user_id, agent_id, run_id, time_us"


class PgLog(PgReads):
    # ------------------------------------------------------------------ revision log

    def changes_since(self, revision: int, *, limit: int) -> builtins.list[Change]:
        rows = self._all(
            f"SELECT {_CHANGE_COLUMNS} FROM revlog WHERE revision > %s ORDER BY revision LIMIT %s",
            (revision, limit),
        )
        return [codec.row_to_change(row) for row in rows]

    def current_revision(self) -> int:
        row = self._one("SELECT value FROM revision_counter")
        assert row is not None
        return int(row[0])

    def oldest_revision(self) -> int:
        row = self._one("SELECT min(revision) FROM revlog")
        return int(row[0] or 0) if row else 0

    def history(
        self, tenant: str, memory_id: str, *, before_version: int | None, limit: int
    ) -> builtins.list[VersionRecord]:
        """The id's newest life only (its newest entry's life key), newest first."""
        sql = (
            "SELECT memory_id, version, revision, change_type, time_us, api_key_id, before, after,"
            " changed_fields"
            " FROM history WHERE tenant = %s AND memory_id = %s AND life_key = (SELECT life_key FROM history"
            " WHERE tenant = %s AND memory_id = %s ORDER BY revision DESC LIMIT 1)"
        )
        params: list[object] = [tenant, memory_id, tenant, memory_id]
        if before_version is not None:
            sql += " AND version < %s"
            params.append(before_version)
        sql += " ORDER BY version DESC, revision DESC LIMIT %s"
        params.append(limit)
        return [_version_record(row) for row in self._all(sql, params)]

    def feed_since(self, revision: int, *, tenant: str, scope: Scope, limit: int) -> builtins.list[FeedEntry]:
        where, params = scope_where(scope)
        rows = self._all(
            "SELECT m.revision, m.tenant, m.memory_id, m.key, m.change_type,"
            " m.user_id, m.agent_id, m.run_id, m.time_us, h.after"
            " FROM revlog AS m LEFT JOIN history AS h ON h.revision = m.revision"
            f" WHERE {' AND '.join(['m.revision > %s', 'm.tenant = %s', *where])}"
            " ORDER BY m.revision LIMIT %s",
            (revision, tenant, *params, limit),
        )
        return [FeedEntry(codec.row_to_change(row[:9]), codec.memory_from_json(row[9])) for row in rows]

    def compacted_revision(self) -> int:
        row = self._one("SELECT value FROM meta WHERE name = 'compacted_revision'")
        return 0 if row is None else int(row[0])

    def compact_log(self, *, before_us: int, max_revision: int) -> int:
        with self._conn() as conn, conn.transaction():
            row = conn.execute(
                "SELECT max(revision) FROM revlog WHERE time_us < %s AND revision <= %s",
                (before_us, max_revision),
            ).fetchone()
            through = None if row is None else row[0]
            if through is None:
                return 0
            removed = conn.execute("DELETE FROM revlog WHERE revision <= %s", (through,)).rowcount
            conn.execute(
                "INSERT INTO meta (name, value) VALUES ('compacted_revision', %s) ON CONFLICT (name)"
                " DO UPDATE SET value = greatest(meta.value::bigint, excluded.value::bigint)::text",
                (str(through),),
            )
            return int(removed)

    # ------------------------------------------------------------------ upkeep

    def purge_idempotency(self, *, before_us: int) -> int:
        with self._conn() as conn, conn.transaction():
            removed = conn.execute("DELETE FROM idempotency WHERE create_time_us < %s", (before_us,)).rowcount
            conn.execute(
                "DELETE FROM idempotency_refs AS r WHERE NOT EXISTS (SELECT 1 FROM idempotency AS i"
                " WHERE i.tenant = r.tenant AND i.request_id = r.request_id)"
            )
            return int(removed)

    def touch_retrieved(self, keys: Sequence[int], now_us: int) -> None:
        if keys:
            self._exec(
                "UPDATE memories SET last_retrieve_time_us = %s WHERE key = ANY(%s)",
                (now_us, [int(k) for k in keys]),
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
        where, params = scope_where(scope)
        where.insert(0, "m.pinned = 0")
        if tenant is not None:
            where.insert(1, "m.tenant = %s")
            params.insert(0, tenant)
        conditions = []
        if created_before_us is not None:
            conditions.append("m.create_time_us < %s")
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
            conditions.append("rank > %s")
            params.append(max_count)
        if not conditions:
            return []
        columns = codec.select_list("m", with_embedding=False)
        sql = (
            f"SELECT * FROM (SELECT {columns}, {rank} AS rank FROM memories AS m"
            f" WHERE {' AND '.join(where)}) AS m WHERE {' OR '.join(conditions)} LIMIT %s"
        )
        return [codec.row_to_memory(row[:-1]) for row in self._all(sql, (*params, limit))]

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
        # One connection held for the export, in one REPEATABLE READ
        # transaction: every batch reads the same snapshot, whichever worker
        # thread fetches it (the lock keeps one statement at a time).
        in_use = threading.Lock()
        with self._conn() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            row = conn.execute("SELECT value FROM revision_counter").fetchone()
            assert row is not None
            where, params = live_where(tenant, scope, filter, now_us)
            columns = codec.select_list("m", with_embedding=with_embedding)

            def batches() -> Iterator[builtins.list[Memory]]:
                last = -1
                while True:
                    with in_use:
                        rows = conn.execute(
                            f"SELECT {columns} FROM memories AS m WHERE {' AND '.join(where)} AND m.key > %s"
                            " ORDER BY m.key LIMIT %s",
                            (*params, last, batch_size),
                        ).fetchall()
                    if not rows:
                        return
                    last = rows[-1][0]
                    yield [codec.row_to_memory(r) for r in rows]

            try:
                yield int(row[0]), batches()
            finally:
                in_use.acquire()
                in_use.release()


def _version_record(row: Sequence[Any]) -> VersionRecord:
    memory_id, version, revision, change_type, time_us, api_key_id, before, after, changed = row
    return VersionRecord(
        memory_id=memory_id,
        version=version,
        revision=revision,
        change_type=ChangeType(change_type),
        time_us=time_us,
        api_key_id=api_key_id,
        before=codec.memory_from_json(before),
        after=codec.memory_from_json(after),
        changed_fields=tuple(json.loads(changed)),
    )
