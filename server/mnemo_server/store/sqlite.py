"""SqliteStore: the default RecordStore, one SQLite file in WAL mode.

Concurrency: writers are serialized by a lock around one writer connection;
each reading thread has its own connection, so reads (run in a thread pool by
the server) proceed concurrently with a write and see the last commit.

Durability: a write is acknowledged when `write()` returns, after COMMIT.
With synchronous=FULL the WAL is fsynced at every commit, so a committed
write survives `kill -9` and power loss alike; NORMAL survives `kill -9`
but may lose the last commits on power loss.

Listing order: rows sort by the order terms, then by id in the direction of
the last term (store/order.py), which makes the sort key unique; pages
continue strictly after the previous page's key, so every row is returned
exactly once however many rows share a time.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Final

import numpy as np

from mnemo_server import storage
from mnemo_server.filters import Expr
from mnemo_server.models import Change, ChangeType, Memory, Scope, VersionRecord
from mnemo_server.store import sqlite_codec as codec
from mnemo_server.store import sqlite_fts
from mnemo_server.store.base import (
    FeedEntry,
    IdempotentRecord,
    KeywordHit,
    OrderTerm,
    RecordStore,
    ScopeCountRow,
    TenantCountRow,
    VectorRow,
    WriteTxn,
)
from mnemo_server.store.order import sort_terms
from mnemo_server.store.sqlite_checkpoint import Checkpointer
from mnemo_server.store.sqlite_filter import compile_filter
from mnemo_server.store.sqlite_schema import RESERVED_META, ensure_schema
from mnemo_server.store.sqlite_txn import SqliteWriteTxn

_SYNCHRONOUS: Final = ("OFF", "NORMAL", "FULL", "EXTRA")
_ORDER_COLUMNS: Final = {
    "create_time": "create_time_us",
    "update_time": "update_time_us",
    "id": "id",
}
_BUSY_TIMEOUT_MS: Final = 10_000
# Readers map the file: a rebuild streams every embedding, and mmap saves a
# copy per page. The value is an upper bound, not an allocation.
_READER_MMAP_BYTES: Final = 1 << 30


class _Reader:
    """Holds one thread's reader connection. sqlite3.Connection cannot be
    weakly referenced; this holder can, so a dead thread's connection is
    closed by garbage collection while close() still finds the live ones."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


