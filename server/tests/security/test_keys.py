"""API keys over real gRPC: missing, garbage, revoked and expired keys, the
bootstrap key, listing, history attribution, and unauthenticated health."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from mnemo.v1 import admin_service_pb2 as admin_pb
from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server.config import ConfigError, load_settings

from ..conftest import RunningServer
from ..server_proc import Proc
from .conftest import BOOTSTRAP, As, Keyed, create, fails, new_key, secure_settings, tenant_name, user

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


def test_a_call_without_a_key_is_refused_on_every_kind_of_rpc(secure: RunningServer) -> None:
    anonymous = As(secure, None)
    calls = [
        lambda: anonymous.memory.GetMemory(pb.GetMemoryRequest(id="x")),
        lambda: anonymous.memory.CreateMemory(pb.CreateMemoryRequest()),
        lambda: anonymous.memory.WatchMemories(pb.WatchMemoriesRequest()),
        lambda: anonymous.memory.ExportMemories(pb.ExportMemoriesRequest()),
        lambda: anonymous.memory.StreamSearchMemories(iter([])),
        lambda: anonymous.memory.ImportMemories(iter([])),
        lambda: anonymous.admin.GetStats(admin_pb.GetStatsRequest()),
        lambda: anonymous.admin.ListApiKeys(admin_pb.ListApiKeysRequest()),
    ]
    for call in calls:
        assert fails(call) == (UNAUTHENTICATED, "API_KEY_MISSING")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer garbage",
        "Bearer mnemo_0123456789abcdef_notthesecret",
        f"Bearer {BOOTSTRAP}x",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
    ],
)
def test_a_wrong_key_is_refused(secure: RunningServer, header: str) -> None:
    memory = Keyed(secure.memory, None, header=header)
    code, reason = fails(lambda: memory.ListMemories(pb.ListMemoriesRequest()))
    assert code == UNAUTHENTICATED
    assert reason == ("API_KEY_MISSING" if header in ("Basic dXNlcjpwYXNz", "Bearer ") else "API_KEY_INVALID")


def test_the_right_id_with_a_wrong_secret_is_refused(secure: RunningServer) -> None:
    key = new_key(secure, "reader", tenant=tenant_name())
    assert key.secret is not None
    forged = key.secret[:-4] + ("AAAA" if not key.secret.endswith("AAAA") else "BBBB")
    assert fails(lambda: As(secure, forged).memory.ListMemories(pb.ListMemoriesRequest())) == (
        UNAUTHENTICATED,
        "API_KEY_INVALID",
    )
    As(secure, key.secret).memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": "u"}))


def test_health_and_reflection_need_no_key(secure: RunningServer) -> None:
    health = health_pb2_grpc.HealthStub(secure.channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(secure.channel)
    answers = list(
        stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    )
    names = {s.name for s in answers[0].list_services_response.service}
    assert "mnemo.v1.MemoryService" in names


def test_a_revoked_key_stops_working_at_once(secure: RunningServer) -> None:
    tenant = tenant_name()
    admin = new_key(secure, "admin", tenant=tenant)
    writer = new_key(secure, "writer", by=admin.secret or "")
    create(writer, "before revocation", user_id="u1")
    revoked = admin.admin.RevokeApiKey(admin_pb.RevokeApiKeyRequest(id=writer.key_id)).api_key
    assert revoked.HasField("revoke_time") and revoked.tenant == tenant
    assert fails(lambda: create(writer, "after revocation", user_id="u1")) == (
        UNAUTHENTICATED,
        "API_KEY_INVALID",
    )
    # Revoking again keeps the first revoke time.
    again = admin.admin.RevokeApiKey(admin_pb.RevokeApiKeyRequest(id=writer.key_id)).api_key
    assert again.revoke_time == revoked.revoke_time


def test_an_expired_key_stops_working(secure: RunningServer) -> None:
    key = new_key(secure, "reader", tenant=tenant_name(), ttl_s=1.0)
    key.memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": "u"}))
    time.sleep(1.2)
    assert fails(lambda: key.memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": "u"}))) == (
        UNAUTHENTICATED,
        "API_KEY_INVALID",
    )


def test_keys_are_listed_by_page_without_secrets_and_revoked_ones_on_request(secure: RunningServer) -> None:
    tenant = tenant_name()
    admin = new_key(secure, "admin", tenant=tenant)
    made = [new_key(secure, "reader", by=admin.secret or "") for _ in range(3)]
    admin.admin.RevokeApiKey(admin_pb.RevokeApiKeyRequest(id=made[0].key_id))
    seen: list[admin_pb.ApiKey] = []
    token = ""
    while True:
        page = admin.admin.ListApiKeys(admin_pb.ListApiKeysRequest(page_size=2, page_token=token))
        assert len(page.api_keys) <= 2
        seen.extend(page.api_keys)
        token = page.next_page_token
        if not token:
            break
    assert {k.id for k in seen} == {admin.key_id, made[1].key_id, made[2].key_id}
    assert all(k.tenant == tenant for k in seen)
    with_revoked = admin.admin.ListApiKeys(admin_pb.ListApiKeysRequest(show_revoked=True)).api_keys
    assert made[0].key_id in {k.id for k in with_revoked}
    listed = {k.id: k for k in with_revoked}
    assert listed[made[1].key_id].role == admin_pb.API_KEY_ROLE_READER
    # Only the id, never the secret, is visible in a listing.
    assert made[1].secret is not None and made[1].secret not in str(with_revoked)
    # A key's use is recorded (to the minute).
    made[1].memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": "u"}))
    time.sleep(0.2)
    after = {k.id: k for k in admin.admin.ListApiKeys(admin_pb.ListApiKeysRequest()).api_keys}
    assert after[made[1].key_id].HasField("last_use_time")
    code, reason = fails(
        lambda: admin.admin.ListApiKeys(admin_pb.ListApiKeysRequest(page_size=2, page_token="bogus"))
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")


def test_only_the_system_tenant_manages_other_tenants_keys(secure: RunningServer) -> None:
    a, b = tenant_name(), tenant_name()
    admin_a = new_key(secure, "admin", tenant=a)
    admin_b = new_key(secure, "admin", tenant=b)
    code, reason = fails(lambda: new_key(secure, "reader", by=admin_a.secret or "", tenant=b))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_FORBIDDEN")
    # An admin of A cannot see or revoke B's keys: they do not exist for it.
    assert fails(lambda: admin_a.admin.RevokeApiKey(admin_pb.RevokeApiKeyRequest(id=admin_b.key_id))) == (
        grpc.StatusCode.NOT_FOUND,
        "API_KEY_NOT_FOUND",
    )
    assert admin_b.key_id not in {
        k.id for k in admin_a.admin.ListApiKeys(admin_pb.ListApiKeysRequest()).api_keys
    }
    # Nor list them by naming B.
    assert fails(lambda: admin_a.admin.ListApiKeys(admin_pb.ListApiKeysRequest(tenant=b))) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "ROLE_FORBIDDEN",
    )
    assert {k.id for k in admin_a.admin.ListApiKeys(admin_pb.ListApiKeysRequest(tenant=a)).api_keys} == {
        admin_a.key_id
    }
    # The system tenant lists another tenant's keys by naming it, and may revoke any key.
    system = Keyed(secure.admin, BOOTSTRAP)
    listed_b = system.ListApiKeys(admin_pb.ListApiKeysRequest(tenant=b)).api_keys
    assert [(k.id, k.tenant) for k in listed_b] == [(admin_b.key_id, b)]
    assert admin_b.key_id not in {k.id for k in system.ListApiKeys(admin_pb.ListApiKeysRequest()).api_keys}
    assert fails(lambda: system.ListApiKeys(admin_pb.ListApiKeysRequest(tenant="bad tenant"))) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    system.RevokeApiKey(admin_pb.RevokeApiKeyRequest(id=admin_b.key_id))
    assert system.ListApiKeys(admin_pb.ListApiKeysRequest(tenant=b)).api_keys == []
    assert [
        k.id for k in system.ListApiKeys(admin_pb.ListApiKeysRequest(tenant=b, show_revoked=True)).api_keys
    ] == [admin_b.key_id]
    assert fails(lambda: admin_b.admin.ListApiKeys(admin_pb.ListApiKeysRequest())) == (
        UNAUTHENTICATED,
        "API_KEY_INVALID",
    )


@pytest.mark.parametrize(
    "request_",
    [
        admin_pb.CreateApiKeyRequest(),
        admin_pb.CreateApiKeyRequest(role=admin_pb.API_KEY_ROLE_ADMIN, user_ids=["alice"]),
        admin_pb.CreateApiKeyRequest(role=admin_pb.API_KEY_ROLE_READER, tenant="bad tenant"),
        admin_pb.CreateApiKeyRequest(role=admin_pb.API_KEY_ROLE_READER, display_name="x" * 129),
        admin_pb.CreateApiKeyRequest(role=admin_pb.API_KEY_ROLE_READER, user_ids=[""]),
        admin_pb.CreateApiKeyRequest(role=admin_pb.API_KEY_ROLE_READER, ttl={"seconds": -5}),
    ],
)
def test_invalid_key_requests_are_refused(secure: RunningServer, request_: Any) -> None:
    code, reason = fails(lambda: Keyed(secure.admin, BOOTSTRAP).CreateApiKey(request_))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")


def test_history_records_the_key_that_made_each_change(secure: RunningServer) -> None:
    tenant = tenant_name()
    first, second = (new_key(secure, "writer", tenant=tenant) for _ in range(2))
    memory = create(first, "version one", user_id="u1")
    second.memory.UpdateMemory(
        pb.UpdateMemoryRequest(
            memory={"id": memory.id, "content": "version two"}, update_mask={"paths": ["content"]}
        )
    )
    versions = first.memory.GetMemoryHistory(pb.GetMemoryHistoryRequest(id=memory.id)).versions
    assert [v.api_key_id for v in versions] == [second.key_id, first.key_id]


def test_a_key_of_an_unknown_system_tenant_key_id_cannot_be_revoked(secure: RunningServer) -> None:
    assert fails(
        lambda: Keyed(secure.admin, BOOTSTRAP).RevokeApiKey(admin_pb.RevokeApiKeyRequest(id="nope"))
    ) == (
        grpc.StatusCode.NOT_FOUND,
        "API_KEY_NOT_FOUND",
    )


def test_another_server_sharing_the_store_sees_a_revocation_within_the_cache_time(
    tmp_path: Path, make_server: Any
) -> None:
    one = make_server(secure_settings(tmp_path, auth={"key_cache_s": 0.5}))
    two = make_server(secure_settings(tmp_path, auth={"key_cache_s": 0.5}))
    key = new_key(one, "reader", tenant=tenant_name())
    on_two = As(two, key.secret)
    on_two.memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": "u"}))
    Keyed(one.admin, BOOTSTRAP).RevokeApiKey(admin_pb.RevokeApiKeyRequest(id=key.key_id))
    # Refused at once where it was revoked, and within key_cache_s elsewhere.
    assert fails(lambda: As(one, key.secret).memory.ListMemories(pb.ListMemoriesRequest())) == (
        UNAUTHENTICATED,
        "API_KEY_INVALID",
    )
    deadline = time.monotonic() + 0.5 + 1.0
    while True:
        try:
            on_two.memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": "u"}))
        except grpc.RpcError as exc:
            assert exc.code() == UNAUTHENTICATED
            break
        assert time.monotonic() < deadline, "the other server kept accepting a revoked key"
        time.sleep(0.05)


def test_the_bootstrap_key_file_works_through_the_command(tmp_path: Path) -> None:
    secret_file = tmp_path / "bootstrap.key"
    secret_file.write_text(BOOTSTRAP + "\n")
    proc = Proc(tmp_path / "data", "--auth-enabled", "on", "--auth-bootstrap-key-file", str(secret_file))
    try:
        stats = Keyed(proc.admin, BOOTSTRAP).GetStats(admin_pb.GetStatsRequest())
        assert stats.dimension > 0
        created = Keyed(proc.admin, BOOTSTRAP).CreateApiKey(
            admin_pb.CreateApiKeyRequest(tenant="acme", role=admin_pb.API_KEY_ROLE_WRITER)
        )
        assert created.api_key.tenant == "acme"
        written = Keyed(proc.memory, created.secret).CreateMemory(
            pb.CreateMemoryRequest(memory={"user_id": user(), "content": "via the command"})
        )
        assert written.memory.id
        code, reason = fails(lambda: proc.admin.GetStats(admin_pb.GetStatsRequest()))
        assert (code, reason) == (UNAUTHENTICATED, "API_KEY_MISSING")
        proc.popen.terminate()
        proc.popen.wait(30)
        # The secret never reaches the log.
        log = proc.rest_of_log()
        assert "API keys required" in log and BOOTSTRAP not in log
    finally:
        proc.close()


@pytest.mark.parametrize("secret", ["short", "has a space" + "x" * 40])
def test_a_weak_bootstrap_key_is_refused_at_start(secret: str) -> None:
    with pytest.raises(ConfigError, match="bootstrap"):
        load_settings(env={"MNEMO_AUTH_BOOTSTRAP_KEY": secret})


def test_a_missing_bootstrap_key_file_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"auth\.bootstrap_key_file"):
        load_settings(env={}, overrides={"auth.bootstrap_key_file": str(tmp_path / "absent")})
