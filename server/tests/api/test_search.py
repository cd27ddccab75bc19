"""SearchMemories, BatchSearchMemories, StreamSearchMemories and
BatchWriteMemories over real gRPC, with the real model."""

from __future__ import annotations

import math
import uuid

import grpc
import numpy as np
import pytest

from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from ..conftest import RunningServer, error_of

FACTS = [
    "Alice is allergic to peanuts",
    "Alice's favourite city is Lisbon",
    "Alice drives a blue bicycle to work",
    "The quarterly tax filing is due in April",
    "Bob plays the trumpet in a jazz band",
]


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def seed(server: RunningServer, uid: str, facts: list[str] = FACTS, **fields: object) -> list[m.Memory]:
    ops = [
        pb.WriteOperation(create=pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content=f, **fields)))  # type: ignore[arg-type]
        for f in facts
    ]
    response = server.memory.BatchWriteMemories(pb.BatchWriteMemoriesRequest(operations=ops))
    assert all(r.status.code == 0 for r in response.results)
    return [r.create.memory for r in response.results]


def test_text_search_finds_by_meaning_within_the_user(server: RunningServer) -> None:
    alice, bob = user(), user()
    seed(server, alice)
    seed(server, bob, ["Bob is allergic to peanuts"])
    response = server.memory.SearchMemories(
        pb.SearchMemoriesRequest(query="what food must Alice avoid?", scope=m.Scope(user_id=alice), top_k=3)
    )
    assert response.embedding_model == "all-MiniLM-L6-v2"
    assert response.hits[0].memory.content == "Alice is allergic to peanuts"
    assert len(response.hits) == 3
    assert all(h.memory.user_id == alice for h in response.hits)
    scores = [h.score for h in response.hits]
    assert scores == sorted(scores, reverse=True) and -1 <= scores[-1] <= scores[0] <= 1


def test_a_user_never_sees_another_users_memories(server: RunningServer) -> None:
    alice, bob = user(), user()
    seed(server, alice, ["the secret code is 1234"])
    hits = server.memory.SearchMemories(
        pb.SearchMemoriesRequest(query="the secret code is 1234", scope=m.Scope(user_id=bob), top_k=50)
    ).hits
    assert hits == []
    hits = server.memory.SearchMemories(
        pb.SearchMemoriesRequest(query="secret code", filter=f'user_id = "{bob}"', top_k=50)
    ).hits
    assert hits == []


def test_vector_search_min_score_and_embeddings(server: RunningServer) -> None:
    uid = user()
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(5, 384)).astype(np.float32)
    ops = [
        pb.WriteOperation(
            create=pb.CreateMemoryRequest(
                memory=m.Memory(
                    user_id=uid, content=f"v{i}", embedding=v.tolist(), embedding_model="my-model"
                )
            )
        )
        for i, v in enumerate(vectors)
    ]
    created = server.memory.BatchWriteMemories(pb.BatchWriteMemoriesRequest(operations=ops)).results
    assert created[0].create.memory.embedding_model == "my-model"
    response = server.memory.SearchMemories(
        pb.SearchMemoriesRequest(
            vector=vectors[2].tolist(), scope=m.Scope(user_id=uid), top_k=5, include_embedding=True
        )
    )
    assert response.hits[0].memory.content == "v2"
    assert math.isclose(response.hits[0].score, 1.0, abs_tol=1e-5)
    unit = vectors[2] / np.linalg.norm(vectors[2])
    assert np.allclose(response.hits[0].memory.embedding, unit, atol=1e-6)
    assert response.embedding_model == ""
    strict = server.memory.SearchMemories(
        pb.SearchMemoriesRequest(
            vector=vectors[2].tolist(), scope=m.Scope(user_id=uid), top_k=5, min_score=0.99
        )
    )
    assert [h.memory.content for h in strict.hits] == ["v2"]


def test_filters_narrow_the_search(server: RunningServer) -> None:
    uid = user()
    seed(server, uid, ["I like hiking in the mountains"], tags=["outdoor"], kind=m.MEMORY_KIND_SEMANTIC)
    seed(server, uid, ["I like hiking trails near the sea"], metadata={"year": m.Value(int_value=2024)})
    base = dict(query="hiking", scope=m.Scope(user_id=uid))
    by_tag = server.memory.SearchMemories(pb.SearchMemoriesRequest(**base, filter='tags:"outdoor"')).hits  # type: ignore[arg-type]
    assert [h.memory.content for h in by_tag] == ["I like hiking in the mountains"]
    by_meta = server.memory.SearchMemories(
        pb.SearchMemoriesRequest(**base, filter="metadata.year >= 2024")
    ).hits  # type: ignore[arg-type]
    assert [h.memory.content for h in by_meta] == ["I like hiking trails near the sea"]
    by_kind = server.memory.SearchMemories(
        pb.SearchMemoriesRequest(**base, filter="NOT kind = SEMANTIC")
    ).hits  # type: ignore[arg-type]
    assert [h.memory.content for h in by_kind] == ["I like hiking trails near the sea"]
    none = server.memory.SearchMemories(
        pb.SearchMemoriesRequest(**base, filter='user_id = "somebody-else"')
    ).hits  # type: ignore[arg-type]
    assert none == []


