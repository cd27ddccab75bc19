"""Forgetting a user leaves no trace; export and import round-trip; retention."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2

from mnemo.v1 import admin_service_pb2 as admin
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server.embed.base import Embedder

from ..conftest import RunningServer, error_of, make_settings, start_server

FACTS = [
    "Dana's sister is called Mia",
    "Dana is training for a marathon in October",
    "Dana prefers vegetarian restaurants",
    "Dana's laptop password hint is 'the blue door'",
]


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def seed(server: RunningServer, uid: str, facts: list[str] = FACTS) -> list[m.Memory]:
    response = server.memory.BatchWriteMemories(
        pb.BatchWriteMemoriesRequest(
            operations=[
                pb.WriteOperation(
                    create=pb.CreateMemoryRequest(
                        memory=m.Memory(
                            user_id=uid, content=f, tags=["t"], metadata={"i": m.Value(int_value=i)}
                        )
                    )
                )
                for i, f in enumerate(facts)
            ]
        )
    )
    return [r.create.memory for r in response.results]


def test_forgetting_a_user_leaves_no_trace_in_any_rpc(server: RunningServer) -> None:
    dana, other = user(), user()
    memories = seed(server, dana)
    kept = seed(server, other, ["Dana's colleague likes tea"])[0]
    linker = server.memory.CreateMemory(
        pb.CreateMemoryRequest(
            memory=m.Memory(
                user_id=other,
                content="refers to Dana",
                links=[m.MemoryLink(target_id=memories[0].id, relation="about")],
            )
        )
    )
    server.memory.UpdateMemory(
        pb.UpdateMemoryRequest(
            memory=m.Memory(id=memories[1].id, content="Dana is training for a half marathon"),
            update_mask=field_mask_pb2.FieldMask(paths=["content"]),
        )
    )
    start = server.admin.GetStats(admin.GetStatsRequest()).revision

    dry = server.memory.DeleteMemories(pb.DeleteMemoriesRequest(scope=m.Scope(user_id=dana), dry_run=True))
    assert dry.deleted_count == 4 and sorted(dry.memory_ids) == sorted(x.id for x in memories)
    assert dry.revision == 0 and server.admin.GetStats(admin.GetStatsRequest()).revision == start

    gone = server.memory.DeleteMemories(pb.DeleteMemoriesRequest(scope=m.Scope(user_id=dana)))
    assert gone.deleted_count == 4 and gone.revision > start

    secrets = [f.split()[-1] for f in FACTS] + ["marathon", "blue door"]
    for memory in memories:
        for call in (
            lambda: server.memory.GetMemory(pb.GetMemoryRequest(id=memory.id)),
            lambda: server.memory.GetMemoryHistory(pb.GetMemoryHistoryRequest(id=memory.id)),
        ):
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert error_of(err.value)[1] == "MEMORY_NOT_FOUND"
    assert not server.memory.ListMemories(pb.ListMemoriesRequest(scope=m.Scope(user_id=dana))).memories
    for fact in FACTS:
        hits = server.memory.SearchMemories(pb.SearchMemoriesRequest(query=fact, top_k=100)).hits
        assert all(h.memory.user_id != dana for h in hits)
    exported = list(server.memory.ExportMemories(pb.ExportMemoriesRequest()))
    text = str(exported)
    assert not any(s in text for s in secrets) and kept.id in text
    replay = server.memory.WatchMemories(
        pb.WatchMemoriesRequest(start_revision=start - 40 if start > 40 else 1)
    )
    seen = []
    for response in replay:
        if response.progress_notification:
            break
        seen.extend(response.events)
    replayed = str(seen)
    assert not any(s in replayed for s in secrets)
    assert {e.memory_id for e in seen if e.type == pb.EVENT_TYPE_DELETE} >= {x.id for x in memories}
    after = server.memory.GetMemory(pb.GetMemoryRequest(id=linker.memory.id)).memory
    assert list(after.links) == []


def test_forgetting_needs_a_scope_or_filter_and_takes_a_filter(server: RunningServer) -> None:
    with pytest.raises(grpc.RpcError) as err:
        server.memory.DeleteMemories(pb.DeleteMemoriesRequest())
    assert error_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "SCOPE_REQUIRED", ["scope"])
    uid = user()
    seed(server, uid)
    gone = server.memory.DeleteMemories(
        pb.DeleteMemoriesRequest(scope=m.Scope(user_id=uid), filter="metadata.i >= 2")
    )
    assert gone.deleted_count == 2
    left = server.memory.ListMemories(pb.ListMemoriesRequest(scope=m.Scope(user_id=uid))).memories
    assert sorted(x.metadata["i"].int_value for x in left) == [0, 1]


@pytest.fixture
def empty_server(tmp_path: Path, embedder: Embedder) -> Iterator[RunningServer]:
    running = start_server(make_settings(tmp_path), embedder)
    yield running
    running.stop()


def test_export_then_import_into_an_empty_server_gives_the_same_search_results(
    server: RunningServer, empty_server: RunningServer
) -> None:
    uid = user()
    memories = seed(server, uid)
    server.memory.CreateMemory(
        pb.CreateMemoryRequest(
            memory=m.Memory(
                user_id=uid,
                content="links back",
                pinned=True,
                kind=m.MEMORY_KIND_PROCEDURAL,
                links=[m.MemoryLink(target_id=memories[2].id, relation="see", weight=1.5)],
            )
        )
    )
    exported = list(server.memory.ExportMemories(pb.ExportMemoriesRequest(scope=m.Scope(user_id=uid))))
    header = exported[0].header
    assert (
        header.format_version == 1
        and header.embedding_model == "all-MiniLM-L6-v2"
        and header.dimension == 384
    )
    assert len(exported) == 6 and all(len(x.memory.embedding) == 384 for x in exported[1:])

    def stream() -> Iterator[pb.ImportMemoriesRequest]:
        yield pb.ImportMemoriesRequest(header=header)
        for item in exported[1:]:
            yield pb.ImportMemoriesRequest(memory=item.memory)

    report = empty_server.memory.ImportMemories(stream())
    assert (report.imported_count, report.reembedded_count, report.failed_count) == (5, 0, 0)
    again = empty_server.memory.ImportMemories(stream())
    assert (again.imported_count, again.skipped_count) == (0, 5)

    queries = ["who is Dana's sister?", "sports plans", "food preferences", "password"]
    for query in queries:
        request = pb.SearchMemoriesRequest(query=query, scope=m.Scope(user_id=uid), top_k=5)
        before = [(h.memory.id, round(h.score, 5)) for h in server.memory.SearchMemories(request).hits]
        after = [(h.memory.id, round(h.score, 5)) for h in empty_server.memory.SearchMemories(request).hits]
        assert after == before
    original = {x.memory.id: x.memory for x in exported[1:]}
    for item in empty_server.memory.ExportMemories(pb.ExportMemoriesRequest()):
        if item.HasField("memory"):
            source = original[item.memory.id]
            for field in (
                "content",
                "tags",
                "metadata",
                "kind",
                "pinned",
                "create_time",
                "user_id",
                "embedding",
            ):
                assert getattr(item.memory, field) == getattr(source, field), field
            assert [(link.target_id, link.relation) for link in item.memory.links] == [
                (link.target_id, link.relation) for link in source.links
            ]


def test_import_reembeds_other_models_and_reports_failures(empty_server: RunningServer) -> None:
    header = pb.ExportHeader(format_version=1, embedding_model="some-other-model", dimension=3)

    def stream() -> Iterator[pb.ImportMemoriesRequest]:
        yield pb.ImportMemoriesRequest(options=pb.ImportOptions(on_conflict=pb.IMPORT_CONFLICT_POLICY_FAIL))
        yield pb.ImportMemoriesRequest(header=header)
        yield pb.ImportMemoriesRequest(
            memory=m.Memory(id="a", user_id="x", content="hello", embedding=[1, 0, 0])
        )
        yield pb.ImportMemoriesRequest(memory=m.Memory(id="b", user_id="x", content=""))
        yield pb.ImportMemoriesRequest(memory=m.Memory(id="c", user_id="x", content="bad kind", kind=99))
        yield pb.ImportMemoriesRequest(memory=m.Memory(id="a", user_id="x", content="dup"))

    report = empty_server.memory.ImportMemories(stream())
    assert (report.imported_count, report.reembedded_count, report.failed_count) == (1, 1, 3)
    failures = sorted((f.index, f.memory_id, f.status.code) for f in report.failures)
    invalid, exists = grpc.StatusCode.INVALID_ARGUMENT.value[0], grpc.StatusCode.ALREADY_EXISTS.value[0]
    assert failures == [(1, "b", invalid), (2, "c", invalid), (3, "a", exists)]
    memory = empty_server.memory.GetMemory(
        pb.GetMemoryRequest(
            id="a", read_mask=field_mask_pb2.FieldMask(paths=["embedding", "embedding_model"])
        )
    ).memory
    assert memory.embedding_model == "all-MiniLM-L6-v2" and len(memory.embedding) == 384


def test_import_needs_a_known_header_first(empty_server: RunningServer) -> None:
    for messages, reason in [
        ([pb.ImportMemoriesRequest(memory=m.Memory(user_id="x", content="y"))], "IMPORT_HEADER_REQUIRED"),
        ([pb.ImportMemoriesRequest(header=pb.ExportHeader(format_version=7))], "UNSUPPORTED_FORMAT_VERSION"),
    ]:
        with pytest.raises(grpc.RpcError) as err:
            empty_server.memory.ImportMemories(iter(messages))
        assert error_of(err.value)[:2] == (grpc.StatusCode.INVALID_ARGUMENT, reason)


@pytest.fixture
def retention_server(tmp_path: Path, embedder: Embedder) -> Iterator[RunningServer]:
    running = start_server(
        make_settings(
            tmp_path,
            server={"sweep_interval_s": 0.2},
            lifecycle={
                "retention": [
                    {"user_id": "capped", "max_count": 2},
                    {"user_id": "recent", "max_count": 2, "eviction": "least_recently_retrieved"},
                    {"user_id": "aged", "max_age_s": 0.5},
                ],
            },
        ),
        embedder,
    )
    yield running
    running.stop()


def wait_for(predicate: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def contents(server: RunningServer, uid: str) -> list[str]:
    listed = server.memory.ListMemories(
        pb.ListMemoriesRequest(scope=m.Scope(user_id=uid), order_by="create_time")
    )
    return [x.content for x in listed.memories]


def test_retention_policies_evict_and_spare_pinned_memories(retention_server: RunningServer) -> None:
    s = retention_server
    policies = s.admin.GetStats(admin.GetStatsRequest()).retention_policies
    assert [(p.scope.user_id, p.max_count, p.eviction_order) for p in policies] == [
        ("capped", 2, admin.EVICTION_ORDER_OLDEST),
        ("recent", 2, admin.EVICTION_ORDER_LEAST_RECENTLY_RETRIEVED),
        ("aged", 0, admin.EVICTION_ORDER_OLDEST),
    ]
    assert policies[2].max_age.ToMilliseconds() == 500
    s.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(user_id="capped", content="pinned", pinned=True))
    )
    for i in range(4):
        s.memory.CreateMemory(pb.CreateMemoryRequest(memory=m.Memory(user_id="capped", content=f"c{i}")))
    wait_for(lambda: contents(s, "capped") == ["pinned", "c2", "c3"])

    for i in range(2):
        s.memory.CreateMemory(
            pb.CreateMemoryRequest(memory=m.Memory(user_id="recent", content=f"apple pie {i}"))
        )
    s.memory.SearchMemories(
        pb.SearchMemoriesRequest(query="apple pie 0", scope=m.Scope(user_id="recent"), top_k=1)
    )
    time.sleep(0.5)  # the retrieval time is flushed by upkeep
    s.memory.CreateMemory(pb.CreateMemoryRequest(memory=m.Memory(user_id="recent", content="banana bread")))
    wait_for(lambda: sorted(contents(s, "recent")) == ["apple pie 0", "banana bread"])

    s.memory.CreateMemory(pb.CreateMemoryRequest(memory=m.Memory(user_id="aged", content="old news")))
    s.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(user_id="aged", content="kept", pinned=True))
    )
    wait_for(lambda: contents(s, "aged") == ["kept"])


def test_reembed_replaces_vectors_from_other_models(empty_server: RunningServer) -> None:
    s = empty_server
    s.memory.CreateMemory(
        pb.CreateMemoryRequest(
            memory=m.Memory(
                id="old",
                user_id="r",
                content="the weather is sunny",
                embedding=[1.0] + [0.0] * 383,
                embedding_model="old-model",
            )
        )
    )
    s.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(id="new", user_id="r", content="already current"))
    )
    dry = list(s.admin.ReembedMemories(admin.ReembedMemoriesRequest(dry_run=True)))
    assert dry[-1].done and dry[-1].total_count == 1 and dry[-1].reembedded_count == 0
    progress = list(s.admin.ReembedMemories(admin.ReembedMemoriesRequest(scope=m.Scope(user_id="r"))))
    assert progress[-1].done and (progress[-1].total_count, progress[-1].reembedded_count) == (1, 1)
    memory = s.memory.GetMemory(
        pb.GetMemoryRequest(
            id="old", read_mask=field_mask_pb2.FieldMask(paths=["embedding_model", "version"])
        )
    ).memory
    assert memory.embedding_model == "all-MiniLM-L6-v2" and memory.version == 2
    hits = s.memory.SearchMemories(
        pb.SearchMemoriesRequest(query="sunny weather", scope=m.Scope(user_id="r"))
    ).hits
    assert hits[0].memory.id == "old" and hits[0].score > 0.5
    forced = list(s.admin.ReembedMemories(admin.ReembedMemoriesRequest(force=True)))
    assert forced[-1].reembedded_count == 2


def test_forgetting_a_scope_erases_what_it_deleted_and_expired_before(server: RunningServer) -> None:
    dana = user()
    start = server.admin.GetStats(admin.GetStatsRequest()).revision
    deleted, expiring, live = seed(server, dana, ["old PIN is 4711", "locker code 1234", "live Dana fact"])
    server.memory.DeleteMemory(pb.DeleteMemoryRequest(id=deleted.id))
    server.memory.UpdateMemory(
        pb.UpdateMemoryRequest(
            memory=m.Memory(id=expiring.id),
            ttl={"nanos": 1_000_000},
            update_mask=field_mask_pb2.FieldMask(paths=["expire_time"]),
        )
    )
    # The id of the deleted memory lives on for another user: theirs stays.
    other = user()
    reused = server.memory.CreateMemory(
        pb.CreateMemoryRequest(
            memory=m.Memory(id=deleted.id, user_id=other, content="someone else holds it now")
        )
    ).memory

    def replay() -> str:
        seen = []
        for response in server.memory.WatchMemories(pb.WatchMemoriesRequest(start_revision=start)):
            if response.progress_notification:
                break
            seen.extend(response.events)
        return str(seen)

    deadline = time.monotonic() + 30
    while "EVENT_TYPE_EXPIRE" not in replay():  # the sweeper logs the expiry
        assert time.monotonic() < deadline, "the memory never expired"
        time.sleep(0.2)
    assert "PIN is 4711" in replay() and "locker code" in replay()
    gone = server.memory.DeleteMemories(pb.DeleteMemoriesRequest(scope=m.Scope(user_id=dana)))
    assert gone.deleted_count >= 1 and live.id in gone.memory_ids
    text = replay()
    assert "PIN" not in text and "locker" not in text and "Dana" not in text
    assert "someone else holds it now" in text
    assert "Dana" not in str(server.memory.GetMemoryHistory(pb.GetMemoryHistoryRequest(id=reused.id)))
    for memory in (expiring, live):
        with pytest.raises(grpc.RpcError) as err:
            server.memory.GetMemoryHistory(pb.GetMemoryHistoryRequest(id=memory.id))
        assert error_of(err.value)[1] == "MEMORY_NOT_FOUND"


@pytest.mark.parametrize("policy", [pb.IMPORT_CONFLICT_POLICY_SKIP, pb.IMPORT_CONFLICT_POLICY_FAIL])
def test_import_that_skips_or_fails_a_conflict_leaves_the_existing_memorys_links(
    server: RunningServer, policy: int
) -> None:
    uid = user()
    target = server.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(id=f"{uid}-t", user_id=uid, content="a target"))
    ).memory
    existing = server.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(id=f"{uid}-a", user_id=uid, content="already here"))
    ).memory

    def stream() -> Iterator[pb.ImportMemoriesRequest]:
        yield pb.ImportMemoriesRequest(options=pb.ImportOptions(on_conflict=policy))  # type: ignore[arg-type]
        yield pb.ImportMemoriesRequest(header=pb.ExportHeader(format_version=1))
        yield pb.ImportMemoriesRequest(
            memory=m.Memory(
                id=existing.id,
                user_id=uid,
                content="the imported copy",
                links=[m.MemoryLink(target_id=target.id, relation="see")],
            )
        )

    report = server.memory.ImportMemories(stream())
    assert report.imported_count == 0 and report.skipped_count + report.failed_count == 1
    after = server.memory.GetMemory(pb.GetMemoryRequest(id=existing.id)).memory
    assert (after.version, after.content, list(after.links)) == (1, "already here", [])
