"""PgRevisionSignal: what replicas sharing one PostgreSQL learn of each other's commits.

The PostgreSQL counterpart of counters.py's `RevisionSignal` (both implement
service/state.py's `RevisionSignalLike`): replicas on different hosts and
data directories share no file, so the latest committed revision reaches
them as a notification. The store's write transaction sends `NOTIFY
mnemo_revision, '<rev>'` (store/pg.py), which PostgreSQL delivers at commit
and in commit order; a thread of this process holds a connection of its own
that LISTENs and raises `latest()` to every payload. A search compares
`latest()` with what its index applied and catches up from the revision log
when behind, exactly as with the file counter.

Losing the listening connection (PostgreSQL restarted, the backend
terminated, the network gone) loses no revision: while it is down `latest()`
asks the store (`fallback`, one cheap query per call: the polling that a
store without any signal does), and the thread reconnects with backoff; on
reconnect it LISTENs first and then reads the committed revision, so a
notification sent in between is either received or already counted.

The same connection LISTENs to `mnemo_keys`, which every API-key revocation
notifies (store/pg_keys.py): `PgKeyGeneration` raises the generation the
key cache compares (auth.ApiKeys), so a key revoked through any replica is
refused by every replica as soon as the notification arrives, not after
`auth.key_cache_s`. Every (re)connection raises it too (a revocation may
have gone unheard), and while no listener is connected each call sees a new
generation: the cache is bypassed and every key is read from the store.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Final

import psycopg

from mnemo_server.store.pg import KEYS_CHANNEL, REVISION_CHANNEL

log = logging.getLogger(__name__)

#: The first and the longest wait between reconnection attempts.
_BACKOFF_S: Final = (0.05, 5.0)
#: How often the listening thread wakes to see whether it should stop.
_WAKE_S: Final = 0.5
#: libpq options: find a dead peer within seconds, not hours.
_CONNECT: Final = {
    "autocommit": True,
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}
#: The application_name of the listening connection (pg_stat_activity), with the pid.
APPLICATION = "mnemo-listen"


class PgRevisionSignal:
    """The latest revision committed by any replica of the database at `url`.

    `fallback` reads the store's committed revision (the store's
    `current_revision`); it answers `latest()` while no listener is connected.
    """

    def __init__(self, url: str, *, fallback: Callable[[], int]) -> None:
        self._url = url
        self._fallback = fallback
        self._latest = 0
        #: Raised by every key revocation heard and every (re)connection.
        self._keys = 0
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        #: How many times the listener has connected (1 + reconnections).
        self.connections = 0
        self._thread = threading.Thread(target=self._run, name="mnemo-pg-listen", daemon=True)

    def start(self, *, wait_s: float = 5.0) -> PgRevisionSignal:
        """Starts listening; waits up to `wait_s` for the first connection
        (without it `latest()` polls the store until the thread connects)."""
        self._thread.start()
        self._connected.wait(wait_s)
        return self

    @property
    def listening(self) -> bool:
        return self._connected.is_set()

    def latest(self) -> int:
        if not self._connected.is_set():
            try:
                self._raise(self._fallback())
            except Exception:  # the store is down too: its own calls will say so
                log.debug("revision fallback failed", exc_info=True)
        return self._latest

    def announce(self, revision: int) -> None:
        """This process committed `revision` (the store already notified the others)."""
        self._raise(revision)

    def key_generation(self) -> int:
        """The API-key generation: a new value after any revocation anywhere,
        and on every call while no listener is connected (nothing is heard)."""
        if not self._connected.is_set():
            return self._keys_changed()
        return self._keys

    def _keys_changed(self) -> int:
        with self._lock:
            self._keys += 1
            return self._keys

    def _raise(self, revision: int) -> None:
        with self._lock:
            if revision > self._latest:
                self._latest = revision

    def _run(self) -> None:
        delay = _BACKOFF_S[0]
        while not self._stop.is_set():
            try:
                self._listen()
                delay = _BACKOFF_S[0]
            except Exception as exc:
                if self._stop.is_set():
                    break
                log.warning(
                    "the PostgreSQL revision listener is down (%s); polling the store, retrying in %.2fs",
                    type(exc).__name__,
                    delay,
                )
            finally:
                self._connected.clear()
                self._conn = None
            self._stop.wait(delay)
            delay = min(delay * 2, _BACKOFF_S[1])

    def _listen(self) -> None:
        name = f"{APPLICATION}-{os.getpid()}"
        with psycopg.connect(self._url, application_name=name, **_CONNECT) as conn:  # type: ignore[arg-type]
            self._conn = conn
            conn.execute(f"LISTEN {REVISION_CHANNEL}")
            conn.execute(f"LISTEN {KEYS_CHANNEL}")
            # After LISTEN: any commit later than this read is notified.
            row = conn.execute("SELECT value FROM revision_counter").fetchone()
            assert row is not None
            self._raise(int(str(row[0])))
            self._keys_changed()  # a revocation while nobody listened
            self._connected.set()
            self.connections += 1
            if self.connections > 1:
                log.info("the PostgreSQL revision listener is back")
            while not self._stop.is_set():
                for note in conn.notifies(timeout=_WAKE_S):
                    if note.channel == KEYS_CHANNEL:
                        self._keys_changed()
                    elif note.payload.isdigit():
                        self._raise(int(note.payload))
                if conn.closed or conn.broken:
                    raise psycopg.OperationalError("the listening connection closed")

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2 * _WAKE_S + 1)


class PgKeyGeneration:
    """The API-key generation of a PgRevisionSignal, as auth.ApiKeys uses it."""

    def __init__(self, signal: PgRevisionSignal) -> None:
        self._signal = signal

    def current(self) -> int:
        return self._signal.key_generation()

    def changed(self) -> int:
        # The revocation's own statement notified every server, this one included.
        return self._signal.key_generation()
