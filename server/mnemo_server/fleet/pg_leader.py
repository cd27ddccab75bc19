"""PgAdvisoryLeaderLock: one leader among replicas on different hosts.

leader.py's `FleetLock` for a PostgreSQL store: leadership is the session
advisory lock `pg_try_advisory_lock(LEADER_KEY)`, held by a connection of
its own. PostgreSQL releases it when that session ends, however it ends (the
holder killed -9, its host gone: once TCP keepalives find the peer dead), so
a survivor's next try takes it over. The holder checks its session on every
try: a lost connection is lost leadership (it says False and tries again
later on a new connection), never two leaders believing they lead while the
database agrees with one of them. Advisory locks are per database, so two
Mnemo deployments on one PostgreSQL server never share a leader.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Final

import psycopg

log = logging.getLogger(__name__)

#: The advisory lock key: "mnemo-L" in ASCII. Not store/pg_schema.py's
#: migration lock ("mnemo"): a leader holds its lock while others migrate.
LEADER_KEY: Final = 0x6D6E656D6F2D4C
#: The application_name of the lock's session (pg_stat_activity), with the pid.
APPLICATION = "mnemo-leader"
_CONNECT: Final = {
    "autocommit": True,
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}


class PgAdvisoryLeaderLock:
    """Leadership of the database at `url` as a session advisory lock."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._holds = False
        self._lock = threading.Lock()

    def try_lead(self) -> bool:
        with self._lock:
            try:
                return self._try()
            except psycopg.Error as exc:
                held = self._holds
                self._drop()
                if held:
                    log.warning("lost the fleet lead: its PostgreSQL session failed (%s)", type(exc).__name__)
                    return False
            try:  # a follower's idle session had ended: try once on a new one
                return self._try()
            except psycopg.Error:
                self._drop()
                return False

    def _try(self) -> bool:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            self._drop()
            name = f"{APPLICATION}-{os.getpid()}"
            conn = psycopg.connect(self._url, application_name=name, **_CONNECT)  # type: ignore[arg-type]
            self._conn = conn
        if self._holds:
            conn.execute("SELECT 1")  # the session, and so the lock, is still there
            return True
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_KEY,)).fetchone()
        self._holds = bool(row and row[0])
        return self._holds

    def _drop(self) -> None:
        conn, self._conn, self._holds = self._conn, None, False
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def release(self) -> None:
        with self._lock:
            conn = self._conn
            if self._holds and conn is not None and not (conn.closed or conn.broken):
                # Unlocked before the session ends: closing returns before the backend has
                # exited and let go of the lock, so a successor's try could still fail.
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (LEADER_KEY,))
            self._drop()  # ending the session releases the advisory lock anyway
