"""A client that cancels a stream is not a server error: no ERROR line."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from ..server_proc import Proc

VECTOR = [1.0, 0.0, 0.0, 0.0]
# Client-supplied vectors only: the test is about streams, not the model.
NO_MODEL = (
    "--embedder-provider",
    "http",
    "--embedder-url",
    "http://127.0.0.1:9",
    "--embedder-dimension",
    "4",
)


def test_cancelled_streams_log_no_error(tmp_path: Path) -> None:
    proc = Proc(tmp_path / "data", *NO_MODEL)
    try:
        creates = [
            pb.WriteOperation(
                create=pb.CreateMemoryRequest(memory=m.Memory(user_id="u", content=f"m{i}", embedding=VECTOR))
            )
            for i in range(300)
        ]
        proc.memory.BatchWriteMemories(pb.BatchWriteMemoriesRequest(operations=creates))
        scope = m.Scope(user_id="u")
        for request in (
            pb.WatchMemoriesRequest(scope=scope),
            pb.WatchMemoriesRequest(scope=scope, start_revision=0),
        ):
            call = proc.memory.WatchMemories(request)
            next(call)
            call.cancel()
        call = proc.memory.ExportMemories(pb.ExportMemoriesRequest(scope=scope))
        next(call)
        call.cancel()

        def queries() -> Iterator[pb.StreamSearchMemoriesRequest]:
            for i in range(5):
                search = pb.SearchMemoriesRequest(vector=VECTOR, scope=scope)
                yield pb.StreamSearchMemoriesRequest(query_id=str(i), search=search)
            time.sleep(2)

        call = proc.memory.StreamSearchMemories(queries())
        next(call)
        call.cancel()
        time.sleep(1)
    finally:
        proc.popen.send_signal(signal.SIGTERM)
        proc.popen.wait(30)
        log = proc.rest_of_log()
        proc.close()
    assert "stopped" in log
    errors = [line for line in log.splitlines() if " ERROR " in line or "Traceback" in line]
    assert errors == [], log
