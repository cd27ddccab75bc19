"""Streams and bulk work against the real server: ExportMemories, ImportMemories
and their JSON Lines helpers, DeleteMemories, WatchMemories (with resuming after
the server restarts) and ReembedMemories; the watch iterator's resume logic
against a feed that drops it on purpose."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import KeepOpen, Server, start_server
from sdk_fakes import FeedServicer, event, serve, status

from mnemo import EventType, ImportConflictPolicy, MnemoClient, RetryPolicy
from mnemo.errors import InvalidArgumentError, NotFoundError, UnavailableError

FAST = RetryPolicy(max_attempts=4, initial_backoff=0.05, max_backoff=0.2)
QUICK_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 300)]


def seed(client: MnemoClient, user: str, n: int = 3) -> list[str]:
    return [
        client.create(f"fact number {i}", user_id=user, tags=[f"t{i}"], metadata={"i": i}).memory.id
        for i in range(n)
    ]


def test_export_then_forget_then_import_restores_the_memories(client: MnemoClient, user: str) -> None:
    ids = seed(client, user)
    stream = client.export(user_id=user)
    header = stream.header
    assert header.format_version == 1 and header.embedding_model == "all-MiniLM-L6-v2"
    assert header.dimension == 384 and header.revision > 0 and header.export_time is not None
    memories = list(stream)
    assert sorted(m.id for m in memories) == sorted(ids)
    assert all(m.embedding is not None and len(m.embedding) == 384 for m in memories)

    gone = client.delete_memories(user_id=user)
    assert gone.deleted_count == 3 and sorted(gone.memory_ids) == sorted(ids) and gone.revision > 0
    assert list(client.iter_memories(user_id=user)) == []

    result = client.import_memories(memories, header=header)
    assert (result.imported_count, result.skipped_count, result.failed_count) == (3, 0, 0)
    assert result.reembedded_count == 0  # same model: the exported embeddings are reused
    restored = {m.id: m for m in client.iter_memories(user_id=user)}
    assert sorted(restored) == sorted(ids)
    assert restored[ids[1]].metadata == {"i": 1} and restored[ids[1]].tags == ("t1",)
    assert client.search("fact number 2", user_id=user, top_k=1).hits[0].memory.id == ids[2]

    again = client.import_memories(memories, header=header)
    assert again.skipped_count == 3 and again.imported_count == 0
    failed = client.import_memories(memories[:1], header=header, on_conflict=ImportConflictPolicy.FAIL)
    assert failed.failed_count == 1 and failed.failures[0].memory_id == memories[0].id
    assert failed.failures[0].error.reason == "MEMORY_ALREADY_EXISTS"


def test_import_without_embeddings_reembeds(client: MnemoClient, user: str) -> None:
    seed(client, user, 2)
    stream = client.export(user_id=user, omit_embeddings=True)
    memories = list(stream)
    assert all(m.embedding is None for m in memories)
    client.delete_memories(user_id=user)
    result = client.import_memories([m.raw for m in memories], force_reembed=True)
    assert result.imported_count == 2 and result.reembedded_count == 2


def test_an_import_with_a_bad_header_fails(client: MnemoClient) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        client.import_memories([], header={"formatVersion": 99})
    assert err.value.reason == "UNSUPPORTED_FORMAT_VERSION"


def test_jsonl_files_round_trip_with_a_progress_bar(
    client: MnemoClient, user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = seed(client, user, 4)
    path = tmp_path / "export.jsonl"
    assert client.export_jsonl(path, user_id=user, progress=True) == 4
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert list(lines[0]) == ["header"] and all(list(x) == ["memory"] for x in lines[1:])
    assert sorted(x["memory"]["id"] for x in lines[1:]) == sorted(ids)
    assert lines[1]["memory"]["metadata"]["i"]["intValue"] in {"0", "1", "2", "3"}
    client.delete_memories(user_id=user)
    result = client.import_jsonl(path, progress=True)
    assert result.imported_count == 4
    err = capsys.readouterr().err
    assert "exported 4" in err and "imported [" in err and "4/4" in err
    assert sorted(m.id for m in client.iter_memories(user_id=user)) == sorted(ids)


def test_forget_leaves_no_trace_and_dry_run_deletes_nothing(client: MnemoClient, user: str) -> None:
    ids = seed(client, user)
    client.update(ids[0], content="changed")
    dry = client.delete_memories(user_id=user, filter='tags:"t0"', dry_run=True)
    assert dry.deleted_count == 1 and dry.memory_ids == (ids[0],) and dry.revision == 0
    assert len(list(client.iter_memories(user_id=user))) == 3
    done = client.delete_memories(user_id=user)
    assert done.deleted_count == 3
    with pytest.raises(NotFoundError):
        client.history(ids[0])
    assert client.search("fact number", user_id=user).hits == ()
    with pytest.raises(InvalidArgumentError) as err:
        client.delete_memories()
    assert err.value.reason == "SCOPE_REQUIRED"


def test_watch_replays_from_a_revision_then_goes_live(client: MnemoClient, user: str) -> None:
    first = client.create("before the watch", user_id=user).memory
    updated = client.update(first.id, tags=["x"])
    with client.watch(user_id=user, start_revision=first.revision - 1) as watch:
        replayed = [next(watch), next(watch)]
        assert [(e.type, e.revision) for e in replayed] == [
            (EventType.PUT, first.revision),
            (EventType.PUT, updated.revision),
        ]
        assert replayed[1].memory is not None and replayed[1].memory.tags == ("x",)
        assert watch.revision == updated.revision

        live: list[Any] = []
        reader = threading.Thread(target=lambda: live.append(next(watch)))
        reader.start()
        second = client.create("during the watch", user_id=user).memory
        client.create("someone else's", user_id=user + "-other")
        reader.join(10)
        assert [(e.memory_id, e.memory.content) for e in live] == [(second.id, "during the watch")]
        client.delete(second.id)
        deleted = next(watch)
        assert (deleted.type, deleted.memory_id) == (EventType.DELETE, second.id)
        assert watch.revision == deleted.revision


def test_watch_filters_by_event_type(client: MnemoClient, user: str) -> None:
    m = client.create("short", user_id=user).memory
    client.delete(m.id)
    with client.watch(user_id=user, start_revision=m.revision - 1, event_types=["delete"]) as watch:
        assert next(watch).type is EventType.DELETE


@pytest.fixture
def own_server(tmp_path: Path, embedder: Any) -> Iterator[list[Server]]:
    servers = [start_server(tmp_path / "data", KeepOpen(embedder))]
    yield servers
    servers[-1].stop()


def test_watch_resumes_after_the_server_restarts(own_server: list[Server], user: str) -> None:
    address = own_server[0].address
    with MnemoClient(address, retry=FAST, channel_options=QUICK_RECONNECT) as client:
        m0 = client.create("the first revision", user_id=user + "-other").memory
        m1 = client.create("before the restart", user_id=user).memory
        # Revision 0 means "from now on", so replay from the first write on.
        watch = client.watch(user_id=user, start_revision=m0.revision)
        assert next(watch).memory_id == m1.id
        seen: list[Any] = []
        reader = threading.Thread(target=lambda: seen.extend(next(watch) for _ in range(2)))
        reader.start()

        own_server[0].stop()
        time.sleep(0.3)
        own_server.append(start_server(own_server[0].data_dir, own_server[0].app._given_embedder, address))
        m2 = client.create("after the restart", user_id=user).memory
        m3 = client.create("and another one", user_id=user).memory
        reader.join(30)
        watch.close()
    assert [e.memory_id for e in seen] == [m2.id, m3.id]


def feed_client(scripts: list[Any]) -> tuple[Any, FeedServicer, MnemoClient]:
    feed = FeedServicer(scripts)
    server, port = serve(feed)
    return server, feed, MnemoClient(f"127.0.0.1:{port}", retry=FAST)


def test_watch_resumes_from_the_last_revision_seen_after_a_disconnect() -> None:
    from mnemo.v1 import memory_service_pb2 as pb

    server, feed, client = feed_client(
        [
            (
                [
                    pb.WatchMemoriesResponse(revision=10, progress_notification=True),
                    pb.WatchMemoriesResponse(events=[event(11, "a"), event(12, "b")], revision=12),
                ],
                status("UNAVAILABLE", "SERVER_DRAINING", retry_after=0.05),
            ),
            (
                [
                    pb.WatchMemoriesResponse(events=[event(13, "c")], revision=13),
                    pb.WatchMemoriesResponse(revision=20, progress_notification=True),
                ],
                status("ABORTED", "WATCH_TOO_SLOW", metadata={"resume_revision": "25"}),
            ),
            ([pb.WatchMemoriesResponse(events=[event(26, "d")], revision=26)], None),
        ]
    )
    try:
        with client.watch() as watch:
            got = [next(watch).memory_id for _ in range(4)]
            assert got == ["a", "b", "c", "d"] and watch.revision == 26
        assert feed.starts == [0, 12, 25]
    finally:
        client.close()
        server.stop(0)


def test_watch_without_reconnect_raises_and_other_errors_always_raise() -> None:
    from mnemo.v1 import memory_service_pb2 as pb

    server, _, client = feed_client(
        [
            (
                [pb.WatchMemoriesResponse(events=[event(1, "a")], revision=1)],
                status("UNAVAILABLE", "SERVER_DRAINING"),
            ),
            ([], status("OUT_OF_RANGE", "REVISION_COMPACTED", metadata={"oldest_revision": "50"})),
        ]
    )
    try:
        watch = client.watch(reconnect=False)
        assert next(watch).memory_id == "a"
        with pytest.raises(UnavailableError):
            next(watch)
        with pytest.raises(Exception) as err:
            next(client.watch(start_revision=3))
        assert getattr(err.value, "reason", "") == "REVISION_COMPACTED"
        assert err.value.metadata["oldest_revision"] == "50"  # type: ignore[attr-defined]
    finally:
        client.close()
        server.stop(0)


def test_reembed_reports_progress_until_done(client: MnemoClient, user: str) -> None:
    seed(client, user, 2)
    dry = list(client.reembed(user_id=user, force=True, dry_run=True))
    assert dry[-1].done and dry[-1].total_count == 2
    progress = list(client.reembed(user_id=user, force=True))
    assert progress[-1].done and progress[-1].reembedded_count == 2
    assert progress[-1].embedding_model == "all-MiniLM-L6-v2"
