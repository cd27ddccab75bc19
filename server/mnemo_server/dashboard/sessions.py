"""Dashboard sessions: an opaque id in an HttpOnly cookie names a session
kept only in this process's memory, which holds the API key and the CSRF
token. The key never goes back to the browser.

A session ends when signed out, after `IDLE_S` without a request, or after
`LIFETIME_S` in all; the oldest session goes when `MAX_SESSIONS` are open.
A restart ends every session (sign in again).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

IDLE_S: Final = 30 * 60.0
LIFETIME_S: Final = 12 * 3600.0
MAX_SESSIONS: Final = 1000


@dataclass
class Session:
    """One signed-in browser."""

    id: str
    key: str
    csrf: str
    #: Whether the key may call AdminService (learnt by calling it at sign-in).
    admin: bool
    #: The key's id (the part of the secret after "mnemo_"), for display.
    key_id: str
    created: float
    seen: float = field(default=0.0)


class Sessions:
    """The open sessions, by id."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._open: OrderedDict[str, Session] = OrderedDict()

    def open(self, key: str, *, admin: bool, key_id: str) -> Session:
        now = self._clock()
        session = Session(
            id=secrets.token_urlsafe(32),
            key=key,
            csrf=secrets.token_urlsafe(32),
            admin=admin,
            key_id=key_id,
            created=now,
            seen=now,
        )
        with self._lock:
            self._open[session.id] = session
            while len(self._open) > MAX_SESSIONS:
                self._open.popitem(last=False)
        return session

    def get(self, session_id: str) -> Session | None:
        """The live session of this id, or None; a request keeps it alive."""
        now = self._clock()
        with self._lock:
            session = self._open.get(session_id)
            if session is None:
                return None
            if now - session.seen > IDLE_S or now - session.created > LIFETIME_S:
                del self._open[session_id]
                return None
            session.seen = now
            self._open.move_to_end(session_id)
            return session

    def close(self, session_id: str) -> None:
        with self._lock:
            self._open.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._open)


def csrf_ok(session: Session, token: str) -> bool:
    """Whether a request's CSRF header is this session's token (constant time)."""
    return bool(token) and hmac.compare_digest(session.csrf.encode(), token.encode())
