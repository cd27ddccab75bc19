"""Several server processes on one store: `--workers N` (docs/operations.md).

- counters.py: the shared counters in the data directory (the latest committed
  revision, the API-key generation) that let a process see in nanoseconds
  whether another one wrote;
- leader.py: the lock that makes one process of the fleet run the background
  work (expiry, retention, compaction, snapshots, resumed extraction jobs);
- pg_signal.py, pg_leader.py: the same two roles for replicas that share a
  PostgreSQL database and nothing else (LISTEN/NOTIFY, an advisory lock);
- supervisor.py: the parent process that starts, restarts and stops the
  workers; metrics.py: its HTTP port, which sums the workers' health and
  labels their metrics by worker.

The environment variable `MNEMO_FLEET_WORKER` (set by the supervisor for each
child, never by hand) marks a process as worker i of a fleet; the worker
reports "serving" and "draining" on the pipe `MNEMO_FLEET_STATE_FD` names.
"""

from __future__ import annotations

import contextlib
import os

#: Set by the supervisor in each worker's environment: the worker's number.
WORKER_ENV = "MNEMO_FLEET_WORKER"
#: And the descriptor of a pipe to it, on which the worker reports its state.
STATE_FD_ENV = "MNEMO_FLEET_STATE_FD"


def report(state: str) -> None:
    """Tells the supervisor this worker's state ("serving", "draining"); no-op alone."""
    value = os.environ.get(STATE_FD_ENV, "")
    if value.isdigit():
        # OSError: the supervisor is gone, and this process is about to get SIGTERM.
        with contextlib.suppress(OSError):
            os.write(int(value), f"{state}\n".encode())


def worker_index() -> int | None:
    """This process's number in a fleet, or None when it runs alone."""
    value = os.environ.get(WORKER_ENV, "")
    return int(value) if value.isdigit() else None
