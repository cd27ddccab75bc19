"""Moves WAL checkpoints off the write path.

SQLite's automatic checkpoint runs inside the COMMIT that crosses its
threshold, so every few batches one writer pays for copying megabytes of WAL
into the database file (measured: a 1,000-row batch took 1.5-2x longer on
those commits). Here the writer disables it and this thread runs PASSIVE
checkpoints instead, at most one per `interval_s` while writes keep coming.
PASSIVE never blocks readers or the writer; the writer restarts the WAL from
its beginning once a checkpoint has copied all of it.

A failing checkpoint (a full disk) is counted and logged once per run of
failures; the thread keeps going and the next commit retries.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

from mnemo_server import storage

_log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(self, connect: Callable[[], sqlite3.Connection], *, interval_s: float = 0.2) -> None:
        self._conn = connect()
        self._interval_s = interval_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        #: Checkpoints that failed since the start (a full disk, mostly).
        self.failures = 0
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Called after each commit: there is WAL to copy."""
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except Exception as exc:
                # Best effort: the WAL stays valid and the next commit retries.
                self._failed(exc)
            else:
                if self._failing:
                    self._failing = False
                    _log.info("WAL checkpoints work again")
            # Commits during the pause just set the event again.
            self._stop.wait(self._interval_s)

    def _failed(self, exc: Exception) -> None:
        """Counts a failure; logs only the first of a run of them, since on a
        full disk every commit wakes this thread to fail again."""
        self.failures += 1
        if self._failing:
            _log.debug("WAL checkpoint failed again: %s", exc)
            return
        self._failing = True
        if storage.is_disk_full(exc):
            _log.warning(
                "WAL checkpoint failed: the disk is full (%s); the WAL grows until space is freed", exc
            )
        else:
            _log.warning("WAL checkpoint failed; will retry after the next commit", exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self._conn.close()
