"""Retries against a proxy that fails calls on purpose in front of the real
server; the authorization header; TLS and mutual TLS; gzip."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from sdk_fakes import Fault, FlakyProxy, serve, status

from mnemo import AsyncMnemoClient, MnemoClient, RetryPolicy, WriteOp, errors
from mnemo.v1 import memory_pb2
from mnemo.v1 import memory_service_pb2 as pb
from mnemo.v1 import memory_service_pb2_grpc as pb_grpc

FAST = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.05, jitter=0.0)
CREATE = "/mnemo.v1.MemoryService/CreateMemory"
BATCH = "/mnemo.v1.MemoryService/BatchWriteMemories"


@pytest.fixture(scope="module")
def proxy(server: Any) -> Iterator[FlakyProxy]:
    p = FlakyProxy(server.address)
    yield p
    p.close()


def unavailable(**kwargs: Any) -> Fault:
    return Fault(status("UNAVAILABLE", "SERVER_NOT_READY", **kwargs))


def request_ids(proxy: FlakyProxy, method: str, message: Any) -> list[str]:
    return [message.FromString(c.request).request_id for c in proxy.calls if c.method == method]


def test_unavailable_is_retried_until_it_works(proxy: FlakyProxy, user: str) -> None:
    proxy.fail(unavailable(), unavailable())
    with MnemoClient(proxy.address, retry=FAST) as client:
        memory = client.get(client.create("x", user_id=user).memory.id)
    assert memory.content == "x"
    assert len([c for c in proxy.calls if c.method == CREATE]) == 3


def test_retries_give_up_after_max_attempts(proxy: FlakyProxy) -> None:
    proxy.fail(*[unavailable() for _ in range(10)])
    with MnemoClient(proxy.address, retry=FAST) as client, pytest.raises(errors.UnavailableError) as err:
        client.get("whatever")
    assert err.value.reason == "SERVER_NOT_READY" and len(proxy.calls) == 4


def test_backoff_grows_and_retry_info_is_honoured(proxy: FlakyProxy) -> None:
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.05, multiplier=2, max_backoff=1, jitter=0)
    proxy.fail(unavailable(), unavailable())
    with MnemoClient(proxy.address, retry=policy) as client, pytest.raises(errors.NotFoundError):
        client.get("missing")
    assert len(proxy.calls) == 3

    proxy.fail(Fault(status("RESOURCE_EXHAUSTED", "RATE_LIMITED", retry_after=0.4)))
    start = time.monotonic()
    with MnemoClient(proxy.address, retry=policy) as client, pytest.raises(errors.NotFoundError):
        client.get("missing")
    assert time.monotonic() - start >= 0.4 and len(proxy.calls) == 2


def test_jitter_only_lengthens_the_wait() -> None:
    policy = RetryPolicy(initial_backoff=0.1, multiplier=2, max_backoff=0.3, jitter=0.5)
    waits = [policy.backoff(n) for n in (1, 2, 3, 4) for _ in range(50)]
    assert all(0.1 <= w <= 0.15 for w in waits[:50]) and all(0.3 <= w <= 0.45 for w in waits[150:])
    assert len(set(waits)) > 100
    rate_limited = errors.ResourceExhaustedError("slow down", reason="RATE_LIMITED", retry_after=2.0)
    assert 2.0 <= policy.delay(1, rate_limited) <= 3.0  # type: ignore[operator]
    assert policy.delay(1, errors.ResourceExhaustedError("full", reason="QUOTA_EXCEEDED")) is None
    assert policy.delay(4, errors.UnavailableError("down")) is None


def test_quota_and_other_errors_are_not_retried(proxy: FlakyProxy) -> None:
    proxy.fail(Fault(status("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED")))
    with (
        MnemoClient(proxy.address, retry=FAST) as client,
        pytest.raises(errors.ResourceExhaustedError) as err,
    ):
        client.get("x")
    assert err.value.reason == "QUOTA_EXCEEDED" and len(proxy.calls) == 1
    proxy.fail(Fault(status("INTERNAL", "INTERNAL")))
    with MnemoClient(proxy.address, retry=FAST) as client, pytest.raises(errors.InternalError):
        client.get("x")
    assert len(proxy.calls) == 1


def test_retries_stop_at_the_deadline(proxy: FlakyProxy) -> None:
    proxy.fail(*[unavailable(retry_after=0.3) for _ in range(10)])
    start = time.monotonic()
    with (
        MnemoClient(proxy.address, retry=RetryPolicy(max_attempts=10)) as client,
        pytest.raises(errors.UnavailableError),
    ):
        client.get("x", timeout=0.5)
    assert time.monotonic() - start < 0.5 and len(proxy.calls) == 2


def test_a_write_keeps_its_request_id_across_retries_and_is_applied_once(
    proxy: FlakyProxy, user: str
) -> None:
    # The first attempt reaches the server but its answer is lost: the retry must
    # not create a second memory.
    proxy.fail(Fault(status("UNAVAILABLE"), after_forwarding=True))
    with MnemoClient(proxy.address, retry=FAST) as client:
        created = client.create("exactly once", user_id=user)
        ids = request_ids(proxy, CREATE, pb.CreateMemoryRequest)
        assert len(ids) == 2 and ids[0] == ids[1] and len(ids[0]) == 32
        assert [m.id for m in client.iter_memories(user_id=user)] == [created.memory.id]


def test_a_write_without_a_request_id_is_not_retried(proxy: FlakyProxy, user: str) -> None:
    proxy.fail(unavailable())
    with MnemoClient(proxy.address, retry=FAST, auto_request_id=False) as client:
        with pytest.raises(errors.UnavailableError):
            client.create("not retried", user_id=user)
        assert request_ids(proxy, CREATE, pb.CreateMemoryRequest) == [""]
        proxy.fail(unavailable())
        client.create("retried", user_id=user, request_id=f"{user}-1")
        assert request_ids(proxy, CREATE, pb.CreateMemoryRequest) == [f"{user}-1"] * 2
    proxy.fail(unavailable())
    with MnemoClient(proxy.address, retry=FAST) as client, pytest.raises(errors.UnavailableError):
        client.create("opted out", user_id=user, request_id="")
    assert len(proxy.calls) == 1


def test_a_batch_write_carries_one_request_id_across_retries(proxy: FlakyProxy, user: str) -> None:
    proxy.fail(unavailable())
    with MnemoClient(proxy.address, retry=FAST) as client:
        client.batch_write([WriteOp.create("batched", user_id=user)])
    ids = request_ids(proxy, BATCH, pb.BatchWriteMemoriesRequest)
    assert len(ids) == 2 and ids[0] == ids[1] != ""


def test_a_batch_write_whose_answer_was_lost_is_applied_once(proxy: FlakyProxy, user: str) -> None:
    proxy.fail(Fault(status("UNAVAILABLE"), after_forwarding=True))
    with MnemoClient(proxy.address, retry=FAST) as client:
        client.batch_write([WriteOp.create("batched once", user_id=user)])
        assert len(list(client.iter_memories(user_id=user))) == 1


async def test_the_async_client_retries_too(proxy: FlakyProxy, user: str) -> None:
    proxy.fail(Fault(status("UNAVAILABLE"), after_forwarding=True), unavailable())
    async with AsyncMnemoClient(proxy.address, retry=FAST) as client:
        created = await client.create("async once", user_id=user)
        assert [m.id for m in (await client.list(user_id=user)).memories] == [created.memory.id]
    ids = request_ids(proxy, CREATE, pb.CreateMemoryRequest)
    assert len(ids) == 3 and len(set(ids)) == 1


def test_the_api_key_and_extra_metadata_are_sent(proxy: FlakyProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy.fail()
    with MnemoClient(proxy.address, api_key="sk-test", metadata={"X-Team": "memory"}) as client:
        client.health()
    call = proxy.calls[0]
    assert call.metadata["authorization"] == "Bearer sk-test" and call.metadata["x-team"] == "memory"
    assert call.metadata["user-agent"].startswith("mnemo-python/0.1.0")

    monkeypatch.setenv("MNEMO_API_KEY", "from-env")
    monkeypatch.setenv("MNEMO_ADDRESS", proxy.address)
    proxy.fail()
    with MnemoClient() as client:
        assert client.address == proxy.address
        client.health()
    assert proxy.calls[0].metadata["authorization"] == "Bearer from-env"
    proxy.fail()
    with MnemoClient(api_key="") as client:
        client.health()
    assert "authorization" not in proxy.calls[0].metadata


class Authenticated(pb_grpc.MemoryServiceServicer):
    """Accepts GetMemory only with the right bearer token, as the server's auth will."""

    def GetMemory(self, request: Any, context: grpc.ServicerContext) -> Any:
        if dict(context.invocation_metadata()).get("authorization") != "Bearer good":
            from grpc_status import rpc_status

            context.abort_with_status(rpc_status.to_status(status("UNAUTHENTICATED", "API_KEY_INVALID")))
        return pb.GetMemoryResponse(memory=memory_pb2.Memory(id=request.id, content="secret"))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make test certificates")
    d = tmp_path_factory.mktemp("certs")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
        )
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            f"{name}.pem",
        )
    return d