def test_batch_search_answers_each_query_in_order(server: RunningServer) -> None:
    uid = user()
    seed(server, uid)
    queries = ["peanut allergy", "jazz trumpet", "taxes"]
    response = server.memory.BatchSearchMemories(
        pb.BatchSearchMemoriesRequest(
            requests=[pb.SearchMemoriesRequest(query=q, scope=m.Scope(user_id=uid), top_k=1) for q in queries]
        )
    )
    assert [r.hits[0].memory.content for r in response.results] == [FACTS[0], FACTS[4], FACTS[3]]
    with pytest.raises(grpc.RpcError) as err:
        server.memory.BatchSearchMemories(
            pb.BatchSearchMemoriesRequest(
                requests=[pb.SearchMemoriesRequest(query="ok"), pb.SearchMemoriesRequest(vector=[1.0, 2.0])]
            )
        )
    assert error_of(err.value) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "EMBEDDING_DIMENSION_MISMATCH",
        ["requests[1].vector"],
    )


def test_stream_search_tags_results_and_keeps_going_after_a_bad_query(server: RunningServer) -> None:
    uid = user()
    seed(server, uid)

    def queries():  # type: ignore[no-untyped-def]
        yield pb.StreamSearchMemoriesRequest(
            query_id="a",
            search=pb.SearchMemoriesRequest(query="peanut allergy", scope=m.Scope(user_id=uid), top_k=1),
        )
        yield pb.StreamSearchMemoriesRequest(
            query_id="bad",
            search=pb.SearchMemoriesRequest(query="x", filter="user_id = ", scope=m.Scope(user_id=uid)),
        )
        yield pb.StreamSearchMemoriesRequest(
            query_id="b",
            search=pb.SearchMemoriesRequest(
                query="where does alice like to travel", scope=m.Scope(user_id=uid), top_k=1
            ),
        )

    answers = {r.query_id: r for r in server.memory.StreamSearchMemories(queries())}
    assert set(answers) == {"a", "bad", "b"}
    assert answers["a"].result.hits[0].memory.content == FACTS[0]
    assert answers["b"].result.hits[0].memory.content == FACTS[1]
    assert answers["bad"].WhichOneof("outcome") == "error"
    assert answers["bad"].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


def test_stream_search_rejects_a_missing_query_id(server: RunningServer) -> None:
    with pytest.raises(grpc.RpcError) as err:
        list(
            server.memory.StreamSearchMemories(
                iter([pb.StreamSearchMemoriesRequest(search=pb.SearchMemoriesRequest(query="x"))])
            )
        )
    assert error_of(err.value)[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")


def test_batch_write_reports_each_operation(server: RunningServer) -> None:
    uid = user()
    keep = seed(server, uid, ["kept memory"])[0]
    response = server.memory.BatchWriteMemories(
        pb.BatchWriteMemoriesRequest(
            operations=[
                pb.WriteOperation(
                    create=pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content="new one"))
                ),
                pb.WriteOperation(create=pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content="   "))),
                pb.WriteOperation(delete=pb.DeleteMemoryRequest(id="does-not-exist")),
                pb.WriteOperation(delete=pb.DeleteMemoryRequest(id=keep.id)),
            ]
        )
    )
    codes = [r.status.code for r in response.results]
    assert codes == [0, grpc.StatusCode.INVALID_ARGUMENT.value[0], grpc.StatusCode.NOT_FOUND.value[0], 0]
    assert response.results[0].create.memory.content == "new one"
    assert response.revision == response.results[3].delete.revision
    listed = server.memory.ListMemories(pb.ListMemoriesRequest(scope=m.Scope(user_id=uid))).memories
    assert [x.content for x in listed] == ["new one"]


def test_atomic_batch_writes_nothing_when_one_operation_fails(server: RunningServer) -> None:
    uid = user()
    keep = seed(server, uid, ["kept memory"])[0]
    response = server.memory.BatchWriteMemories(
        pb.BatchWriteMemoriesRequest(
            atomic=True,
            operations=[
                pb.WriteOperation(
                    create=pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content="would be new"))
                ),
                pb.WriteOperation(delete=pb.DeleteMemoryRequest(id=keep.id)),
                pb.WriteOperation(delete=pb.DeleteMemoryRequest(id="does-not-exist")),
            ],
        )
    )
    aborted = grpc.StatusCode.ABORTED.value[0]
    assert [r.status.code for r in response.results] == [aborted, aborted, grpc.StatusCode.NOT_FOUND.value[0]]
    assert response.revision == 0
    listed = server.memory.ListMemories(pb.ListMemoriesRequest(scope=m.Scope(user_id=uid))).memories
    assert [x.content for x in listed] == ["kept memory"]
    assert not server.memory.SearchMemories(
        pb.SearchMemoriesRequest(query="would be new", scope=m.Scope(user_id=uid), min_score=0.9)
    ).hits


def test_gzip_compressed_calls_work(server: RunningServer) -> None:
    uid = user()
    with grpc.insecure_channel(server.address, compression=grpc.Compression.Gzip) as channel:
        from mnemo.v1 import memory_service_pb2_grpc

        stub = memory_service_pb2_grpc.MemoryServiceStub(channel)
        stub.CreateMemory(pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content="compressed " * 200)))
        hits = stub.SearchMemories(
            pb.SearchMemoriesRequest(query="compressed", scope=m.Scope(user_id=uid))
        ).hits
        assert len(hits) == 1
