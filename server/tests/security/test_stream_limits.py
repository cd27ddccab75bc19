"""One StreamSearchMemories stream is no way around the rate limit, and its
queries in flight are bounded per stream and per server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from mnemo.v1 import memory_service_pb2 as pb

from ..conftest import make_settings
from .conftest import new_key, secure_settings, tenant_name


def queries(n: int, text: str = "tea") -> Iterator[pb.StreamSearchMemoriesRequest]:
    for i in range(n):
        yield pb.StreamSearchMemoriesRequest(query_id=f"q{i}", search=pb.SearchMemoriesRequest(query=text))


def reason_of(status: status_pb2.Status) -> str:
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


def test_each_query_of_a_stream_takes_a_token_of_the_rate_limit(tmp_path: Path, make_server: Any) -> None:
    server = make_server(secure_settings(tmp_path, rate_limit={"requests_per_s": 5, "burst": 5}))
    key = new_key(server, "writer", tenant=tenant_name())
    answers = list(key.memory.StreamSearchMemories(queries(200)))
    assert len(answers) == 200 and {a.query_id for a in answers} == {f"q{i}" for i in range(200)}
    answered = [a for a in answers if a.HasField("result")]
    refused = [a for a in answers if a.HasField("error")]
    # The call took one token and the burst holds five: a handful are answered.
    assert 1 <= len(answered) <= 8, len(answered)
    assert len(refused) == 200 - len(answered)
    for answer in refused:
        assert answer.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        assert reason_of(answer.error) == "RATE_LIMITED"
        assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in answer.error.details)


class Probe:
    """Wraps the service's search: counts the queries of the searches running
    at once (a stream hands over the queries that arrived together as one call)."""

    def __init__(self, search: Any, delay_s: float) -> None:
        self._search = search
        self._delay_s = delay_s
        self._lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.done = 0

    def __call__(self, principal: Any, queries: Any) -> Any:
        n = len(getattr(queries, "queries", queries))
        with self._lock:
            self.running += n
            self.most = max(self.most, self.running)
        try:
            time.sleep(self._delay_s)
            return self._search(principal, queries)
        finally:
            with self._lock:
                self.running -= n
                self.done += n


def test_queries_in_flight_are_bounded_per_stream_and_per_server(tmp_path: Path, make_server: Any) -> None:
    server = make_server(
        make_settings(
            tmp_path, limits={"max_stream_in_flight": 3, "max_stream_queries": 4}, server={"threads": 16}
        )
    )
    probe = Probe(server.app.service.search, 0.02)
    server.app.service.search = probe  # type: ignore[method-assign]

    one = list(server.memory.StreamSearchMemories(queries(30)))
    assert len(one) == 30 and all(a.HasField("result") for a in one)
    assert 2 <= probe.most <= 3  # batches overlap, and never hold more than three queries

    probe.most = 0
    results: list[list[pb.StreamSearchMemoriesResponse]] = []
    threads = [
        threading.Thread(target=lambda: results.append(list(server.memory.StreamSearchMemories(queries(40)))))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    # A unary search of another caller is answered while the streams still run.
    deadline = time.monotonic() + 30
    while probe.done < 10:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    server.memory.SearchMemories(pb.SearchMemoriesRequest(query="coffee"))
    # It waited behind at most four stream queries, not behind all 120.
    assert any(t.is_alive() for t in threads)
    for t in threads:
        t.join(60)
    assert [len(r) for r in results] == [40, 40, 40]
    assert probe.most <= 4 + 1  # four stream queries, and the unary call
