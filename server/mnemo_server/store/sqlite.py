"""SqliteStore: the default RecordStore, one SQLite file in WAL mode.

Concurrency: writers are serialized by a lock around one writer connection;
each reading thread has its own connection, so reads (run in a thread pool by
the server) proceed concurrently with a write and see the last commit.

Durability: a write is acknowledged when `write()` returns, after COMMIT.
With synchronous=FULL the WAL is fsynced at every commit, so a committed
write survives `kill -9` and power loss alike; NORMAL survives `kill -9`
but may lose the last commits on power loss.

The class is assembled from parts by what they hold: sqlite_connections.py
(the writer and per-thread readers), sqlite_reads.py (records, listing,
vectors, counts), sqlite_log.py (revision log, change feed, history),
sqlite_upkeep.py (retention, idempotency upkeep, export); the write
transaction is sqlite_txn.py, the schema sqlite_schema.py.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Final

from mnemo_server.store.base import RecordStore, WriteTxn
from mnemo_server.store.sqlite_checkpoint import Checkpointer
from mnemo_server.store.sqlite_log import SqliteLog
from mnemo_server.store.sqlite_reads import SqliteReads
from mnemo_server.store.sqlite_schema import RESERVED_META, ensure_schema
from mnemo_server.store.sqlite_txn import SqliteWriteTxn
from mnemo_server.store.sqlite_upkeep import SqliteUpkeep

_SYNCHRONOUS: Final = ("OFF", "NORMAL", "FULL", "EXTRA")


class SqliteStore(SqliteReads, SqliteLog, SqliteUpkeep, RecordStore):
    """The default RecordStore; see the module docstring."""

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
        super().__init__(path, guard=guard)
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
    def checkpoint_failures(self) -> int:
        """Background WAL checkpoints that failed since the store opened."""
        return self._checkpointer.failures

    # ------------------------------------------------------------------ writes

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