class SqliteStore(RecordStore):
    def __init__(
        self, path: Path, *, synchronous: str = "FULL", guard: Callable[[], None] | None = None
    ) -> None:
        """Opens (creating if needed) the database file at `path`.

        Args:
            path: the database file; its directory is created if missing.
            synchronous: SQLite's synchronous setting for commits (see the
                module docstring).
            guard: called before each write starts and before it commits; it
                raises to refuse the write (storage.DataDirectoryWatch.check).
        """
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {_SYNCHRONOUS}, not {synchronous!r}")
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()
        self._writer_thread: int | None = None
        self._local = threading.local()
        self._readers: weakref.WeakSet[_Reader] = weakref.WeakSet()
        self._readers_lock = threading.Lock()
        self._closed = False
        self._guard = guard
        self._writer = self._connect()
        try:
            mode = self._writer.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise RuntimeError(f"{self._path}: SQLite refused WAL mode (got {mode!r})")
            self._writer.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            # A larger page cache keeps the indexes of a big batch in memory.
            self._writer.execute("PRAGMA cache_size = -65536")
            # Checkpoints run in the background (sqlite_checkpoint.py); this
            # bound (64 MiB of WAL) only matters if that thread falls behind.
            self._writer.execute("PRAGMA wal_autocheckpoint = 16384")
            ensure_schema(self._writer)
            self._checkpointer = Checkpointer(self._connect)
        except BaseException:
            self._writer.close()
            raise

    @property
    def path(self) -> Path:
        return self._path

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: autocommit, so transactions are exactly the
        # BEGIN/COMMIT this module issues. check_same_thread=False: the writer
        # moves between pool threads (under the lock), and close() closes
        # readers from whichever thread shuts down.
        conn = sqlite3.connect(
            self._path, isolation_level=None, check_same_thread=False, cached_statements=256
        )
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("the store is closed")
        holder: _Reader | None = getattr(self._local, "reader", None)
        if holder is None:
            conn = self._connect_reader()
            holder = _Reader(conn)
            self._local.reader = holder
            with self._readers_lock:
                self._readers.add(holder)
        return holder.conn

    def _connect_reader(self) -> sqlite3.Connection:
        conn = self._connect_again()
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.execute(f"PRAGMA mmap_size = {_READER_MMAP_BYTES}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_again(self) -> sqlite3.Connection:
        """A connection opened after the start (readers, exports). It opens
        the file by its path: once the data directory is lost, that would
        fail (INTERNAL) or, in a directory put in its place, create an empty
        database and answer from it; DataDirectoryLostError says why instead."""
        if self._guard is not None:
            self._guard()
        try:
            return self._connect()
        except sqlite3.Error:
            if self._guard is not None:
                self._guard()  # lost between the check and the open
            raise

    @property
    def checkpoint_failures(self) -> int:
        """Background WAL checkpoints that failed since the store opened."""
        return self._checkpointer.failures

    # ------------------------------------------------------------------ writes

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise RuntimeError("the store is closed")
        if self._writer_thread == threading.get_ident():
            # The lock is not reentrant; waiting on it here would hang forever.
            raise RuntimeError("write() (or set_meta) called inside a write() block of the same thread")
        with self._write_lock:
            self._writer_thread = threading.get_ident()
            try:
                if self._guard is not None:
                    self._guard()
                with storage.disk_full_as_error():
                    yield self._writer
            finally:
                self._writer_thread = None

    def write(self) -> AbstractContextManager[WriteTxn]:
        return self._write()

    @contextmanager
    def _write(self) -> Iterator[WriteTxn]:
        with self._writing() as conn:
            conn.execute("BEGIN IMMEDIATE")
            txn: SqliteWriteTxn | None = None
            try:
                start = int(conn.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()[0])
                txn = SqliteWriteTxn(conn, start)
                yield txn
                if txn.revision != start:
                    conn.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (str(txn.revision),))
                txn.close()
                if self._guard is not None:
                    # Not acknowledged into files nobody will find again.
                    self._guard()
                conn.execute("COMMIT")
                self._checkpointer.notify()
            except BaseException:
                if txn is not None:
                    txn.close()
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def set_meta(self, name: str, value: str) -> None:
        if name in RESERVED_META:
            raise ValueError(f"meta {name!r} belongs to the store")
        with self._writing() as conn:
            conn.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

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

    @staticmethod
    def _live_where(
        tenant: str, scope: Scope, filter: Expr | None, now_us: int
    ) -> tuple[list[str], list[object]]:
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
        where, params = self._live_where(tenant, scope, filter, now_us)
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
        where, params = self._live_where(tenant, scope, filter, now_us)
        sql = f"SELECT m.key FROM memories AS m WHERE {' AND '.join(where)} ORDER BY m.key"
        return [row[0] for row in self._reader().execute(sql, params)]

    def keyword_search(
        self, tenant: str, text: str, *, scope: Scope, filter: Expr | None, now_us: int, limit: int
    ) -> builtins.list[KeywordHit]:
        """See RecordStore.keyword_search and sqlite_fts.py (tokenizer, scores)."""
        match = sqlite_fts.match_expression(text)
        if match is None or limit <= 0:
            return []
        where, params = self._live_where(tenant, scope, filter, now_us)
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
            where, params = self._live_where(tenant, scope, filter, now_us)
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

    # ------------------------------------------------------------------ meta, lifecycle

    def get_meta(self, name: str) -> str | None:
        row = self._reader().execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        """Closes every connection. Call once no request is in flight."""
        if self._closed:
            return
        with self._write_lock:
            self._closed = True
            self._checkpointer.stop()
            with self._readers_lock:
                readers = list(self._readers)
            for holder in readers:
                holder.conn.close()
            # Folds the WAL into the file so a copied .db is complete.
            # A reader elsewhere may still hold a snapshot; the WAL stays valid.
            with contextlib.suppress(sqlite3.Error):
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._writer.close()


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
