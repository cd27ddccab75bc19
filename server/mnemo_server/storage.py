"""The data directory as the disk sees it: a full disk, and a directory
deleted or replaced under the running server.

A full disk shows up as SQLite's SQLITE_FULL ("database or disk is full") or
an OSError ENOSPC/EDQUOT from a file write. `disk_full_as_error()` turns
those into `StorageFullError` (RESOURCE_EXHAUSTED / STORAGE_FULL with a retry
delay); a failure without an errno (FAISS's RuntimeError) is told apart by
`out_of_space()`, the free space statvfs reports. Nothing was written,
reads keep working, and writes work again once the operator frees space,
without a restart.

A deleted data directory does not stop SQLite: its open file descriptors
keep working on unlinked files, so writes would be acknowledged and then
vanish at the next restart. `DataDirectoryWatch` remembers the device and
inode of the directory and of the files the server keeps open, and
`check()` (before each write commits, before a new connection opens the
database by its path, and periodically from the app) raises
`DataDirectoryLostError` once either is gone or replaced. Lost is final: the
server refuses writes and reports NOT_SERVING until it is restarted.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from mnemo_server.errors import DataDirectoryLostError, StorageFullError

log = logging.getLogger("mnemo.storage")

#: The retry delay a STORAGE_FULL error suggests: freeing space takes an operator.
STORAGE_FULL_RETRY_S = 30.0

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    """Whether an exception, or one it was raised while handling, means the
    disk (or the user's quota) is full: after SQLITE_FULL, SQLite may have
    rolled the transaction back, and releasing a savepoint then fails too."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, OSError) and seen.errno in _FULL_ERRNOS:
            return True
        if isinstance(seen, sqlite3.Error) and (
            getattr(seen, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
            or "database or disk is full" in str(seen)
        ):
            return True
        seen = seen.__context__
    return False


#: Less free space than this after a write failed means the disk is what failed it.
LOW_SPACE_BYTES = 1 << 20


def free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged process may still write on the filesystem of
    `path` (None when it cannot be told, e.g. the path is gone)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def out_of_space(path: Path) -> bool:
    """Whether the filesystem of `path` is (all but) full: for failures that
    carry no errno, such as a RuntimeError from FAISS's fwrite."""
    free = free_bytes(path)
    return free is not None and free < LOW_SPACE_BYTES


def storage_full_error(what: str = "the write") -> StorageFullError:
    return StorageFullError(
        f"the disk under the data directory is full, so {what} was not made; "
        "reads still work: retry once space is freed",
        retry_after_s=STORAGE_FULL_RETRY_S,
    )


@contextlib.contextmanager
def disk_full_as_error(what: str = "the write") -> Iterator[None]:
    """Raises StorageFullError in place of a disk-full error in the block."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        if is_disk_full(exc):
            log.warning("disk full: %s failed: %s", what, exc)
            raise storage_full_error(what) from exc
        raise


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:  # gone, or a parent replaced by a file or made unreadable
        return None
    return st.st_dev, st.st_ino


class DataDirectoryWatch:
    """Notices the data directory (or a file in it) deleted or replaced."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._known: dict[Path, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self.lost: str | None = None
        self.track(self.directory)

    def track(self, path: Path) -> None:
        """Remembers the identity `path` has now (it must exist)."""
        identity = _identity(path)
        if identity is None:
            raise FileNotFoundError(path)
        with self._lock:
            self._known[Path(path)] = identity

    def poll(self) -> str | None:
        """Why the data directory is lost, or None while it is intact."""
        if self.lost is not None:
            return self.lost
        for path, identity in list(self._known.items()):
            now = _identity(path)
            if now == identity:
                continue
            what = "deleted" if now is None else "replaced by another file"
            with self._lock:
                if self.lost is None:
                    self.lost = f"{path} was {what} while the server ran"
                    log.error(
                        "%s; refusing writes and reporting NOT_SERVING. Writes acknowledged since "
                        "then are not on disk: restore the data directory from a backup and restart",
                        self.lost,
                    )
            return self.lost
        return None

    def check(self) -> None:
        """Raises DataDirectoryLostError when the data directory is lost."""
        reason = self.poll()
        if reason is not None:
            # The path stays in the log: clients are not told the server's file layout.
            raise DataDirectoryLostError(
                "the server's data directory was deleted or replaced while it ran; "
                "it no longer accepts writes: retry on another replica"
            )
