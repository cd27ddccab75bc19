"""SqliteConnections: the connections of the SQLite store, shared by its parts.

One writer connection behind a lock, and one reader connection per thread
(query-only, memory-mapped), opened on first use. SqliteStore (sqlite.py) is
assembled from this base and the parts that read and write through it:
sqlite_reads.py (records, vectors, counts), sqlite_log.py (revision log and
change feed), sqlite_upkeep.py (retention, idempotency upkeep, export).
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from mnemo_server import storage

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


class SqliteConnections:
    """Opens the writer connection to `path`; readers open on first use.

    `guard` is called before each write starts (and, by the store, before
    it commits) and before any connection opened after the start; it raises
    to refuse (storage.DataDirectoryWatch.check).
    """

    def __init__(self, path: Path, *, guard: Callable[[], None] | None = None) -> None:
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
