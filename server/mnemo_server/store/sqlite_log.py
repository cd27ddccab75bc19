"""SqliteLog: the revision log of the SQLite store.

Every change has a row in `revlog` (one counter, in commit order) and, with
its before/after images, in `history`. The log feeds index recovery
(changes_since), WatchMemories (feed_since) and GetMemoryHistory (history).
compact_log removes `revlog` rows older than a time and no newer than a
revision (the index snapshot's), and records how far it went; it leaves
`history` alone.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from typing import Any

from mnemo_server.models import Change, ChangeType, Scope, VersionRecord
from mnemo_server.store import sqlite_codec as codec
from mnemo_server.store.base import FeedEntry
from mnemo_server.store.sqlite_connections import SqliteConnections


class SqliteLog(SqliteConnections):
    # ------------------------------------------------------------------ revision log

    def changes_since(self, revision: int, *, limit: int) -> builtins.list[Change]:
        rows = (
            self._reader()
            .execute(
                "SELECT revision, tenant, memory_id, key, change_type,"
                " user_id, agent_id, run_id, time_us"
                " FROM revlog WHERE revision > ? ORDER BY revision LIMIT ?",
                (revision, limit),
            )
            .fetchall()
        )
        return [codec.row_to_change(row) for row in rows]

    def current_revision(self) -> int:
        row = self._reader().execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()
        return int(row[0])

    def oldest_revision(self) -> int:
        row = self._reader().execute("SELECT min(revision) FROM revlog").fetchone()
        return int(row[0] or 0)

    def history(
        self, tenant: str, memory_id: str, *, before_version: int | None, limit: int
    ) -> builtins.list[VersionRecord]:
        """The id's newest life only, newest first by (version, revision).
        An id deleted and created again (perhaps for another user) starts a
        new life with a new key: the older lives' entries are never shown
        with it, so a history holds exactly one memory's own versions."""
        sql = (
            "SELECT memory_id, version, revision, change_type, time_us, api_key_id,"
            " before, after, changed_fields"
            " FROM history WHERE tenant = ? AND memory_id = ?"
            f" AND {codec.LIFE_KEY_SQL} = (SELECT {codec.LIFE_KEY_SQL} FROM history"
            " WHERE tenant = ? AND memory_id = ? ORDER BY revision DESC LIMIT 1)"
        )
        params: list[object] = [tenant, memory_id, tenant, memory_id]
        if before_version is not None:
            sql += " AND version < ?"
            params.append(before_version)
        sql += " ORDER BY version DESC, revision DESC LIMIT ?"
        params.append(limit)
        return [_version_record(row) for row in self._reader().execute(sql, params)]

    # ------------------------------------------------------------------ change feed

    def feed_since(self, revision: int, *, tenant: str, scope: Scope, limit: int) -> builtins.list[FeedEntry]:
        where = ["r.revision > ?", "r.tenant = ?"]
        params: list[object] = [revision, tenant]
        for column, value in (
            ("user_id", scope.user_id),
            ("agent_id", scope.agent_id),
            ("run_id", scope.run_id),
        ):
            if value:
                where.append(f"r.{column} = ?")
                params.append(value)
        rows = self._reader().execute(
            "SELECT r.revision, r.tenant, r.memory_id, r.key, r.change_type,"
            " r.user_id, r.agent_id, r.run_id, r.time_us, h.after"
            " FROM revlog AS r LEFT JOIN history AS h ON h.revision = r.revision"
            f" WHERE {' AND '.join(where)} ORDER BY r.revision LIMIT ?",
            (*params, limit),
        )
        return [FeedEntry(codec.row_to_change(row[:9]), codec.memory_from_json(row[9])) for row in rows]

    def compacted_revision(self) -> int:
        row = self._reader().execute("SELECT value FROM meta WHERE name = 'compacted_revision'").fetchone()
        return 0 if row is None else int(row[0])

    def compact_log(self, *, before_us: int, max_revision: int) -> int:
        with self._writing() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT max(revision) FROM revlog WHERE time_us < ? AND revision <= ?",
                    (before_us, max_revision),
                ).fetchone()
                through = row[0]
                removed = 0
                if through is not None:
                    removed = conn.execute("DELETE FROM revlog WHERE revision <= ?", (through,)).rowcount
                    conn.execute(
                        "INSERT INTO meta (name, value) VALUES ('compacted_revision', ?)"
                        " ON CONFLICT (name) DO UPDATE SET value ="
                        " max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                        (str(through),),
                    )
                conn.execute("COMMIT")
                return removed
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise


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
