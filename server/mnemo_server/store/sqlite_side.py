"""SqliteSideConnection: one more connection to the store's SQLite file, for a
table the store does not own (API keys, extraction jobs).

Open the store first: it sets WAL mode and the schema (ensure_schema here only
checks, or adds what an older file lacks). The table's rows change rarely, so
one connection behind a lock serves every thread; SQLite's own locking
(busy_timeout) orders its writes with the store's and other processes'.

Storage faults are the store's (storage.py): a write on a full disk fails
with STORAGE_FULL, and none is made once the data directory is lost (the
`guard`), since this connection would go on writing to the unlinked file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from mnemo_server import storage
from mnemo_server.store.sqlite_schema import ensure_schema

_BUSY_TIMEOUT_MS: Final = 10_000


class SqliteSideConnection:
    def __init__(self, path: Path, *, guard: Callable[[], None] | None = None) -> None:
        """Opens the database file at `path`.

        Args:
            guard: called before each write; it raises to refuse the write
                (storage.DataDirectoryWatch.check).
        """
        self._guard = guard
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        self._lock = threading.Lock()
        try:
            ensure_schema(self._conn)
        except BaseException:
            self._conn.close()
            raise

    @contextmanager
    def _writing(self, what: str) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, for a guarded write of `what`."""
        with self._lock:
            if self._guard is not None:
                self._guard()
            with storage.disk_full_as_error(what):
                yield self._conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()
