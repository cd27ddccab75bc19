"""WatchMemories: replay then live with no gap and no duplicate, progress,
expiry events, compaction, and slow watchers."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from mnemo.v1 import admin_service_pb2 as admin
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server.embed.base import Embedder

from ..conftest import RunningServer, error_of, make_settings, start_server


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


class Watcher:
    """Reads a watch stream on a thread into a queue."""

    def __init__(self, server: RunningServer, request: pb.WatchMemoriesRequest) -> None:
        self.call = server.memory.WatchMemories(request)
        self.items: queue.Queue[pb.WatchMemoriesResponse | grpc.RpcError] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for response in self.call:
                self.items.put(response)
        except grpc.RpcError as exc:
            self.items.put(exc)

    def next(self, timeout: float = 10) -> pb.WatchMemoriesResponse:
        item = self.items.get(timeout=timeout)
        if isinstance(item, grpc.RpcError):
            raise item
        return item

    def events(self, n: int, timeout: float = 10) -> list[pb.MemoryEvent]:
        out: list[pb.MemoryEvent] = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            response = self.next(max(0.01, deadline - time.monotonic()))
            out.extend(response.events)
        return out

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(5)


def add(server: RunningServer, uid: str, content: str, **fields: object) -> m.Memory:
    return server.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content=content, **fields))
    ).memory  # type: ignore[arg-type]


def test_live_events_for_every_kind_of_change(server: RunningServer) -> None:
    uid = user()
    watcher = Watcher(server, pb.WatchMemoriesRequest(scope=m.Scope(user_id=uid)))
    try:
        assert watcher.next().progress_notification
        created = add(server, uid, "first")
        add(server, user(), "someone else's")
        server.memory.UpdateMemory(
            pb.UpdateMemoryRequest(
                memory=m.Memory(id=created.id, content="second"),
                update_mask=field_mask_pb2.FieldMask(paths=["content"]),
            )
        )
        server.memory.DeleteMemory(pb.DeleteMemoryRequest(id=created.id))
        events = watcher.events(3)
        assert [(e.type, e.memory_id) for e in events] == [
            (pb.EVENT_TYPE_PUT, created.id),
            (pb.EVENT_TYPE_PUT, created.id),
            (pb.EVENT_TYPE_DELETE, created.id),
        ]
        assert [e.memory.content for e in events] == ["first", "second", ""]
        assert events[2].memory.user_id == uid
        revisions = [e.revision for e in events]
        assert revisions == sorted(revisions) and revisions[0] == created.revision
    finally:
        watcher.close()


def test_resume_from_a_revision_has_no_gap_and_no_duplicate_while_writes_continue(
    server: RunningServer,
) -> None:
    uid = user()
    first = add(server, uid, "m0")
    stop = threading.Event()
    written: list[int] = [first.revision]

    def writer() -> None:
        i = 1
        while not stop.is_set() and i < 60:
            written.append(add(server, uid, f"m{i}").revision)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.2)
    watcher = Watcher(
        server, pb.WatchMemoriesRequest(scope=m.Scope(user_id=uid), start_revision=first.revision - 1)
    )
    try:
        thread.join(60)
        seen: list[int] = []
        deadline = time.monotonic() + 20
        while len(seen) < len(written) and time.monotonic() < deadline:
            response = watcher.next()
            seen.extend(e.revision for e in response.events)
        assert seen == written  # every write, in order, exactly once
    finally:
        stop.set()
        watcher.close()


def test_filters_and_event_types_and_progress(server: RunningServer) -> None:
    uid = user()
    watcher = Watcher(
        server,
        pb.WatchMemoriesRequest(
            scope=m.Scope(user_id=uid),
            filter='tags:"keep"',
            event_types=[pb.EVENT_TYPE_PUT],
            progress_interval=duration_pb2.Duration(nanos=200_000_000),
        ),
    )
    try:
        start = watcher.next()
        assert start.progress_notification
        dropped = add(server, uid, "not tagged")
        kept = add(server, uid, "tagged", tags=["keep"])
        server.memory.DeleteMemory(pb.DeleteMemoryRequest(id=kept.id))
        [event] = watcher.events(1)
        assert event.memory_id == kept.id
        progress = watcher.next(timeout=5)
        assert progress.progress_notification and not progress.events
        assert progress.revision >= kept.revision + 1 > dropped.revision
    finally:
        watcher.close()


def test_expiry_hides_at_once_and_emits_an_expired_event(server: RunningServer) -> None:
    uid = user()
    watcher = Watcher(server, pb.WatchMemoriesRequest(scope=m.Scope(user_id=uid)))
    try:
        watcher.next()
        memory = server.memory.CreateMemory(
            pb.CreateMemoryRequest(
                memory=m.Memory(user_id=uid, content="a fleeting thought"),
                ttl=duration_pb2.Duration(nanos=300_000_000),
            )
        ).memory
        time.sleep(0.35)
        assert not server.memory.SearchMemories(
            pb.SearchMemoriesRequest(query="a fleeting thought", scope=m.Scope(user_id=uid))
        ).hits
        put, expired = watcher.events(2, timeout=10)
        assert (put.type, expired.type) == (pb.EVENT_TYPE_PUT, pb.EVENT_TYPE_EXPIRED)
        assert expired.memory_id == memory.id and not expired.memory.content
    finally:
        watcher.close()


def test_bad_watch_requests(server: RunningServer) -> None:
    for request, reason in [
        (pb.WatchMemoriesRequest(filter="user_id ="), "INVALID_FILTER"),
        (pb.WatchMemoriesRequest(start_revision=-1), "INVALID_ARGUMENT"),
        (pb.WatchMemoriesRequest(event_types=[9]), "INVALID_ENUM_VALUE"),  # type: ignore[list-item]
        (pb.WatchMemoriesRequest(progress_interval=duration_pb2.Duration(nanos=1000)), "INVALID_ARGUMENT"),
    ]:
        with pytest.raises(grpc.RpcError) as err:
            next(iter(server.memory.WatchMemories(request)))
        assert error_of(err.value)[:2] == (grpc.StatusCode.INVALID_ARGUMENT, reason)


def test_a_revision_ahead_of_the_store_fails_with_the_current_revision(server: RunningServer) -> None:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    latest = add(server, user(), "the latest write").revision
    ahead = pb.WatchMemoriesRequest(scope=m.Scope(user_id=user()), start_revision=latest + 1000)
    with pytest.raises(grpc.RpcError) as err:
        next(iter(server.memory.WatchMemories(ahead, timeout=10)))
    assert error_of(err.value)[:2] == (grpc.StatusCode.OUT_OF_RANGE, "REVISION_AHEAD")
    info = error_details_pb2.ErrorInfo()
    next(d for d in rpc_status.from_call(err.value).details if d.Is(info.DESCRIPTOR)).Unpack(info)  # type: ignore[arg-type, union-attr]
    assert int(info.metadata["current_revision"]) >= latest
    # The store's latest revision itself is a valid start: nothing to replay, then live.
    at = pb.WatchMemoriesRequest(scope=m.Scope(user_id=user()), start_revision=latest)
    assert next(iter(server.memory.WatchMemories(at, timeout=10))).progress_notification


@pytest.fixture
def small_server(tmp_path: Path, embedder: Embedder) -> Iterator[RunningServer]:
    """A server with a tiny watch buffer and a feed that compacts at once."""
    running = start_server(
        make_settings(
            tmp_path,
            lifecycle={"watch_buffer": 5, "feed_retention_s": 0.001},
            server={"sweep_interval_s": 0.1},
        ),
        embedder,
    )
    yield running
    running.stop()


def test_a_compacted_revision_fails_with_the_oldest_revision(small_server: RunningServer) -> None:
    uid = user()
    first = add(small_server, uid, "old")
    add(small_server, uid, "newer")
    small_server.admin.CreateSnapshot(admin.CreateSnapshotRequest())
    time.sleep(0.5)  # upkeep compacts entries older than 1 ms up to the snapshot
    with pytest.raises(grpc.RpcError) as err:
        next(iter(small_server.memory.WatchMemories(pb.WatchMemoriesRequest(start_revision=first.revision))))
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    assert error_of(err.value)[:2] == (grpc.StatusCode.OUT_OF_RANGE, "REVISION_COMPACTED")
    info = error_details_pb2.ErrorInfo()
    next(d for d in rpc_status.from_call(err.value).details if d.Is(info.DESCRIPTOR)).Unpack(info)  # type: ignore[arg-type, union-attr]
    assert int(info.metadata["oldest_revision"]) >= first.revision + 1
    stats = small_server.admin.GetStats(admin.GetStatsRequest())
    assert stats.oldest_revision == int(info.metadata["oldest_revision"])


def test_a_slow_watcher_is_told_to_resume_and_never_blocks_writers(small_server: RunningServer) -> None:
    uid = user()
    call = small_server.memory.WatchMemories(pb.WatchMemoriesRequest(scope=m.Scope(user_id=uid)))
    stream = iter(call)
    assert next(stream).progress_notification
    started = time.monotonic()
    small_server.memory.BatchWriteMemories(
        pb.BatchWriteMemoriesRequest(
            operations=[
                pb.WriteOperation(
                    create=pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content=f"burst {i}"))
                )
                for i in range(50)
            ]
        )
    )
    assert time.monotonic() - started < 10
    with pytest.raises(grpc.RpcError) as err:
        for _ in stream:
            pass
    assert error_of(err.value)[:2] == (grpc.StatusCode.ABORTED, "WATCH_TOO_SLOW")


@pytest.fixture
def fresh_server(tmp_path: Path, embedder: Embedder) -> Iterator[RunningServer]:
    running = start_server(make_settings(tmp_path), embedder)
    yield running
    running.stop()


def test_start_revision_zero_replays_the_whole_log_and_unset_is_live(fresh_server: RunningServer) -> None:
    uid = user()
    first = add(fresh_server, uid, "one")
    add(fresh_server, uid, "two")
    everything = Watcher(fresh_server, pb.WatchMemoriesRequest(start_revision=0))
    live = Watcher(fresh_server, pb.WatchMemoriesRequest())
    try:
        assert first.revision == 1
        assert [e.memory.content for e in everything.events(2)] == ["one", "two"]
        assert live.next().progress_notification
        with pytest.raises(queue.Empty):
            live.next(timeout=0.5)  # nothing is replayed to a live watcher
    finally:
        everything.close()
        live.close()
