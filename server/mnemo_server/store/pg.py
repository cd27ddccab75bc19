"""PostgresStore: the RecordStore on a PostgreSQL database (store.url).

Opening it applies the schema migrations (pg_schema.py). The parts, by what
they hold: pg_connections.py (the pool, unreachable -> UNAVAILABLE),
pg_reads.py (records, listing, keyword search, vectors, counts), pg_log.py
(revision log, change feed, history, upkeep, export), pg_txn.py (the write
transaction), pg_filter.py and pg_fts.py (filters and keywords in SQL).

Revisions in commit order
-------------------------
Readers tail the revision log (`changes_since(r)`: index recovery, watch,
caches, replicas) and continue after the highest revision they saw. That is
only correct if a revision can never become visible after a higher one was
visible: a plain sequence hands out 41 to T1 and 42 to T2, T2 commits first,
a tailer reads 42 and moves past 41 forever.

So the counter is one row (`revision_counter`), and every write transaction
starts with `SELECT value FROM revision_counter FOR UPDATE`, holds that row
lock until it commits or rolls back, takes its revisions as value+1, +2, ...
and writes the last one back just before COMMIT. Why that is enough:

1. Mutual exclusion: the row lock admits one write transaction at a time;
   T2's SELECT ... FOR UPDATE waits while T1 holds it. (This is also the
   serialized write of the RecordStore contract: etag checks, dedup and
   quotas read and write in one critical section, across processes.)
2. Fresh start: under READ COMMITTED, a SELECT ... FOR UPDATE that waited
   returns the row as the lock holder committed it, so T2 starts from T1's
   last revision: revisions are unique and increasing in lock order.
3. Visible before released: PostgreSQL makes a transaction visible to new
   snapshots (ProcArrayEndTransaction) before it releases its locks; T2
   can only take the lock, and so only commit, after T1 is visible.
Hence the commit order equals the revision order, and any snapshot that
shows revision r shows every committed revision below r. Revisions of a
rolled-back transaction are never written (the next one reuses them); those
taken in a rolled-back savepoint stay taken and leave a permanent gap that
no later commit fills, which tailers tolerate (gaps never fill). The price
is that writes are serialized across all servers sharing the database, as
on SQLite; reads never take the lock. tests/store/test_pg_store.py runs
writers in several processes against a tailer that checks for a gap that
later fills.

Every write transaction that took revisions also sends `NOTIFY
mnemo_revision, '<last revision>'` (REVISION_CHANNEL). PostgreSQL delivers
notifications only at commit and in commit order, so a listener that has
seen r knows every revision up to r is committed: replicas on other hosts
learn of a write within a round trip (fleet/pg_signal.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from mnemo_server.store.base import RecordStore, WriteTxn
from mnemo_server.store.pg_connections import reachable
from mnemo_server.store.pg_log import PgLog
from mnemo_server.store.pg_schema import RESERVED_META, migrate
from mnemo_server.store.pg_txn import PgWriteTxn

#: The channel every committed write notifies, with its last revision.
REVISION_CHANNEL = "mnemo_revision"
#: The channel every API-key revocation notifies, with the key's id (store/pg_keys.py):
#: the servers sharing the database drop their cached keys (fleet/pg_signal.py).
KEYS_CHANNEL = "mnemo_keys"


class PostgresStore(PgLog, RecordStore):
    """See the module docstring. `url` is a libpq URL (postgresql://...)."""

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        # One write at a time per process too: a writer waiting for the
        # row lock then holds no pooled connection the holder may need.
        self._write_lock = threading.Lock()
        self._writer_thread: int | None = None
        super().__init__(url, pool_size=pool_size)
        try:
            with self._conn() as conn:
                migrate(conn)
        except BaseException:
            self._close_pool()
            raise

    def write(self) -> AbstractContextManager[WriteTxn]:
        return self._write()

    @contextmanager
    def _write(self) -> Iterator[WriteTxn]:
        if self._writer_thread == threading.get_ident():
            # The lock is not reentrant; waiting on it here would hang forever.
            raise RuntimeError("write() called inside a write() block of the same thread")
        with self._write_lock, self._conn() as conn:
            self._writer_thread = threading.get_ident()
            try:
                with reachable(), conn.transaction():
                    row = conn.execute("SELECT value FROM revision_counter FOR UPDATE").fetchone()
                    assert row is not None
                    start = int(row[0])
                    txn = PgWriteTxn(conn, start)
                    try:
                        yield txn
                        txn.flush()
                        if txn.revision != start:
                            conn.execute("UPDATE revision_counter SET value = %s", (txn.revision,))
                            # Delivered to every listener at commit, in commit
                            # (= revision) order: fleet/pg_signal.py.
                            conn.execute("SELECT pg_notify(%s, %s)", (REVISION_CHANNEL, str(txn.revision)))
                    finally:
                        txn.close()
            finally:
                self._writer_thread = None

    def set_meta(self, name: str, value: str) -> None:
        if name in RESERVED_META:
            raise ValueError(f"meta {name!r} belongs to the store")
        self._exec(
            "INSERT INTO meta (name, value) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET value ="
            " excluded.value",
            (name, value),
        )

    def get_meta(self, name: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE name = %s", (name,))
        return None if row is None else str(row[0])

    def close(self) -> None:
        if not self._closed:
            self._close_pool()
