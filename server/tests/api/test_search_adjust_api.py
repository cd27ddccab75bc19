"""Score adjustments over real gRPC: decoded, explained, cached only when the
clock cannot change them, and malformed ones refused with stable reasons and
field violations in SearchMemories, BatchSearchMemories and StreamSearchMemories."""

from __future__ import annotations

import math
from collections.abc import Iterator

import grpc
import pytest

from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server.embed.base import Embedder

from ..conftest import RunningServer, error_of, make_settings, start_server

SCOPE = m.Scope(user_id="adjust-api")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[RunningServer]:
    running = start_server(make_settings(tmp_path_factory.mktemp("adjust")), embedder)
    ops = [
        pb.WriteOperation(create=pb.CreateMemoryRequest(memory=memory))
        for memory in (
            m.Memory(user_id="adjust-api", content="Kim's seat on flight LH440 is 12A"),
            m.Memory(user_id="adjust-api", content="Kim booked flight LH440", pinned=True),
            m.Memory(user_id="adjust-api", content="Kim's flight LH440 leaves at nine"),
        )
    ]
    running.memory.BatchWriteMemories(pb.BatchWriteMemoriesRequest(operations=ops))
    yield running
    running.stop()


def request(**fields: object) -> pb.SearchMemoriesRequest:
    return pb.SearchMemoriesRequest(query="flight LH440", scope=SCOPE, **fields)  # type: ignore[arg-type]


def test_a_pin_boost_reorders_and_is_explained(server: RunningServer) -> None:
    for mode in (pb.SEARCH_MODE_VECTOR, pb.SEARCH_MODE_KEYWORD, pb.SEARCH_MODE_HYBRID):
        boosted = server.memory.SearchMemories(request(mode=mode, pin_boost=100, explain=True))
        top = boosted.hits[0]
        assert top.memory.pinned
        e = top.explanation
        assert e.HasField("base_score") and e.pin_factor == pytest.approx(101)
        assert not e.HasField("recency_factor") and not e.HasField("importance_factor")
        assert top.score == pytest.approx(e.base_score * 101, rel=1e-5)


def test_recency_is_explained_and_never_cached(server: RunningServer) -> None:
    r = request(recency_half_life_seconds=3600.0, recency_basis=pb.RECENCY_BASIS_CREATE_TIME, explain=True)
    [first, second] = [server.memory.SearchMemories(r) for _ in range(2)]
    for hit in first.hits:
        e = hit.explanation
        assert 0 < e.recency_factor <= 1 and e.age_seconds >= 0
        assert e.recency_factor == pytest.approx(0.5 ** (e.age_seconds / 3600.0), rel=1e-5)
    # Time moved on between the two calls: the second was computed, not replayed.
    assert second.hits[0].explanation.age_seconds > first.hits[0].explanation.age_seconds
    plain = request(recency_half_life_seconds=60.0)
    a, b = (server.memory.SearchMemories(plain) for _ in range(2))
    assert a.hits[0].score > b.hits[0].score  # decayed further: never a cached score


BAD = [
    (dict(recency_half_life_seconds=0.0), "INVALID_RECENCY_DECAY", "recency_half_life_seconds"),
    (dict(recency_half_life_seconds=-1.0), "INVALID_RECENCY_DECAY", "recency_half_life_seconds"),
    (dict(recency_half_life_seconds=math.nan), "INVALID_RECENCY_DECAY", "recency_half_life_seconds"),
    (dict(recency_half_life_seconds=1.0, recency_basis=99), "INVALID_RECENCY_DECAY", "recency_basis"),
    (dict(recency_half_life_seconds=1.0, recency_weight=2.0), "INVALID_RECENCY_DECAY", "recency_weight"),
    (dict(importance_weight=1.0), "INVALID_IMPORTANCE_BOOST", "importance_weight"),
    (dict(pin_boost=-0.5), "INVALID_IMPORTANCE_BOOST", "pin_boost"),
]


@pytest.mark.parametrize(("fields", "reason", "field"), BAD)
def test_bad_adjustments_are_refused_in_every_search_call(
    server: RunningServer, fields: dict[str, object], reason: str, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        server.memory.SearchMemories(request(**fields))
    assert error_of(info.value) == (grpc.StatusCode.INVALID_ARGUMENT, reason, [field])
    batch = pb.BatchSearchMemoriesRequest(requests=[request(), request(**fields)])
    with pytest.raises(grpc.RpcError) as info:
        server.memory.BatchSearchMemories(batch)
    assert error_of(info.value) == (grpc.StatusCode.INVALID_ARGUMENT, reason, [f"requests[1].{field}"])
    stream = server.memory.StreamSearchMemories(
        iter([pb.StreamSearchMemoriesRequest(query_id="q", search=request(**fields))])
    )
    [answer] = list(stream)
    assert answer.query_id == "q" and answer.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
