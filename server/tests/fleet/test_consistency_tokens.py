"""Consistency tokens across replicas: two `mnemo-server --store postgresql://...`
processes on loopback sharing one real PostgreSQL (tests/pg_server.py).

A read on one replica that passes another's write revision as `min_revision`
always sees the write (searches, gets, listings, in a loop, both ways); a
replica that cannot apply the revision in time (its catch-up held behind a
table lock) answers UNAVAILABLE / REVISION_NOT_REACHED with a retry hint and
answers the retry once it can; a revision the store never committed is
OUT_OF_RANGE / REVISION_AHEAD."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from ..conftest import error_of
from ..pg_server import fresh_database_url
from ..server_proc import Proc

#: Rounds of write-here, read-there (each a new memory the read must show).
ROUNDS = 40


class Pair:
    def __init__(self, root: Path) -> None:
        self.url = fresh_database_url()
        # No upkeep during a test (its catch-up would hide a replica's lag).
        flags = ("--store", self.url, "--sweep-interval-s", "600")
        self.a = Proc(root / "a", *flags)
        self.b = Proc(root / "b", *flags)

    def close(self) -> None:
        self.a.close()
        self.b.close()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    replicas = Pair(tmp_path_factory.mktemp("tokens"))
    try:
        yield replicas
    finally:
        replicas.close()


def create(proc: Proc, content: str, user: str) -> m.Memory:
    request = pb.CreateMemoryRequest(memory=m.Memory(user_id=user, content=content))
    memory: m.Memory = proc.memory.CreateMemory(request, timeout=30).memory
    return memory


def search(proc: Proc, user: str, min_revision: int, *, timeout: float = 30) -> pb.SearchMemoriesResponse:
    request = pb.SearchMemoriesRequest(
        query="who booked the meeting room", scope=m.Scope(user_id=user), top_k=100, min_revision=min_revision
    )
    response: pb.SearchMemoriesResponse = proc.memory.SearchMemories(request, timeout=timeout)
    return response


def test_a_read_with_the_writes_revision_sees_it_on_the_other_replica(pair: Pair) -> None:
    user = "ryw"
    written: list[str] = []
    for i in range(ROUNDS):
        writer, reader = (pair.a, pair.b) if i % 2 == 0 else (pair.b, pair.a)
        # The reader searched (and cached) this scope before the write.
        search(reader, user, 0)
        memory = create(writer, f"round {i}: Ada booked the meeting room", user)
        written.append(memory.id)
        token = memory.revision
        found = search(reader, user, token)
        assert found.revision >= token
        assert set(written) <= {h.memory.id for h in found.hits}, f"round {i}"
        got = reader.memory.GetMemory(pb.GetMemoryRequest(id=memory.id, min_revision=token), timeout=30)
        assert got.memory.content == memory.content and got.revision >= token
        listed = reader.memory.ListMemories(
            pb.ListMemoriesRequest(scope=m.Scope(user_id=user), page_size=100, min_revision=token), timeout=30
        )
        assert memory.id in {x.id for x in listed.memories} and listed.revision >= token
        batch = reader.memory.BatchSearchMemories(
            pb.BatchSearchMemoriesRequest(
                requests=[
                    pb.SearchMemoriesRequest(query="meeting room", scope=m.Scope(user_id=user), top_k=100),
                    pb.SearchMemoriesRequest(
                        query="Ada", scope=m.Scope(user_id=user), top_k=100, min_revision=token
                    ),
                ]
            ),
            timeout=30,
        )
        assert batch.revision >= token
        for result in batch.results:
            assert memory.id in {h.memory.id for h in result.hits} and result.revision == batch.revision


def test_a_stream_query_with_a_token_sees_the_write(pair: Pair) -> None:
    user = "ryw-stream"
    for i in range(10):
        memory = create(pair.a, f"stream round {i}: Ada booked the meeting room", user)
        requests = [
            pb.StreamSearchMemoriesRequest(
                query_id="q",
                search=pb.SearchMemoriesRequest(
                    query="meeting room", scope=m.Scope(user_id=user), top_k=100, min_revision=memory.revision
                ),
            )
        ]
        (answer,) = list(pair.b.memory.StreamSearchMemories(iter(requests), timeout=30))
        assert answer.WhichOneof("outcome") == "result"
        assert memory.id in {h.memory.id for h in answer.result.hits}
        assert answer.result.revision >= memory.revision


def test_a_replica_that_cannot_catch_up_in_time_says_revision_not_reached(pair: Pair) -> None:
    user = "held"
    search(pair.b, user, 0)
    memory = create(pair.a, "Ada booked the meeting room while the log was locked", user)
    with psycopg.connect(pair.url) as conn:
        # Committed, but B's catch-up cannot read the revision log until this ends.
        conn.execute("LOCK TABLE revlog IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(grpc.RpcError) as failed:
            search(pair.b, user, memory.revision, timeout=1.5)  # the deadline bounds the wait
        code, reason, _ = error_of(failed.value)
        assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "REVISION_NOT_REACHED")
        status = rpc_status.from_call(failed.value)  # type: ignore[arg-type]
        assert status is not None
        retry = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
        info = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
        assert len(retry) == 1 and len(info) == 1
        unpacked = error_details_pb2.ErrorInfo()
        info[0].Unpack(unpacked)
        assert int(unpacked.metadata["applied_revision"]) < memory.revision
        assert unpacked.metadata["min_revision"] == str(memory.revision)
        conn.rollback()
    # Once the lock is gone the retry is answered, with the write.
    found = search(pair.b, user, memory.revision)
    assert memory.id in {h.memory.id for h in found.hits} and found.revision >= memory.revision


def test_a_revision_the_store_never_committed_is_revision_ahead(pair: Pair) -> None:
    memory = create(pair.a, "the last write before the test asks for more", "ahead")
    for proc in (pair.a, pair.b):
        with pytest.raises(grpc.RpcError) as failed:
            search(proc, "ahead", memory.revision + 1000)
        assert error_of(failed.value)[:2] == (grpc.StatusCode.OUT_OF_RANGE, "REVISION_AHEAD")
        with pytest.raises(grpc.RpcError) as failed:
            proc.memory.GetMemory(pb.GetMemoryRequest(id=memory.id, min_revision=-1), timeout=30)
        assert error_of(failed.value) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            ["min_revision"],
        )
