"""Consistency tokens on one server (SQLite by default): every read answers
with the revision it reflects, and a `min_revision` up to the store's is
honoured at once (this process applied its own writes before acknowledging
them); one ahead of the store is REVISION_AHEAD, a negative one
INVALID_ARGUMENT naming the field. Across replicas: fleet/test_consistency_tokens.py."""

from __future__ import annotations

import threading
import uuid

import grpc
import pytest

from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server.service.consistency import AppliedRevision

from ..conftest import RunningServer, error_of


def write(server: RunningServer, user: str, content: str) -> m.Memory:
    request = pb.CreateMemoryRequest(memory=m.Memory(user_id=user, content=content))
    memory: m.Memory = server.memory.CreateMemory(request).memory
    return memory


def test_every_read_carries_a_revision_and_honours_a_reached_token(server: RunningServer) -> None:
    user = f"u-{uuid.uuid4().hex[:10]}"
    first = write(server, user, "Ada keeps her bicycle in the shed")
    memory = write(server, user, "Ada's bicycle is green")
    scope = m.Scope(user_id=user)
    for token in (0, first.revision, memory.revision):
        found = server.memory.SearchMemories(
            pb.SearchMemoriesRequest(query="bicycle", scope=scope, min_revision=token)
        )
        # Its own writes are applied before they are acknowledged.
        assert found.revision >= memory.revision
        assert {first.id, memory.id} <= {h.memory.id for h in found.hits}
        got = server.memory.GetMemory(pb.GetMemoryRequest(id=memory.id, min_revision=token))
        assert got.revision >= memory.revision
        listed = server.memory.ListMemories(pb.ListMemoriesRequest(scope=scope, min_revision=token))
        assert listed.revision >= memory.revision and len(listed.memories) == 2
        batch = server.memory.BatchSearchMemories(
            pb.BatchSearchMemoriesRequest(
                requests=[pb.SearchMemoriesRequest(query="shed", scope=scope, min_revision=token)]
            )
        )
        assert batch.revision >= memory.revision and batch.results[0].revision == batch.revision
    # The same search again (a result-cache hit) carries the revision of now, not of its first answer.
    later = write(server, f"u-{uuid.uuid4().hex[:10]}", "someone else's note")
    again = server.memory.SearchMemories(pb.SearchMemoriesRequest(query="bicycle", scope=scope))
    assert again.revision >= later.revision


def test_a_token_ahead_of_the_store_is_revision_ahead_and_reads_nothing(server: RunningServer) -> None:
    user = f"u-{uuid.uuid4().hex[:10]}"
    memory = write(server, user, "a note to read back")
    ahead = memory.revision + 10**6
    calls = [
        lambda: server.memory.SearchMemories(pb.SearchMemoriesRequest(query="note", min_revision=ahead)),
        lambda: server.memory.GetMemory(pb.GetMemoryRequest(id=memory.id, min_revision=ahead)),
        lambda: server.memory.ListMemories(pb.ListMemoriesRequest(min_revision=ahead)),
        lambda: server.memory.BatchSearchMemories(
            pb.BatchSearchMemoriesRequest(
                requests=[
                    pb.SearchMemoriesRequest(query="note"),
                    pb.SearchMemoriesRequest(query="note", min_revision=ahead),
                ]
            )
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as failed:
            call()
        assert error_of(failed.value)[:2] == (grpc.StatusCode.OUT_OF_RANGE, "REVISION_AHEAD")


def test_a_negative_token_is_invalid_argument_naming_the_field(server: RunningServer) -> None:
    cases = [
        (lambda: server.memory.GetMemory(pb.GetMemoryRequest(id="x", min_revision=-1)), "min_revision"),
        (lambda: server.memory.ListMemories(pb.ListMemoriesRequest(min_revision=-5)), "min_revision"),
        (
            lambda: server.memory.SearchMemories(pb.SearchMemoriesRequest(query="q", min_revision=-1)),
            "min_revision",
        ),
        (
            lambda: server.memory.BatchSearchMemories(
                pb.BatchSearchMemoriesRequest(
                    requests=[
                        pb.SearchMemoriesRequest(query="q"),
                        pb.SearchMemoriesRequest(query="q", min_revision=-2),
                    ]
                )
            ),
            "requests[1].min_revision",
        ),
    ]
    for call, field in cases:
        with pytest.raises(grpc.RpcError) as failed:
            call()
        assert error_of(failed.value) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", [field])


def test_a_stream_query_ahead_gets_its_own_error_and_the_stream_goes_on(server: RunningServer) -> None:
    user = f"u-{uuid.uuid4().hex[:10]}"
    memory = write(server, user, "streamed notes about the garden")
    scope = m.Scope(user_id=user)
    requests = [
        pb.StreamSearchMemoriesRequest(
            query_id="ahead",
            search=pb.SearchMemoriesRequest(
                query="garden", scope=scope, min_revision=memory.revision + 10**6
            ),
        ),
        pb.StreamSearchMemoriesRequest(
            query_id="ok",
            search=pb.SearchMemoriesRequest(query="garden", scope=scope, min_revision=memory.revision),
        ),
    ]
    answers = {a.query_id: a for a in server.memory.StreamSearchMemories(iter(requests))}
    assert answers["ahead"].WhichOneof("outcome") == "error"
    assert answers["ahead"].error.code == grpc.StatusCode.OUT_OF_RANGE.value[0]
    assert answers["ok"].WhichOneof("outcome") == "result"
    assert memory.id in {h.memory.id for h in answers["ok"].result.hits}
    assert answers["ok"].result.revision >= memory.revision


def test_applied_revision_wakes_each_waiter_once_when_reached_and_never_a_cancelled_one() -> None:
    applied = AppliedRevision()
    woken: list[str] = []
    applied.when_reached(3, lambda: woken.append("3"))
    cancel = applied.when_reached(2, lambda: woken.append("cancelled"))
    applied.when_reached(5, lambda: woken.append("5"))
    cancel()
    applied.set(2)
    assert woken == [] and applied.waiting() == 2
    done = threading.Thread(target=applied.set, args=(4,))  # another thread's catch-up
    done.start()
    done.join()
    assert woken == ["3"]
    applied.set(4)  # no advance: nobody woken twice
    applied.when_reached(1, lambda: woken.append("now"))  # already reached: at once
    applied.set(9)
    assert woken == ["3", "now", "5"] and applied.waiting() == 0
