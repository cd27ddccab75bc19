"""The write transaction of the PostgreSQL store.

One instance lives inside one `PostgresStore.write()` block, on one pooled
connection, in a transaction that began by locking the revision counter row
(pg.py says why that puts revisions in commit order). Revisions are taken
in memory from the value read under that lock and written back once at
commit, as in sqlite_txn.py. Rows are encoded by sqlite_codec.py (the same
JSON text and float32 bytes), plus the keyword index columns (pg_fts.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg

from mnemo_server import errors
from mnemo_server.filters import Expr
from mnemo_server.models import ChangeType, Memory, Scope, now_us
from mnemo_server.store import pg_fts
from mnemo_server.store import sqlite_codec as codec
from mnemo_server.store.base import IdempotentRecord, StoredOutcome, WriteTxn
from mnemo_server.store.pg_filter import compile_filter

_WRITE_COLUMNS = (*codec.WRITE_COLUMNS, "words", "word_count")
_VALUES = ", ".join(["%s"] * len(codec.WRITE_COLUMNS) + ["%s::tsvector", "%s"])
# ON CONFLICT DO NOTHING: a taken (tenant, id) returns no row, and the
# transaction stays usable (an error would abort it) without a savepoint.
_INSERT_SQL = (
    f"INSERT INTO memories ({', '.join(_WRITE_COLUMNS)}) VALUES ({_VALUES})"
    " ON CONFLICT ON CONSTRAINT memories_tenant_id DO NOTHING RETURNING key"
)
_UPDATE_SQL = (
    f"UPDATE memories SET ({', '.join(_WRITE_COLUMNS)}) = ({_VALUES})"
    " WHERE key = %s AND tenant = %s AND id = %s"
)
_DELETE_SQL = (
    f"DELETE FROM memories WHERE tenant = %s AND id = %s RETURNING {', '.join(codec.COLUMNS)}, embedding"
)
_HISTORY_SQL = (
    "INSERT INTO history (revision, tenant, memory_id, life_key, user_id, agent_id, run_id, version,"
    " change_type, time_us, api_key_id, before, after, changed_fields)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_REVLOG_SQL = (
    "INSERT INTO revlog (revision, tenant, memory_id, key, change_type, user_id, agent_id, run_id, time_us)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_SELECT_WITH_EMBEDDING = codec.select_list("m", with_embedding=True)


def _params(memory: Memory, fields: tuple[Any, ...]) -> tuple[Any, ...]:
    words, count = pg_fts.words(memory.content)
    return (*codec.write_params(memory, fields), words, count)


def _scope_where(scope: Scope, alias: str = "m.") -> tuple[list[str], list[object]]:
    where: list[str] = []
    params: list[object] = []
    for column, value in (("user_id", scope.user_id), ("agent_id", scope.agent_id), ("run_id", scope.run_id)):
        if value:
            where.append(f"{alias}{column} = %s")
            params.append(value)
    return where, params


class PgWriteTxn(WriteTxn):
    def __init__(self, conn: psycopg.Connection[tuple[Any, ...]], revision: int) -> None:
        self._conn = conn
        self._cur = conn.cursor()
        self._start = revision
        self._revision = revision
        self._savepoints = 0
        self._open = True
        # History and revision log rows, sent in one executemany (psycopg
        # pipelines it) before anything that reads or removes them, before a
        # savepoint ends and before commit: a 1,000-row batch then costs one
        # round trip per memory, not three.
        self._history: list[tuple[Any, ...]] = []
        self._revlog: list[tuple[Any, ...]] = []

    @property
    def revision(self) -> int:
        return self._revision

    def flush(self) -> None:
        """Writes the buffered log rows (the store calls it before COMMIT)."""
        if self._history:
            self._cur.executemany(_HISTORY_SQL, self._history)
            self._history.clear()
        if self._revlog:
            self._cur.executemany(_REVLOG_SQL, self._revlog)
            self._revlog.clear()

    def close(self) -> None:
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
            f"SELECT {_SELECT_WITH_EMBEDDING} FROM memories AS m WHERE m.tenant = %s AND m.id = %s",
            (tenant, memory_id),
        ).fetchone()
        return None if row is None else codec.row_to_memory(row)

    def find_by_content_hash(self, tenant: str, scope: Scope, content_hash: str) -> Memory | None:
        """Prefers live memories, as the SQLite store does."""
        self._check_open()
        row = self._cur.execute(
            f"SELECT {_SELECT_WITH_EMBEDDING} FROM memories AS m"
            " WHERE m.tenant = %s AND m.content_hash = %s"
            " AND m.user_id = %s AND m.agent_id = %s AND m.run_id = %s"
            " ORDER BY (m.expire_time_us IS NOT NULL AND m.expire_time_us <= %s), m.create_time_us, m.key"
            " LIMIT 1",
            (tenant, content_hash, scope.user_id, scope.agent_id, scope.run_id, now_us()),
        ).fetchone()
        return None if row is None else codec.row_to_memory(row)

    def insert(self, memory: Memory, *, api_key_id: str = "") -> Memory:
        self._check_open()
        self._check_revision(memory.revision)
        fields = codec.encode_fields(memory)
        row = self._cur.execute(_INSERT_SQL, _params(memory, fields)).fetchone()
        if row is None:
            raise errors.AlreadyExistsError(
                f"memory {memory.id!r} already exists", reason="MEMORY_ALREADY_EXISTS"
            )
        stored = codec.with_key(memory, int(row[0]))
        self._log(
            ChangeType.CREATE,
            stored,
            before_json=None,
            after_json=codec.snapshot_json(fields, stored.key),
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
        self._cur.execute(_UPDATE_SQL, (*_params(stored, fields), before.key, before.tenant, before.id))
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
        """As SqliteWriteTxn.delete: `before` is the stored row, the entry
        takes the next version (or a higher one the caller set)."""
        self._check_open()
        self._check_revision(memory.revision)
        if change_type not in (ChangeType.DELETE, ChangeType.EXPIRE):
            raise ValueError(f"a delete is logged as DELETE or EXPIRE, not {change_type.name}")
        row = self._cur.execute(_DELETE_SQL, (memory.tenant, memory.id)).fetchone()
        if row is None:
            raise errors.NotFoundError(f"memory {memory.id!r} does not exist", reason="MEMORY_NOT_FOUND")
        stored = codec.row_to_memory(row)
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
        self.flush()
        self._cur.execute(
            "DELETE FROM history WHERE tenant = %s AND memory_id = ANY(%s) AND life_key = ANY(%s)",
            (tenant, sorted({m.id for m in memories}), [m.key for m in memories]),
        )

    def purge_scope_history(self, tenant: str, scope: Scope) -> list[str]:
        self._check_open()
        self.flush()
        where, params = _scope_where(scope, alias="")
        rows = self._cur.execute(
            f"DELETE FROM history WHERE {' AND '.join(['tenant = %s', *where])} RETURNING memory_id",
            (tenant, *params),
        ).fetchall()
        return sorted({row[0] for row in rows})

    def get_idempotent(self, tenant: str, request_id: str) -> IdempotentRecord | None:
        self._check_open()
        row = self._cur.execute(
            "SELECT fingerprint, response, create_time_us FROM idempotency WHERE tenant = %s AND"
            " request_id = %s",
            (tenant, request_id),
        ).fetchone()
        return None if row is None else IdempotentRecord(row[0], codec.outcomes_from_json(row[1]), row[2])

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
        self._cur.execute(
            "INSERT INTO idempotency (tenant, request_id, fingerprint, response, create_time_us)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant, request_id) DO UPDATE SET"
            " fingerprint = excluded.fingerprint, response = excluded.response,"
            " create_time_us = excluded.create_time_us",
            (tenant, request_id, fingerprint, response, now_us),
        )
        if memory_ids:
            self._cur.executemany(
                "INSERT INTO idempotency_refs (tenant, memory_id, request_id) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                [(tenant, memory_id, request_id) for memory_id in dict.fromkeys(memory_ids)],
            )

    def linking_to(self, tenant: str, target_ids: Sequence[str]) -> list[Memory]:
        self._check_open()
        rows = self._cur.execute(
            f"SELECT {_SELECT_WITH_EMBEDDING} FROM memories AS m"
            " WHERE m.tenant = %s AND m.links <> '[]' AND EXISTS ("
            "   SELECT 1 FROM jsonb_array_elements(m.links::jsonb) AS l(v) WHERE l.v ->> 0 = ANY(%s))"
            " ORDER BY m.key",
            (tenant, list(target_ids)),
        ).fetchall()
        return [codec.row_to_memory(row) for row in rows]

    def select_for_forget(
        self, tenant: str, *, scope: Scope, filter: Expr | None, limit: int
    ) -> list[Memory]:
        self._check_open()
        where, params = _scope_where(scope)
        where.insert(0, "m.tenant = %s")
        params.insert(0, tenant)
        if filter is not None:
            sql, filter_params = compile_filter(filter, alias="m")
            where.append(sql)
            params.extend(filter_params)
        rows = self._cur.execute(
            f"SELECT {_SELECT_WITH_EMBEDDING} FROM memories AS m WHERE {' AND '.join(where)}"
            " ORDER BY m.key LIMIT %s",
            (*params, limit),
        ).fetchall()
        return [codec.row_to_memory(row) for row in rows]

    def purge_idempotency_for(self, tenant: str, memory_ids: Sequence[str]) -> None:
        self._check_open()
        ids = list(memory_ids)
        self._cur.execute(
            "DELETE FROM idempotency WHERE tenant = %s AND request_id IN ("
            " SELECT request_id FROM idempotency_refs WHERE tenant = %s AND memory_id = ANY(%s))",
            (tenant, tenant, ids),
        )
        self._cur.execute(
            "DELETE FROM idempotency_refs WHERE tenant = %s AND memory_id = ANY(%s)", (tenant, ids)
        )

    def savepoint(self) -> AbstractContextManager[None]:
        self._check_open()
        return self._savepoint()

    def usage(self, tenant: str) -> tuple[int, int]:
        self._check_open()
        row = self._cur.execute(
            "SELECT memory_count, content_bytes FROM tenant_usage WHERE tenant = %s", (tenant,)
        ).fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        self._savepoints += 1
        name = f"sp{self._savepoints}"  # internal counter, never user text
        self.flush()
        self._cur.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            # Revisions taken inside stay taken (the counter only grows).
            self._history.clear()
            self._revlog.clear()
            self._cur.execute(f"ROLLBACK TO {name}")
            self._cur.execute(f"RELEASE {name}")
            raise
        self.flush()
        self._cur.execute(f"RELEASE {name}")

    def _check_revision(self, revision: int) -> None:
        if not self._start < revision <= self._revision:
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
        revision = subject.revision if revision is None else revision
        version = subject.version if version is None else version
        scope = subject.scope
        self._history.append(
            (
                revision,
                subject.tenant,
                subject.id,
                subject.key,
                scope.user_id,
                scope.agent_id,
                scope.run_id,
                version,
                int(change_type),
                time_us,
                api_key_id,
                before_json,
                after_json,
                codec.dumps(list(changed_fields)),
            ),
        )
        self._revlog.append(
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
