"""The write transaction of the SQLite store.

One instance lives inside one `SqliteStore.write()` block, on the single
writer connection, in a BEGIN IMMEDIATE transaction the store commits or
rolls back. The revision counter is kept in memory and written to `meta` once
at commit, so a 1,000-row batch costs one counter update, not 1,000; a
rolled-back transaction never wrote it, so no revision is consumed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from mnemo_server import errors
from mnemo_server.filters import Expr
from mnemo_server.models import ChangeType, Memory, Scope, now_us
from mnemo_server.store import sqlite_codec as codec
from mnemo_server.store.base import IdempotentRecord, StoredOutcome, WriteTxn
from mnemo_server.store.sqlite_filter import compile_filter

_INSERT_SQL = (
    f"INSERT INTO memories ({', '.join(codec.WRITE_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in codec.WRITE_COLUMNS)})"
)
_UPDATE_SQL = (
    f"UPDATE memories SET {', '.join(f'{c} = ?' for c in codec.WRITE_COLUMNS)} "
    "WHERE key = ? AND tenant = ? AND id = ?"
)
_DELETE_SQL = f"DELETE FROM memories WHERE tenant = ? AND id = ? RETURNING {', '.join(codec.COLUMNS)}"
_HISTORY_SQL = (
    "INSERT INTO history (revision, tenant, memory_id, version, change_type, time_us, api_key_id,"
    " before, after, changed_fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_REVLOG_SQL = (
    "INSERT INTO revlog (revision, tenant, memory_id, key, change_type,"
    " user_id, agent_id, run_id, time_us)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_WITH_EMBEDDING = codec.select_list("m", with_embedding=True)


class SqliteWriteTxn(WriteTxn):
    def __init__(self, conn: sqlite3.Connection, revision: int) -> None:
        self._conn = conn
        # One cursor for the whole transaction: sqlite3 caches the prepared
        # statements on the connection, so each row costs only its steps.
        self._cur = conn.cursor()
        self._start = revision
        self._revision = revision
        self._savepoints = 0
        self._open = True

    @property
    def revision(self) -> int:
        """The last revision taken (the one to persist at commit)."""
        return self._revision

    def close(self) -> None:
        """Called by the store when the block ends; later use is a bug."""
        self._open = False
        self._cur.close()

    def _check_open(self) -> None:
        if not self._open:
            raise RuntimeError("this write transaction has ended")

    def next_revision(self) -> int:
        self._check_open()
        self._revision += 1
        return self._revision

    def get(self, tenant: str, memory_id: str) -> Memory | None:
        self._check_open()
        row = self._cur.execute(
            f"SELECT {_SELECT_WITH_EMBEDDING} FROM memories AS m WHERE m.tenant = ? AND m.id = ?",
            (tenant, memory_id),
        ).fetchone()
        return None if row is None else codec.row_to_memory(row)

    def find_by_content_hash(self, tenant: str, scope: Scope, content_hash: str) -> Memory | None:
        """Prefers live memories: deduplicating into one that has expired but
        not yet been swept would make the new write vanish with it."""
        self._check_open()
        row = self._cur.execute(
            f"SELECT {_SELECT_WITH_EMBEDDING} FROM memories AS m"
            " WHERE m.tenant = ? AND m.content_hash = ?"
            " AND m.user_id = ? AND m.agent_id = ? AND m.run_id = ?"
            " ORDER BY (m.expire_time_us IS NOT NULL AND m.expire_time_us <= ?),"
            " m.create_time_us, m.key"
            " LIMIT 1",
            (tenant, content_hash, scope.user_id, scope.agent_id, scope.run_id, now_us()),
        ).fetchone()
        return None if row is None else codec.row_to_memory(row)

    def insert(self, memory: Memory, *, api_key_id: str = "") -> Memory:
        self._check_open()
        self._check_revision(memory.revision)
        fields = codec.encode_fields(memory)
        try:
            self._cur.execute(_INSERT_SQL, codec.write_params(memory, fields))
        except sqlite3.IntegrityError as exc:
            if "memories.tenant, memories.id" in str(exc):
                raise errors.AlreadyExistsError(
                    f"memory {memory.id!r} already exists", reason="MEMORY_ALREADY_EXISTS"
                ) from None
            raise
        key = self._cur.lastrowid
        assert key is not None
        stored = codec.with_key(memory, key)
        self._log(
            ChangeType.CREATE,
            stored,
            before_json=None,
            after_json=codec.snapshot_json(fields, key),
            changed_fields=(),
            time_us=stored.update_time_us,
            api_key_id=api_key_id,
        )
        return stored

    def update(
        self, before: Memory, after: Memory, changed_fields: Sequence[str], *, api_key_id: str = ""
    ) -> Memory:
        self._check_open()
        self._check_revision(after.revision)
        same_key = after.key in (0, before.key)
        if (after.tenant, after.id) != (before.tenant, before.id) or not same_key:
            raise ValueError("update must keep the memory's tenant, id and key")
        stored = after if after.key == before.key else codec.with_key(after, before.key)
        fields = codec.encode_fields(stored)
        self._cur.execute(
            _UPDATE_SQL,
            (*codec.write_params(stored, fields), before.key, before.tenant, before.id),
        )
        if self._cur.rowcount != 1:
            raise errors.NotFoundError(f"memory {before.id!r} does not exist", reason="MEMORY_NOT_FOUND")
        self._log(
            ChangeType.UPDATE,
            stored,
            before_json=codec.memory_to_json(before),
            after_json=codec.snapshot_json(fields, stored.key),
            changed_fields=tuple(changed_fields),
            time_us=stored.update_time_us,
            api_key_id=api_key_id,
        )
        return stored

    def delete(
        self, memory: Memory, *, change_type: ChangeType = ChangeType.DELETE, api_key_id: str = ""
    ) -> None:
        """History records the row as it was stored (its last revision) as
        `before`, at `memory.revision`, timed now. A delete is a change, so its
        entry takes the next version (or `memory.version` if the caller set a
        higher one): versions stay unique in a history, which pages by version."""
        self._check_open()
        self._check_revision(memory.revision)
        if change_type not in (ChangeType.DELETE, ChangeType.EXPIRE):
            raise ValueError(f"a delete is logged as DELETE or EXPIRE, not {change_type.name}")
        rows = self._cur.execute(_DELETE_SQL, (memory.tenant, memory.id)).fetchall()
        if not rows:
            raise errors.NotFoundError(f"memory {memory.id!r} does not exist", reason="MEMORY_NOT_FOUND")
        stored = codec.row_to_memory(rows[0])
        self._log(
            change_type,
            stored,
            before_json=codec.memory_to_json(stored),
            after_json=None,
            changed_fields=(),
            time_us=now_us(),
            api_key_id=api_key_id,
            revision=memory.revision,
            version=max(memory.version, stored.version + 1),
        )

    def purge_history(self, tenant: str, memories: Sequence[Memory]) -> None:
        self._check_open()
        self._cur.execute(
            "DELETE FROM history WHERE tenant = ? AND memory_id IN (SELECT value FROM json_each(?))"
            f" AND {codec.LIFE_KEY_SQL} IN (SELECT value FROM json_each(?))",
            (tenant, codec.dumps(sorted({m.id for m in memories})), codec.dumps([m.key for m in memories])),
        )

    def purge_scope_history(self, tenant: str, scope: Scope) -> list[str]:
        self._check_open()
        where = ["tenant = ?"]
        params: list[object] = [tenant]
        for column, value in (
            ("user_id", scope.user_id),
            ("agent_id", scope.agent_id),
            ("run_id", scope.run_id),
        ):
            if value:
                where.append(f"{codec.history_scope_sql(column)} = ?")
                params.append(value)
        rows = self._cur.execute(
            f"DELETE FROM history WHERE {' AND '.join(where)} RETURNING memory_id", params
        ).fetchall()
        return sorted({row[0] for row in rows})

    def get_idempotent(self, tenant: str, request_id: str) -> IdempotentRecord | None:
        self._check_open()
        row = self._cur.execute(
            "SELECT fingerprint, response, create_time_us FROM idempotency"
            " WHERE tenant = ? AND request_id = ?",
            (tenant, request_id),
        ).fetchone()
        if row is None:
            return None
        return IdempotentRecord(row[0], codec.outcomes_from_json(row[1]), row[2])

    def put_idempotent(
        self,
        tenant: str,
        request_id: str,
        *,
        fingerprint: str,
        outcomes: Sequence[StoredOutcome],
        now_us: int,
    ) -> None:
        self._check_open()
        response = codec.outcomes_to_json(outcomes)
        memory_ids = [o.memory.id for o in outcomes if o.memory is not None]
        # REPLACE: a record older than the window may still be there until
        # the sweeper purges it; the new write takes the key over.
        self._cur.execute(
            "INSERT OR REPLACE INTO idempotency (tenant, request_id, fingerprint, response,"
            " create_time_us) VALUES (?, ?, ?, ?, ?)",
            (tenant, request_id, fingerprint, response, now_us),
        )
        self._cur.executemany(
            "INSERT OR IGNORE INTO idempotency_refs (tenant, memory_id, request_id) VALUES (?, ?, ?)",
            [(tenant, memory_id, request_id) for memory_id in dict.fromkeys(memory_ids)],
        )

    def linking_to(self, tenant: str, target_ids: Sequence[str]) -> list[Memory]:
        self._check_open()
        rows = self._cur.execute(
            f"SELECT {_SELECT_WITH_EMBEDDING} FROM memories AS m"
            " WHERE m.tenant = ? AND m.links != '[]' AND EXISTS ("
            "   SELECT 1 FROM json_each(m.links) AS l"
            "   WHERE json_extract(l.value, '$[0]') IN (SELECT value FROM json_each(?)))"
            " ORDER BY m.key",
            (tenant, codec.dumps(list(target_ids))),
        ).fetchall()
        return [codec.row_to_memory(row) for row in rows]

    def select_for_forget(
        self, tenant: str, *, scope: Scope, filter: Expr | None, limit: int
    ) -> list[Memory]:
        self._check_open()
        where = ["m.tenant = ?"]
        params: list[object] = [tenant]
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
        rows = self._cur.execute(
            f"SELECT {_SELECT_WITH_EMBEDDING} FROM memories AS m WHERE {' AND '.join(where)}"
            " ORDER BY m.key LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [codec.row_to_memory(row) for row in rows]

    def purge_idempotency_for(self, tenant: str, memory_ids: Sequence[str]) -> None:
        self._check_open()
        ids = codec.dumps(list(memory_ids))
        self._cur.execute(
            "DELETE FROM idempotency WHERE tenant = ? AND request_id IN ("
            " SELECT request_id FROM idempotency_refs"
            " WHERE tenant = ? AND memory_id IN (SELECT value FROM json_each(?)))",
            (tenant, tenant, ids),
        )
        self._cur.execute(
            "DELETE FROM idempotency_refs WHERE tenant = ? AND memory_id IN (SELECT value FROM json_each(?))",
            (tenant, ids),
        )

    def savepoint(self) -> AbstractContextManager[None]:
        self._check_open()
        return self._savepoint()

    def usage(self, tenant: str) -> tuple[int, int]:
        self._check_open()
        row = self._cur.execute(
            "SELECT memory_count, content_bytes FROM tenant_usage WHERE tenant = ?", (tenant,)
        ).fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        self._savepoints += 1
        name = f"sp{self._savepoints}"  # internal counter, never user text
        self._cur.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            # Revisions taken inside stay taken: the counter only grows, so a
            # revision can never name two different changes.
            self._cur.execute(f"ROLLBACK TO {name}")
            self._cur.execute(f"RELEASE {name}")
            raise
        self._cur.execute(f"RELEASE {name}")

    def _check_revision(self, revision: int) -> None:
        if not self._start < revision <= self._revision:
            # A revision not taken here could repeat or run ahead of the
            # counter, and the change feed would skip or reorder changes.
            raise ValueError(f"revision {revision} was not taken from this transaction's next_revision()")

    def _log(
        self,
        change_type: ChangeType,
        subject: Memory,
        *,
        before_json: str | None,
        after_json: str | None,
        changed_fields: tuple[str, ...],
        time_us: int,
        api_key_id: str,
        revision: int | None = None,
        version: int | None = None,
    ) -> None:
        """Writes the history entry and the revision log entry of a change."""
        revision = subject.revision if revision is None else revision
        version = subject.version if version is None else version
        self._cur.execute(
            _HISTORY_SQL,
            (
                revision,
                subject.tenant,
                subject.id,
                version,
                int(change_type),
                time_us,
                api_key_id,
                before_json,
                after_json,
                codec.dumps(list(changed_fields)),
            ),
        )
        scope = subject.scope
        self._cur.execute(
            _REVLOG_SQL,
            (
                revision,
                subject.tenant,
                subject.id,
                subject.key,
                int(change_type),
                scope.user_id,
                scope.agent_id,
                scope.run_id,
                time_us,
            ),
        )
