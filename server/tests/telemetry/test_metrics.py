"""The Prometheus endpoint of a real server: RPC counts and latencies by
method and status code (streams counted when they end), stage and model
timings, and the gauges read at scrape time (memories per tenant, index
shards, revisions, watch streams, caches)."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server.embed.base import Embedder
from mnemo_server.models import Principal, Scope
from mnemo_server.service import MemoryDraft, WriteOp
from mnemo_server.telemetry_metrics import METRICS, OTHER

from ..conftest import RunningServer, make_settings, start_server
from .scrape import Scrape, scrape

MEMORY = "mnemo.v1.MemoryService"


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[RunningServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("metered"),
        metrics={"address": "127.0.0.1:0", "tenant_interval_s": 0},
    )
    running = start_server(settings, embedder)
    yield running
    running.stop()


def port_of(server: RunningServer) -> int:
    port = server.app.telemetry.metrics_port
    assert port > 0
    return port


def create(server: RunningServer, uid: str, content: str) -> m.Memory:
    return server.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content=content))
    ).memory


def handled(s: Scrape, method: str, code: str) -> float:
    return s.value("grpc_server_handled_total", grpc_service=MEMORY, grpc_method=method, grpc_code=code)


def test_unary_calls_are_counted_by_method_and_code(metered: RunningServer) -> None:
    before = scrape(port_of(metered))
    uid = user()
    create(metered, uid, "Alice keeps bees")
    create(metered, uid, "Alice has a red bicycle")
    metered.memory.SearchMemories(pb.SearchMemoriesRequest(query="bees", scope=m.Scope(user_id=uid)))
    with pytest.raises(grpc.RpcError) as missing:
        metered.memory.GetMemory(pb.GetMemoryRequest(id="no-such-memory"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as bad:
        metered.memory.CreateMemory(pb.CreateMemoryRequest(memory=m.Memory(user_id=uid, content="")))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # A failed call's status reaches the client just before it is counted.
    after = _wait_for(
        port_of(metered),
        lambda s: (
            handled(s, "GetMemory", "NOT_FOUND") > handled(before, "GetMemory", "NOT_FOUND")
            and handled(s, "CreateMemory", "INVALID_ARGUMENT")
            > handled(before, "CreateMemory", "INVALID_ARGUMENT")
        ),
    )

    def delta(method: str, code: str) -> float:
        return handled(after, method, code) - handled(before, method, code)

    assert delta("CreateMemory", "OK") == 2
    assert delta("CreateMemory", "INVALID_ARGUMENT") == 1
    assert delta("SearchMemories", "OK") == 1
    assert delta("GetMemory", "NOT_FOUND") == 1
    assert delta("GetMemory", "OK") == 0
    labels = {"grpc_service": MEMORY, "grpc_method": "CreateMemory", "grpc_type": "unary"}
    assert (
        after.value("grpc_server_started_total", **labels)
        - before.value("grpc_server_started_total", **labels)
        == 3
    )
    # The latency histogram saw each call, and its buckets are cumulative.
    count = after.value("grpc_server_handling_seconds_count", **labels)
    assert count - before.value("grpc_server_handling_seconds_count", **labels) == 3
    assert after.value("grpc_server_handling_seconds_bucket", le="+Inf", **labels) == count
    assert 0 < after.value("grpc_server_handling_seconds_sum", **labels) < 60
    # Only the successful calls sent a response message.
    sent = after.value("grpc_server_msg_sent_total", **labels) - before.value(
        "grpc_server_msg_sent_total", **labels
    )
    assert sent == 2


def test_stages_and_model_calls_are_timed(metered: RunningServer) -> None:
    uid = user()
    before = scrape(port_of(metered))
    create(metered, uid, "Bob collects stamps from Iceland")
    metered.memory.SearchMemories(pb.SearchMemoriesRequest(query="stamps", scope=m.Scope(user_id=uid)))
    after = scrape(port_of(metered))
    for stage in ("embed", "store.write", "publish", "cache.search", "index.search", "store.read"):
        grew = after.value("mnemo_stage_seconds_count", stage=stage) - before.value(
            "mnemo_stage_seconds_count", stage=stage
        )
        assert grew >= 1, stage
    # The embedder here was built outside the App: its model is not metered,
    # but the micro-batcher's queue is visible.
    assert after.has("mnemo_embed_queue_depth")
    assert after.value("mnemo_embed_queue_depth") == 0


def test_gauges_follow_the_data(metered: RunningServer) -> None:
    uid = user()
    before = scrape(port_of(metered))
    for i in range(3):
        create(metered, uid, f"Carol's note number {i} about gardening")
    after = scrape(port_of(metered))
    assert (
        after.value("mnemo_memories", tenant="default") - before.value("mnemo_memories", tenant="default")
        == 3
    )
    assert after.value("mnemo_memory_content_bytes", tenant="default") > before.value(
        "mnemo_memory_content_bytes", tenant="default"
    )
    assert after.value("mnemo_index_vectors") - before.value("mnemo_index_vectors") == 3
    assert after.labels("mnemo_index_vectors", "kind") == {"flat"}
    assert after.labels("mnemo_index_vectors", "shard") == {"default/0"}
    assert after.value("mnemo_index_memory_bytes") > 0
    revision = after.value("mnemo_store_revision")
    assert revision - before.value("mnemo_store_revision") == 3
    assert after.value("mnemo_index_applied_revision") == revision
    assert after.value("mnemo_index_revision_lag") == 0
    assert after.value("mnemo_ready") == 1
    assert after.value("mnemo_build_info", version="0.1.0") == 1
    assert after.labels("mnemo_build_info", "embedding_model") == {metered.app.service.embedder.model_id}  # type: ignore[union-attr]


def test_cache_metrics_count_hits_and_misses(metered: RunningServer) -> None:
    uid = user()
    create(metered, uid, "Dave drinks oolong tea")
    request = pb.SearchMemoriesRequest(query="what does dave drink", scope=m.Scope(user_id=uid))
    before = scrape(port_of(metered))
    metered.memory.SearchMemories(request)
    metered.memory.SearchMemories(request)
    after = scrape(port_of(metered))

    def grew(name: str, cache: str) -> float:
        return after.value(name, cache=cache, backend="local") - before.value(
            name, cache=cache, backend="local"
        )

    # The first search missed, the repeat hit.
    assert grew("mnemo_cache_misses_total", "search") >= 1
    assert grew("mnemo_cache_hits_total", "search") == 1
    assert grew("mnemo_cache_lookup_seconds_count", "search") >= 2
    assert after.value("mnemo_cache_state", cache="search", state="ok") == 1
    assert after.value("mnemo_cache_state", cache="search", state="down") == 0
    assert after.value("mnemo_cache_bytes", cache="search") > 0
    assert after.labels("mnemo_cache_hits_total", "cache") == {"embedding", "search", "record"}


def test_streams_are_counted_when_they_end(metered: RunningServer) -> None:
    uid = user()
    create(metered, uid, "Erin runs marathons")
    port = port_of(metered)
    watch = {"grpc_service": MEMORY, "grpc_method": "WatchMemories"}
    before = scrape(port)
    call = metered.memory.WatchMemories(pb.WatchMemoriesRequest(scope=m.Scope(user_id=uid)))
    received: list[pb.WatchMemoriesResponse] = []
    reader = threading.Thread(target=lambda: _drain(call, received), daemon=True)
    reader.start()
    open_now = _wait_for(
        port, lambda s: s.value("mnemo_watch_streams") >= before.value("mnemo_watch_streams") + 1
    )
    assert (
        open_now.value("grpc_server_started_total", **watch)
        - before.value("grpc_server_started_total", **watch)
        == 1
    )
    # Still open: not handled yet.
    assert open_now.value("grpc_server_handled_total", **watch) == before.value(
        "grpc_server_handled_total", **watch
    )
    create(metered, uid, "Erin ran in Berlin")
    deadline = time.monotonic() + 10
    while not any(r.events for r in received) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert any(r.events for r in received)
    call.cancel()
    reader.join(10)
    closed = _wait_for(
        port,
        lambda s: (
            s.value("grpc_server_handled_total", grpc_code="CANCELLED", **watch)
            > before.value("grpc_server_handled_total", grpc_code="CANCELLED", **watch)
        ),
    )
    assert closed.value("mnemo_watch_streams") == before.value("mnemo_watch_streams")
    assert (
        closed.value("grpc_server_msg_sent_total", **watch)
        - before.value("grpc_server_msg_sent_total", **watch)
        >= 1
    )
    # A server stream that runs to its end is OK.
    export = {"grpc_service": MEMORY, "grpc_method": "ExportMemories"}
    items = list(metered.memory.ExportMemories(pb.ExportMemoriesRequest(scope=m.Scope(user_id=uid))))
    done = scrape(port)
    assert (
        done.value("grpc_server_handled_total", grpc_code="OK", grpc_type="server_stream", **export)
        - before.value("grpc_server_handled_total", grpc_code="OK", **export)
        == 1
    )
    assert done.value("grpc_server_msg_sent_total", **export) - before.value(
        "grpc_server_msg_sent_total", **export
    ) == len(items)


def _drain(call: Any, into: list[pb.WatchMemoriesResponse]) -> None:
    with contextlib.suppress(grpc.RpcError):
        for response in call:
            into.append(response)


def _wait_for(port: int, ready: Callable[[Scrape], bool], timeout: float = 10) -> Scrape:
    deadline = time.monotonic() + timeout
    while True:
        s = scrape(port)
        if ready(s):
            return s
        assert time.monotonic() < deadline, "the metric never got there"
        time.sleep(0.05)


def test_every_exported_metric_is_declared(metered: RunningServer) -> None:
    """What /metrics shows is exactly METRICS (which docs/operations.md lists)."""
    uid = user()
    create(metered, uid, "Frank plays the cello")
    metered.memory.SearchMemories(pb.SearchMemoriesRequest(query="cello", scope=m.Scope(user_id=uid)))
    s = scrape(port_of(metered))
    declared = {d.name for d in METRICS}
    assert s.exposed_names() == declared
    for doc in METRICS:
        family = doc.name.removesuffix("_total")
        assert s.families[family] == doc.type, doc.name


def test_model_calls_are_timed_when_the_app_builds_the_model(tmp_path: Path) -> None:
    running = start_server(make_settings(tmp_path, metrics={"address": "127.0.0.1:0"}))
    try:
        running.memory.BatchWriteMemories(
            pb.BatchWriteMemoriesRequest(
                operations=[
                    pb.WriteOperation(
                        create=pb.CreateMemoryRequest(memory=m.Memory(user_id="gina", content=text))
                    )
                    for text in ("Gina owns a kayak", "Gina lives by the lake", "Gina fishes for trout")
                ]
            )
        )
        s = scrape(port_of(running))
        assert s.value("mnemo_embed_model_seconds_count") >= 1
        # One batch of three distinct texts.
        assert s.value("mnemo_embed_batch_size_sum") == 3
        assert s.value("mnemo_embed_batch_size_bucket", le="4.0") == s.value("mnemo_embed_batch_size_count")
        assert s.value("mnemo_embed_errors_total") == 0
    finally:
        running.stop()


def test_tenants_and_shards_beyond_the_limit_are_summed(tmp_path: Path, embedder: Embedder) -> None:
    running = start_server(
        make_settings(
            tmp_path, metrics={"address": "127.0.0.1:0", "tenant_interval_s": 0, "tenant_limit": 2}
        ),
        embedder,
    )
    try:
        service = running.app.service
        assert service is not None
        for tenant, n in (("t-big", 3), ("t-mid", 2), ("t-small", 1), ("t-tiny", 1)):
            ops = [
                WriteOp("create", MemoryDraft(scope=Scope(user_id="u"), content=f"{tenant} {i}"))
                for i in range(n)
            ]
            assert all(o.error is None for o in service.write(Principal(tenant=tenant), ops))
        s = scrape(port_of(running))
        assert s.value("mnemo_memories", tenant="t-big") == 3
        assert s.value("mnemo_memories", tenant="t-mid") == 2
        assert s.value("mnemo_memories", tenant=OTHER) == 2
        assert s.labels("mnemo_memories", "tenant") == {"t-big", "t-mid", OTHER}
        assert s.labels("mnemo_index_vectors", "shard") == {"t-big/0", "t-mid/0", OTHER}
        assert s.value("mnemo_index_vectors", shard=OTHER, kind="flat") == 2
    finally:
        running.stop()


def test_tenant_counts_are_cached_between_recounts(tmp_path: Path, embedder: Embedder) -> None:
    running = start_server(
        make_settings(tmp_path, metrics={"address": "127.0.0.1:0", "tenant_interval_s": 3600}), embedder
    )
    try:
        create(running, "hana", "Hana paints")
        first = scrape(port_of(running))
        create(running, "hana", "Hana sings")
        second = scrape(port_of(running))
        # The per-tenant scan waits for its interval; the cheap gauges do not.
        assert second.value("mnemo_memories", tenant="default") == first.value(
            "mnemo_memories", tenant="default"
        )
        assert second.value("mnemo_store_revision") == first.value("mnemo_store_revision") + 1
        assert second.value("mnemo_index_vectors") == 2
    finally:
        running.stop()


def test_two_servers_in_one_process_count_apart(
    tmp_path: Path, embedder: Embedder, metered: RunningServer
) -> None:
    other = start_server(make_settings(tmp_path, metrics={"address": "127.0.0.1:0"}), embedder)
    try:
        assert port_of(other) != port_of(metered)
        before = handled(scrape(port_of(metered)), "CreateMemory", "OK")
        create(other, "ivan", "Ivan builds boats")
        assert handled(scrape(port_of(other)), "CreateMemory", "OK") == 1
        assert handled(scrape(port_of(metered)), "CreateMemory", "OK") == before
    finally:
        other.stop()
    # Stopped: the endpoint is gone.
    with pytest.raises(OSError):
        scrape(port_of(other))


def test_off_by_default(tmp_path: Path, embedder: Embedder) -> None:
    running = start_server(make_settings(tmp_path), embedder)
    try:
        assert running.app.telemetry.metrics_port == 0
        assert running.app.telemetry.interceptors == ()
        create(running, "judy", "Judy reads")
    finally:
        running.stop()


class Refuse(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """An extra interceptor that turns every ListMemories away."""

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        if details.method.endswith("/ListMemories"):

            async def refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, "no")

            return grpc.unary_unary_rpc_method_handler(refuse)
        return await continuation(details)


def test_calls_refused_by_later_interceptors_are_counted(tmp_path: Path, embedder: Embedder) -> None:
    running = start_server(
        make_settings(tmp_path, metrics={"address": "127.0.0.1:0"}), embedder, interceptors=[Refuse()]
    )
    try:
        with pytest.raises(grpc.RpcError) as refused:
            running.memory.ListMemories(pb.ListMemoriesRequest(scope=m.Scope(user_id="olga")))
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        create(running, "olga", "Olga rows")  # the extra interceptor lets this through
        s = _wait_for(port_of(running), lambda s: handled(s, "ListMemories", "PERMISSION_DENIED") == 1)
        assert handled(s, "CreateMemory", "OK") == 1
    finally:
        running.stop()


def test_process_metrics_are_exported(metered: RunningServer) -> None:
    s = scrape(port_of(metered))
    assert s.value("process_resident_memory_bytes") > 10_000_000
    assert s.value("process_cpu_seconds_total") > 0
    assert s.value("process_open_fds") > 0