def test_tls_and_mutual_tls(certs: Path) -> None:
    credentials = grpc.ssl_server_credentials(
        [((certs / "server.key").read_bytes(), (certs / "server.pem").read_bytes())],
        root_certificates=(certs / "ca.pem").read_bytes(),
        require_client_auth=True,
    )
    server, port = serve(Authenticated(), credentials)
    try:
        mtls = {
            "ca_file": certs / "ca.pem",
            "cert_file": certs / "client.pem",
            "key_file": certs / "client.key",
        }
        with MnemoClient(f"localhost:{port}", api_key="good", **mtls) as client:  # type: ignore[arg-type]
            assert client.get("m1").content == "secret"
        with MnemoClient(f"localhost:{port}", api_key="bad", **mtls) as client:  # type: ignore[arg-type]
            with pytest.raises(errors.UnauthenticatedError) as err:
                client.get("m1")
            assert err.value.reason == "API_KEY_INVALID"
        with (
            MnemoClient(
                f"localhost:{port}",
                api_key="good",
                ca_file=certs / "ca.pem",
                retry=RetryPolicy(max_attempts=1),
            ) as client,
            pytest.raises(errors.UnavailableError),
        ):
            client.get("m1", timeout=5)  # no client certificate
        with pytest.raises(ValueError, match="go together"):
            MnemoClient("localhost:1", cert_file=certs / "client.pem")
    finally:
        server.stop(0)


def test_gzip_and_keepalive_clients_work(server: Any, user: str) -> None:
    with MnemoClient(server.address, gzip=True, keepalive_time=20, keepalive_timeout=5) as client:
        options = dict(client._settings.options())
        assert options["grpc.keepalive_time_ms"] == 20000 and options["grpc.keepalive_timeout_ms"] == 5000
        client.create("compressed " * 200, user_id=user)
        assert len(client.search("compressed", user_id=user).hits) == 1
