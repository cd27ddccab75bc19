"""The audit log: one JSON line per write, forget and admin call. Imports no grpc.

A record says who (key id, tenant), what (the RPC and the ids it targeted),
how it ended (gRPC code and reason) and when, with the request id that ties
it to the server's log. It never holds memory content, metadata, tags or
secrets: an audit log is kept longer and read by more people than the data.
Calls refused before they ran (no key, wrong role, rate limited) are
recorded too.
"""

from __future__ import annotations

import datetime
import json
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

#: Ids recorded per call at most; `target_count` says how many there were.
MAX_TARGET_IDS = 1000


class AuditLog:
    """Appends records to a file, or to stdout for "-"; thread-safe."""

    def __init__(self, path: str) -> None:
        self._own = path != "-"
        self._out: IO[str] = (
            Path(path).expanduser().open("a", encoding="utf-8", buffering=1) if self._own else sys.stdout
        )
        self._lock = threading.Lock()

    def record(
        self,
        *,
        rpc: str,
        key_id: str,
        tenant: str,
        request_id: str,
        code: str,
        reason: str = "",
        target_ids: Sequence[str] = (),
        peer: str = "",
        extra: dict[str, Any] | None = None,
    ) -> None:
        entry: dict[str, Any] = {
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds"),
            "rpc": rpc,
            "key_id": key_id,
            "tenant": tenant,
            "request_id": request_id,
            "code": code,
            "reason": reason,
            "target_ids": list(target_ids[:MAX_TARGET_IDS]),
            "target_count": len(target_ids),
            "peer": peer,
        }
        if extra:
            entry.update(extra)
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._lock:
            self._out.write(line)
            self._out.flush()

    def close(self) -> None:
        if self._own:
            with self._lock:
                self._out.close()
