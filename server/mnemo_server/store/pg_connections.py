"""PgConnections: the connection pool of the PostgreSQL store, shared by its parts.

One psycopg_pool.ConnectionPool of autocommit connections: a read takes a
connection for one statement (or one explicit transaction), a write for its
whole transaction. A PostgreSQL that cannot be reached, or that goes away
mid-call, surfaces as UnavailableError (UNAVAILABLE, STORE_UNAVAILABLE) with
a retry hint, never as a traceback; the pool replaces broken connections by
itself (`check` on checkout), so service resumes when the server is back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import psycopg
import psycopg_pool

from mnemo_server import errors

#: How long a call waits for a pooled connection before it gives up.
_CONNECT_TIMEOUT_S: Final = 5.0
#: The retry hint sent with STORE_UNAVAILABLE.
RETRY_AFTER_S: Final = 1.0
#: How long the pool keeps retrying one lost connection before it gives the
#: slot up. psycopg_pool doubles its delay between attempts (1 s, 2 s, 4 s,
#: ...) for up to `reconnect_timeout` (5 min by default), so after an outage
#: of a few seconds its next attempt could lie beyond _CONNECT_TIMEOUT_S and
#: calls would keep failing although the server was back. Giving the slot up
#: after 2 s keeps every retry within about 1 s; the next call that finds the
#: pool short grows it again with an immediate attempt.
_RECONNECT_WINDOW_S: Final = 2.0

Conn = psycopg.Connection[tuple[Any, ...]]


def unavailable(exc: BaseException) -> errors.UnavailableError:
    return errors.UnavailableError(
        f"the PostgreSQL store is unreachable ({type(exc).__name__}); retry shortly",
        reason="STORE_UNAVAILABLE",
        retry_after_s=RETRY_AFTER_S,
    )


@contextmanager
def reachable() -> Iterator[None]:
    """Maps a lost or unreachable server to UnavailableError."""
    try:
        yield
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
        if isinstance(exc, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable):
            raise
        raise unavailable(exc) from exc
    except psycopg.InterfaceError as exc:  # a connection closed under us
        raise unavailable(exc) from exc


class PgConnections:
    """Opens the pool to `url` (min 1, max `pool_size` connections)."""

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self._url = url
        self._closed = False
        self._pool: psycopg_pool.ConnectionPool[Conn] = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "connect_timeout": 5},
            check=psycopg_pool.ConnectionPool.check_connection,
            timeout=_CONNECT_TIMEOUT_S,
            reconnect_timeout=_RECONNECT_WINDOW_S,
            open=False,
            name="mnemo-store",
        )
        with reachable():
            self._pool.open(wait=True, timeout=_CONNECT_TIMEOUT_S)

    @property
    def url(self) -> str:
        return self._url

    @contextmanager
    def _conn(self) -> Iterator[Conn]:
        """A pooled autocommit connection; errors mapped by reachable()."""
        if self._closed:
            raise RuntimeError("the store is closed")
        with reachable(), self._pool.connection() as conn:
            yield conn

    def _one(self, sql: str, params: Any = ()) -> tuple[Any, ...] | None:
        with self._conn() as conn:
            return conn.execute(sql, params).fetchone()

    def _all(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        with self._conn() as conn:
            return conn.execute(sql, params).fetchall()

    def _exec(self, sql: str, params: Any = ()) -> int:
        with self._conn() as conn:
            return conn.execute(sql, params).rowcount

    def _close_pool(self) -> None:
        self._closed = True
        self._pool.close()
