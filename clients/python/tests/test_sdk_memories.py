"""MnemoClient against the real server: CreateMemory, GetMemory, UpdateMemory,
DeleteMemory, ListMemories (pages and iterator) and GetMemoryHistory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mnemo import (
    ChangeType,
    DedupPolicy,
    MemoryKind,
    MemoryLink,
    MnemoClient,
)
from mnemo.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from mnemo.v1 import memory_pb2


def test_create_then_get_round_trips_every_field(client: MnemoClient, user: str) -> None:
    target = client.create("the link target", user_id=user).memory
    expire = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    metadata = {
        "big": 2**63 - 1,
        "small": -(2**63),
        "ratio": 0.5,
        "name": "tea",
        "ok": True,
        "none": None,
        "list": [1, "two", 3.0, [False]],
        "nested": {"x": {"y": 1}},
    }
    created = client.create(
        "Alice prefers green tea",
        user_id=user,
        agent_id="helper",
        run_id="run-1",
        kind="semantic",
        tags=["drink", "pref", "drink"],
        metadata=metadata,
        id=f"{user}-tea",
        expire_time=expire,
        links=[MemoryLink(target.id, "related_to", 0.5)],
        pinned=True,
    )
    m = created.memory
    assert not created.deduplicated
    assert (m.id, m.user_id, m.agent_id, m.run_id) == (f"{user}-tea", user, "helper", "run-1")
    assert m.kind is MemoryKind.SEMANTIC and m.tags == ("drink", "pref")
    assert m.metadata == metadata
    assert type(m.metadata["list"][2]) is float and type(m.metadata["big"]) is int
    assert m.expire_time == expire and m.expire_time.tzinfo is not None
    assert m.links == (MemoryLink(target.id, "related_to", 0.5),) and m.pinned
    assert m.version == 1 and m.revision > 0 and m.etag and len(m.content_hash) == 64
    assert m.create_time is not None and m.create_time.tzinfo is UTC
    assert m.embedding is None and m.embedding_model == "all-MiniLM-L6-v2"
    assert isinstance(m.raw, memory_pb2.Memory) and m.raw.id == m.id

    got = client.get(m.id)
    assert got == m


def test_read_mask_and_embeddings(client: MnemoClient, user: str) -> None:
    vector = [0.0] * 384
    vector[7] = 1.0
    m = client.create("given vector", user_id=user, embedding=vector, embedding_model="mine").memory
    assert m.embedding_model == "mine"
    got = client.get(m.id, read_mask=["content", "embedding"])
    assert got.content == "given vector" and got.user_id == "" and got.embedding == tuple(vector)


def test_ttl_sets_an_expiry(client: MnemoClient, user: str) -> None:
    before = datetime.now(UTC)
    m = client.create("short-lived", user_id=user, ttl=timedelta(hours=1)).memory
    assert m.expire_time is not None
    assert before + timedelta(minutes=59) < m.expire_time < before + timedelta(minutes=61)


def test_exact_dedup_returns_the_existing_memory(client: MnemoClient, user: str) -> None:
    first = client.create("I like jazz", user_id=user).memory
    again = client.create("I like jazz", user_id=user, dedup="exact")
    assert again.deduplicated and again.memory.id == first.id
    merged = client.create(
        "I like jazz", user_id=user, tags=["music"], dedup=DedupPolicy("exact", merge=True)
    )
    assert merged.deduplicated and merged.memory.tags == ("music",) and merged.memory.version == 2


def test_update_changes_only_the_fields_given(client: MnemoClient, user: str) -> None:
    m = client.create(
        "The cat is called Tom", user_id=user, tags=["pet"], metadata={"a": 1}, ttl=3600, pinned=True
    ).memory
    updated = client.update(m.id, content="The cat is called Felix", etag=m.etag)
    assert updated.content == "The cat is called Felix" and updated.version == 2
    assert updated.tags == ("pet",) and updated.metadata == {"a": 1} and updated.pinned
    assert updated.expire_time == m.expire_time

    cleared = client.update(m.id, tags=None, metadata=None, expire_time=None, pinned=False, kind="procedural")
    assert cleared.tags == () and cleared.metadata == {} and cleared.expire_time is None
    assert not cleared.pinned and cleared.kind is MemoryKind.PROCEDURAL
    assert cleared.content == "The cat is called Felix"


def test_update_with_a_stale_etag_fails_and_names_the_current_one(client: MnemoClient, user: str) -> None:
    m = client.create("v1", user_id=user).memory
    now = client.update(m.id, content="v2")
    with pytest.raises(FailedPreconditionError) as err:
        client.update(m.id, content="v3", etag=m.etag)
    assert err.value.reason == "ETAG_MISMATCH"
    assert err.value.metadata.get("current_etag") == now.etag
    assert client.get(m.id).content == "v2"


def test_delete_with_etag_then_not_found(client: MnemoClient, user: str) -> None:
    m = client.create("to delete", user_id=user).memory
    with pytest.raises(FailedPreconditionError):
        client.delete(m.id, etag="stale")
    result = client.delete(m.id, etag=m.etag)
    assert result.revision > m.revision and result.raw.revision == result.revision
    with pytest.raises(NotFoundError) as err:
        client.get(m.id)
    assert err.value.reason == "MEMORY_NOT_FOUND"


def test_list_pages_and_iterator_cover_every_memory_once(client: MnemoClient, user: str) -> None:
    ids = [client.create(f"note {i}", user_id=user).memory.id for i in range(7)]
    page = client.list(user_id=user, order_by="create_time", page_size=3)
    assert [m.id for m in page.memories] == ids[:3] and page.next_page_token
    page2 = client.list(user_id=user, order_by="create_time", page_size=3, page_token=page.next_page_token)
    assert [m.id for m in page2.memories] == ids[3:6]

    assert [m.id for m in client.iter_memories(user_id=user, order_by="create_time", page_size=3)] == ids
    assert [m.id for m in client.iter_memories(user_id=user)] == ids[::-1]  # create_time desc
    assert [m.id for m in client.iter_memories(user_id=user, filter=f'id = "{ids[3]}"')] == [ids[3]]
    with pytest.raises(InvalidArgumentError) as err:
        client.list(
            user_id=user, order_by="create_time", page_token=page.next_page_token, filter="pinned = true"
        )
    assert err.value.reason == "INVALID_PAGE_TOKEN"


def test_list_filters_by_tag(client: MnemoClient, user: str) -> None:
    client.create("tagged", user_id=user, tags=["pref"])
    client.create("untagged", user_id=user)
    assert [m.content for m in client.iter_memories(user_id=user, filter='tags:"pref"')] == ["tagged"]


def test_history_records_every_version_and_pages(client: MnemoClient, user: str) -> None:
    m = client.create("v1", user_id=user).memory
    client.update(m.id, content="v2")
    client.update(m.id, tags=["t"])
    page = client.history(m.id, page_size=2)
    assert [v.version for v in page.versions] == [3, 2] and page.next_page_token
    versions = list(client.iter_history(m.id, page_size=2))
    assert [(v.version, v.change_type) for v in versions] == [
        (3, ChangeType.UPDATE),
        (2, ChangeType.UPDATE),
        (1, ChangeType.CREATE),
    ]
    assert versions[0].changed_fields == ("tags",)
    assert versions[1].before is not None and versions[1].before.content == "v1"
    assert versions[1].after is not None and versions[1].after.content == "v2"
    assert versions[2].before is None and versions[0].change_time is not None
