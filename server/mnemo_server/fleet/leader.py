"""The leader of a fleet: the one worker that runs the background work.

`FleetLock` is what the runtime needs: try to become (or stay) the leader
without waiting, and let go. `FileLeaderLock` is the one for a store in a data
directory (SQLite): an exclusive `fcntl.flock` on a file there, which the
kernel releases when its holder dies however it dies (kill -9 included), so a
survivor's next try takes it over. A store shared by hosts (PostgreSQL) would
plug in a lock of its own here (an advisory lock held by a session).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Protocol


class FleetLock(Protocol):
    def try_lead(self) -> bool:
        """True when this process leads now (taking the lock if it is free)."""
        ...

    def release(self) -> None: ...


class FileLeaderLock:
    """Leadership as an exclusive flock on `path`."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd: int | None = None

    def try_lead(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the flock


class AlwaysLeader:
    """The lock of a process that runs alone: it always leads."""

    def try_lead(self) -> bool:
        return True

    def release(self) -> None:
        pass
