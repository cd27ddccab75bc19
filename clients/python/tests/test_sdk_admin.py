"""AdminService through MnemoClient against the real server, and health."""

from __future__ import annotations

import pytest

from mnemo import ApiKeyRole, IndexKind, MnemoClient
from mnemo.errors import NotFoundError


def test_stats_count_the_scope(client: MnemoClient, user: str) -> None:
    for i in range(3):
        client.create(f"stat {i}", user_id=user, agent_id="a1")
    stats = client.get_stats(user_id=user)
    assert stats.embedding_model == "all-MiniLM-L6-v2" and stats.dimension == 384
    assert stats.server_version and stats.revision >= 3
    (tenant,) = stats.tenants
    assert tenant.memory_count >= 3 and tenant.content_bytes > 0
    assert [(s.user_id, s.agent_id, s.memory_count) for s in tenant.scopes] == [(user, "a1", 3)]
    assert stats.shards and all(s.kind in set(IndexKind) and s.dimension == 384 for s in stats.shards)
    assert stats.raw.dimension == 384


def test_consistency_check_and_snapshot(client: MnemoClient, user: str) -> None:
    client.create("checked", user_id=user)
    report = client.check_consistency(repair=True)
    assert report.consistent and report.store_count == report.index_count and report.inconsistencies == ()
    snapshot = client.create_snapshot()
    assert snapshot.revision >= 1 and snapshot.shard_count >= 1 and snapshot.snapshot_time is not None


def test_health(client: MnemoClient) -> None:
    assert client.health() == "SERVING"
    assert client.health("mnemo.v1.AdminService") == "SERVING"


def test_api_keys_are_created_listed_and_revoked(client: MnemoClient, user: str) -> None:
    created = client.create_api_key("writer", user_ids=[user], display_name="test key", ttl=3600)
    key = created.api_key
    assert created.secret and key.id and key.role is ApiKeyRole.WRITER and key.user_ids == (user,)
    assert key.display_name == "test key" and key.expire_time is not None and key.revoke_time is None
    assert key.id in [k.id for k in client.iter_api_keys()]
    revoked = client.revoke_api_key(key.id)
    assert revoked.revoke_time is not None
    assert key.id not in [k.id for k in client.iter_api_keys()]
    assert key.id in [k.id for k in client.iter_api_keys(show_revoked=True)]
    with pytest.raises(NotFoundError) as err:
        client.revoke_api_key("no-such-key")
    assert err.value.reason == "API_KEY_NOT_FOUND"


def test_api_keys_of_another_tenant_are_listed_by_naming_it(client: MnemoClient, user: str) -> None:
    tenant = f"t-{user}"
    other = client.create_api_key("reader", tenant=tenant).api_key
    assert [(k.id, k.tenant) for k in client.iter_api_keys(tenant=tenant)] == [(other.id, tenant)]
    assert [k.id for k in client.list_api_keys(tenant=tenant).api_keys] == [other.id]
    assert other.id not in {k.id for k in client.iter_api_keys()}


def test_api_key_pages(client: MnemoClient) -> None:
    ids = {client.create_api_key(ApiKeyRole.READER).api_key.id for _ in range(3)}
    page = client.list_api_keys(page_size=2)
    assert len(page.api_keys) == 2 and page.next_page_token
    assert ids <= {k.id for k in client.iter_api_keys(page_size=2)}
