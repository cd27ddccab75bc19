"""Rate limits (in process, and shared through a real redis-server by two
servers), tenant quotas and open-stream limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from mnemo.v1 import admin_service_pb2 as admin_pb
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from ..cache.redis_procs import RedisProcess
from ..conftest import error_of, make_settings
from .conftest import BOOTSTRAP, As, create, fails, new_key, secure_settings, tenant_name

LIMITED = (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")


def retry_delay_s(exc: grpc.RpcError) -> float:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    raise AssertionError("no RetryInfo")


def limited(call: Any) -> float:
    """The RetryInfo delay of a call that must be rate limited."""
    try:
        call()
    except grpc.RpcError as exc:
        code, reason, _ = error_of(exc)
        assert (code, reason) == LIMITED
        return retry_delay_s(exc)
    raise AssertionError("the call was not rate limited")


def listing(who: As) -> Any:
    return lambda: who.memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": "u"}))


def test_a_key_past_its_rate_is_told_when_to_retry(tmp_path: Path, make_server: Any) -> None:
    server = make_server(secure_settings(tmp_path, rate_limit={"requests_per_s": 2, "burst": 3}))
    key = new_key(server, "writer", tenant=tenant_name())
    other = new_key(server, "writer", tenant=tenant_name())
    # new_key used a token of the bootstrap key, not of these keys.
    for _ in range(3):
        listing(key)()
    delay = limited(listing(key))
    assert 0 < delay <= 0.5
    # Limits are per key.
    listing(other)()
    time.sleep(delay + 0.05)
    listing(key)()


def test_without_auth_the_limit_applies_per_client_address(tmp_path: Path, make_server: Any) -> None:
    server = make_server(make_settings(tmp_path, rate_limit={"requests_per_s": 1, "burst": 2}))
    anonymous = As(server, None)
    listing(anonymous)()
    listing(anonymous)()
    assert limited(listing(anonymous)) > 0.5


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    proc = RedisProcess(tmp_path / "redis").start()
    yield proc
    proc.stop()


def test_two_servers_share_a_rate_limit_through_redis_and_survive_its_loss(
    tmp_path: Path, make_server: Any, redis_server: RedisProcess
) -> None:
    settings: dict[str, Any] = {
        "server": {"redis_url": redis_server.url},
        "cache": {"namespace": "ratelimit-test"},
        "rate_limit": {"requests_per_s": 0.2, "burst": 4},
    }
    one = make_server(secure_settings(tmp_path / "one", **settings))
    two = make_server(secure_settings(tmp_path / "two", **settings))
    # The bootstrap key has the same id on both servers, so one bucket.
    on_one, on_two = As(one, BOOTSTRAP), As(two, BOOTSTRAP)
    stats = admin_pb.GetStatsRequest()
    on_one.admin.GetStats(stats)
    on_two.admin.GetStats(stats)
    on_one.admin.GetStats(stats)
    on_two.admin.GetStats(stats)
    # Each server alone would allow 4; together they allowed 4.
    assert limited(lambda: on_one.admin.GetStats(stats)) > 1
    assert limited(lambda: on_two.admin.GetStats(stats)) > 1
    with redis_server.client() as client:
        assert client.keys("ratelimit-test:ratelimit:*") == [b"ratelimit-test:ratelimit:key:bootstrap"]
    # Redis gone: calls go on, limited in each process.
    redis_server.stop()
    on_one.admin.GetStats(stats)
    on_two.admin.GetStats(stats)
    for _ in range(3):
        on_one.admin.GetStats(stats)
    assert limited(lambda: on_one.admin.GetStats(stats)) > 1


def test_a_tenant_cannot_pass_its_quota(tmp_path: Path, make_server: Any) -> None:
    server = make_server(secure_settings(tmp_path, quota={"max_memories": 3, "max_content_bytes": 1000}))
    a = new_key(server, "writer", tenant=tenant_name())
    b = new_key(server, "writer", tenant=tenant_name())
    made = [create(a, f"memory number {i}", user_id="u") for i in range(3)]
    code, reason = fails(lambda: create(a, "one too many", user_id="u"))
    assert (code, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED")
    # Quotas are per tenant.
    create(b, "another tenant has room", user_id="u")
    # A batch fails only the creates past the quota; an import reports them.
    batch = a.memory.BatchWriteMemories(
        pb.BatchWriteMemoriesRequest(
            operations=[
                pb.WriteOperation(delete=pb.DeleteMemoryRequest(id=made[0].id)),
                pb.WriteOperation(create=pb.CreateMemoryRequest(memory={"user_id": "u", "content": "fits"})),
                pb.WriteOperation(
                    create=pb.CreateMemoryRequest(memory={"user_id": "u", "content": "does not"})
                ),
            ]
        )
    )
    assert [r.status.code for r in batch.results] == [0, 0, grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]]
    imported = a.memory.ImportMemories(
        iter(
            [
                pb.ImportMemoriesRequest(header={"format_version": 1}),
                pb.ImportMemoriesRequest(memory=m.Memory(user_id="u", content="imported")),
            ]
        )
    )
    assert imported.imported_count == 0 and imported.failed_count == 1
    assert imported.failures[0].status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    # Bytes count too.
    c = new_key(server, "writer", tenant=tenant_name())
    create(c, "x" * 600, user_id="u")
    assert fails(lambda: create(c, "y" * 500, user_id="u")) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "QUOTA_EXCEEDED",
    )
    create(c, "y" * 400, user_id="u")


class OpenWatch:
    def __init__(self, who: As) -> None:
        self.call = who.memory.WatchMemories(pb.WatchMemoriesRequest(scope={"user_id": "u"}))
        self.first = next(iter(self.call))

    def close(self) -> None:
        self.call.cancel()


def test_a_key_holds_at_most_max_streams_open(tmp_path: Path, make_server: Any) -> None:
    server = make_server(secure_settings(tmp_path, rate_limit={"max_streams": 2}))
    key = new_key(server, "reader", tenant=tenant_name())
    other = new_key(server, "reader", tenant=tenant_name())
    open_ = [OpenWatch(key), OpenWatch(key)]
    assert all(w.first.progress_notification for w in open_)
    code, reason = fails(lambda: OpenWatch(key))
    assert (code, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_STREAMS")
    assert fails(
        lambda: list(key.memory.ExportMemories(pb.ExportMemoriesRequest(scope={"user_id": "u"})))
    ) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "TOO_MANY_STREAMS",
    )
    # Unary calls and other keys are not affected.
    listing(key)()
    third = OpenWatch(other)
    # Closing a stream frees its slot.
    open_[0].close()
    deadline = time.monotonic() + 5
    while True:
        try:
            again = OpenWatch(key)
            break
        except grpc.RpcError:
            assert time.monotonic() < deadline, "the closed stream's slot was not freed"
            time.sleep(0.05)
    for w in (open_[1], third, again):
        w.close()


def test_a_request_past_the_message_limit_is_refused_unread(tmp_path: Path, make_server: Any) -> None:
    server = make_server(make_settings(tmp_path))
    assert server.app.settings.server.max_message_bytes == 4 * 1024 * 1024
    big = pb.BatchSearchMemoriesRequest(
        requests=[pb.SearchMemoriesRequest(vector=[0.5] * 384, top_k=1) for _ in range(3000)]
    )
    assert big.ByteSize() > 4 * 1024 * 1024
    with pytest.raises(grpc.RpcError) as err:
        server.memory.BatchSearchMemories(big)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Just under the limit, the same call is read and judged on its content.
    fits = pb.BatchSearchMemoriesRequest(requests=list(big.requests)[:2000])
    assert fits.ByteSize() < 4 * 1024 * 1024
    assert fails(lambda: server.memory.BatchSearchMemories(fits)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "BATCH_TOO_LARGE",
    )
