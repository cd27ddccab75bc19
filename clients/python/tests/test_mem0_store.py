"""mem0 with Mnemo underneath: a real mem0 `Memory` (its prompts, its OpenAI client
speaking HTTP to a local recorded-reply server, the bundled embedding model)
configured with `{"provider": "mnemo"}`, against the real server of conftest."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mem0 import AsyncMemory, Memory
from mem0_helpers import LlmServer, llm_server, mem0_config

import mnemo.integrations.mem0 as mnemo_mem0
from mnemo import MnemoClient
from mnemo.errors import InvalidArgumentError, NotFoundError
from mnemo.integrations.mem0 import MnemoVectorStore, PayloadError, UnsupportedFilterError


@pytest.fixture(scope="module")
def llm() -> Iterator[LlmServer]:
    with llm_server() as server:
        yield server


@pytest.fixture
def collection() -> str:
    return f"c{uuid.uuid4().hex[:10]}"


@pytest.fixture
def memory(server: Any, llm: LlmServer, collection: str, tmp_path: Path) -> Iterator[Memory]:
    block = {"provider": "mnemo", "config": {"address": server.address, "collection_name": collection}}
    m = Memory.from_config(mem0_config(block, llm.base_url, tmp_path / "history.db"))
    yield m
    m.close()
    m.vector_store.close()


@pytest.fixture
def store(server: Any, collection: str) -> Iterator[MnemoVectorStore]:
    s = MnemoVectorStore(collection_name=collection, address=server.address)
    yield s
    s.close()


def vector(memory: Memory, text: str) -> list[float]:
    return list(memory.embedding_model.embed(text, "add"))


def test_memory_add_search_get_all_update_delete_history(
    memory: Memory, client: MnemoClient, user: str, llm: LlmServer, collection: str
) -> None:
    assert isinstance(memory.vector_store, MnemoVectorStore)
    added = memory.add(
        [{"role": "user", "content": "I'm vegetarian and allergic to peanuts."}], user_id=user
    )["results"]
    assert sorted(r["memory"] for r in added) == ["Is allergic to peanuts", "Is vegetarian"]
    assert all(r["event"] == "ADD" for r in added)
    assert "vegetarian" in llm.requests[-1]["messages"][-1]["content"]  # mem0's own prompt went out

    # Stored in Mnemo, in the user's scope, with mem0's payload as metadata.
    stored = {m.content: m for m in client.iter_memories(user_id=user)}
    assert set(stored) == {"Is allergic to peanuts", "Is vegetarian"}
    peanuts = stored["Is allergic to peanuts"]
    assert peanuts.metadata["hash"] == hashlib.md5(b"Is allergic to peanuts").hexdigest()
    assert peanuts.metadata["mem0_collection"] == collection
    assert peanuts.metadata["created_at"] == peanuts.metadata["updated_at"]
    assert {r["id"] for r in added} == {m.id for m in stored.values()}

    hits = memory.search("Does he have a peanut allergy?", filters={"user_id": user}, top_k=2)["results"]
    assert hits[0]["memory"] == "Is allergic to peanuts"
    assert hits[0]["user_id"] == user and hits[0]["hash"] == peanuts.metadata["hash"]

    listed = memory.get_all(filters={"user_id": user})["results"]
    assert sorted(r["memory"] for r in listed) == ["Is allergic to peanuts", "Is vegetarian"]
    assert memory.get(peanuts.id)["memory"] == "Is allergic to peanuts"

    memory.update(peanuts.id, text="Is allergic to peanuts and shellfish")
    after = client.get(peanuts.id)
    assert after.content == "Is allergic to peanuts and shellfish" and after.version == 2
    assert after.metadata["created_at"] == peanuts.metadata["created_at"]
    assert after.metadata["hash"] == hashlib.md5(b"Is allergic to peanuts and shellfish").hexdigest()
    hits = memory.search("shellfish", filters={"user_id": user}, top_k=1)["results"]
    assert hits[0]["id"] == peanuts.id

    memory.delete(peanuts.id)
    with pytest.raises(NotFoundError):
        client.get(peanuts.id)
    assert memory.get(peanuts.id) is None
    events = [h["event"] for h in memory.history(peanuts.id)]
    assert events == ["ADD", "UPDATE", "DELETE"]


def test_raw_add_and_delete_all(memory: Memory, client: MnemoClient, user: str) -> None:
    memory.add("Remember the door code is 4411", user_id=user, run_id="r1", infer=False)
    memory.add("My favourite colour is green", user_id=user, metadata={"topic": "prefs"}, infer=False)
    runs = {m.content: m.run_id for m in client.iter_memories(user_id=user)}
    assert runs == {"Remember the door code is 4411": "r1", "My favourite colour is green": ""}
    only_run = memory.get_all(filters={"user_id": user, "run_id": "r1"})["results"]
    assert [r["memory"] for r in only_run] == ["Remember the door code is 4411"]
    prefs = memory.get_all(filters={"user_id": user, "topic": {"eq": "prefs"}})["results"]
    assert [r["metadata"]["topic"] for r in prefs] == ["prefs"]
    memory.delete_all(user_id=user)
    assert list(client.iter_memories(user_id=user)) == []


def test_users_never_see_each_other(memory: Memory, user: str) -> None:
    other = f"{user}-other"
    memory.add("I play tennis on Sundays", user_id=user)
    memory.add("I play tennis on Sundays", user_id=other)
    mine = memory.search("tennis", filters={"user_id": user}, top_k=10)["results"]
    assert [r["user_id"] for r in mine] == [user]
    assert [r["user_id"] for r in memory.get_all(filters={"user_id": other})["results"]] == [other]


def test_metadata_filters_are_applied_by_mnemo(memory: Memory, store: MnemoVectorStore, user: str) -> None:
    rows = [("tea", 1, "food"), ("pho", 5, "food"), ("Lyon", 9, "travel"), ("Oslo", 3, None)]
    payloads = []
    for text, n, topic in rows:
        p: dict[str, Any] = {"data": f"likes {text}", "user_id": user, "n": n}
        if topic:
            p["topic"] = topic
        payloads.append(p)
    store.insert([vector(memory, p["data"]) for p in payloads], payloads=payloads)
    q = vector(memory, "likes")

    def found(filters: dict[str, Any]) -> set[str]:
        return {
            r.payload["data"].removeprefix("likes ") for r in store.search("", q, top_k=10, filters=filters)
        }

    assert found({"user_id": user}) == {"tea", "pho", "Lyon", "Oslo"}
    assert found({"user_id": user, "topic": "food"}) == {"tea", "pho"}
    assert found({"user_id": user, "topic": {"in": ["travel", "food"]}, "n": {"gte": 5}}) == {"pho", "Lyon"}
    assert found({"user_id": user, "topic": {"nin": ["food"]}}) == {"Lyon", "Oslo"}
    assert found({"user_id": user, "topic": "*"}) == {"tea", "pho", "Lyon"}
    assert found({"user_id": user, "$or": [{"n": {"lt": 2}}, {"topic": "travel"}]}) == {"tea", "Lyon"}
    assert found({"user_id": user, "$not": [{"topic": "food"}]}) == {"Lyon", "Oslo"}
    # Through mem0's own filter processing (AND / OR / NOT and operators).
    hits = memory.search(
        "likes", filters={"user_id": user, "OR": [{"n": {"gt": 8}}, {"topic": {"eq": "food"}}]}, threshold=0.0
    )["results"]
    assert {h["memory"] for h in hits} == {"likes tea", "likes pho", "likes Lyon"}
    # Never ignored: what Mnemo cannot apply exactly is refused.
    with pytest.raises(UnsupportedFilterError, match="contains"):
        memory.search("likes", filters={"user_id": user, "topic": {"contains": "foo"}})
    with pytest.raises(UnsupportedFilterError, match="unknown operator"):
        store.search("", q, filters={"user_id": user, "topic": {"regex": "f.*"}})
    assert store.list(filters={"user_id": user, "n": {"lte": 3}})[0] != []


def test_keyword_search_batch_and_collections(
    memory: Memory, store: MnemoVectorStore, server: Any, user: str, collection: str
) -> None:
    texts = ["order 7781 shipped to Porto", "the cat sleeps on the sofa", "invoice 7781 is paid"]
    payloads = [{"data": t, "user_id": user} for t in texts]
    store.insert(
        [vector(memory, t) for t in texts], payloads=payloads, ids=[f"k{i}-{user}" for i in range(3)]
    )

    keyword = store.keyword_search("7781", top_k=5, filters={"user_id": user})
    assert {r.payload["data"] for r in keyword} == {texts[0], texts[2]}
    assert keyword[0].score is not None and keyword[0].score > 0

    batch = store.search_batch(
        ["cat", "invoice"],
        [vector(memory, "a sleeping cat"), vector(memory, "paid bill")],
        top_k=1,
        filters={"user_id": user},
    )
    assert [[r.payload["data"] for r in rs] for rs in batch] == [[texts[1]], [texts[2]]]

    other = MnemoVectorStore(collection_name=f"{collection}-b", address=server.address)
    try:
        other.insert([vector(memory, "elsewhere")], payloads=[{"data": "elsewhere", "user_id": user}])
        assert other.get(f"k0-{user}") is None  # another collection's record is not found
        assert [r.payload["data"] for r in other.list(filters={"user_id": user})[0]] == ["elsewhere"]
        assert {collection, f"{collection}-b"} <= set(store.list_cols())
        assert store.col_info() == {"name": collection, "count": 3}
        store.reset()
        assert store.col_info()["count"] == 0
        assert other.col_info()["count"] == 1  # untouched
    finally:
        other.delete_col()
        other.close()


def test_bad_records_store_nothing(
    memory: Memory, store: MnemoVectorStore, client: MnemoClient, user: str
) -> None:
    good = {"data": "fine", "user_id": user}
    with pytest.raises(PayloadError, match="data"):
        store.insert([vector(memory, "x")] * 2, payloads=[good, {"user_id": user}])
    with pytest.raises(PayloadError, match="user_id"):
        store.insert([vector(memory, "x")], payloads=[{"data": "no scope"}])
    with pytest.raises(PayloadError, match="reserved"):
        store.insert([vector(memory, "x")], payloads=[{**good, "mem0_collection": "other"}])
    with pytest.raises(InvalidArgumentError) as caught:
        store.insert([[0.5] * 7], payloads=[good])
    assert caught.value.reason == "EMBEDDING_DIMENSION_MISMATCH"
    # An atomic batch: the taken id refuses the whole batch.
    store.insert([vector(memory, "first")], payloads=[good], ids=[f"taken-{user}"])
    with pytest.raises(Exception) as taken:
        store.insert(
            [vector(memory, "a"), vector(memory, "b")],
            payloads=[good, good],
            ids=[f"new-{user}", f"taken-{user}"],
        )
    assert getattr(taken.value, "reason", None) in ("MEMORY_ALREADY_EXISTS", "BATCH_ABORTED")
    assert [m.id for m in client.iter_memories(user_id=user)] == [f"taken-{user}"]
    with pytest.raises(PayloadError, match="cannot change"):
        store.update(f"taken-{user}", payload={"data": "fine", "user_id": "someone-else"})
    with pytest.raises(ValueError, match="not found"):
        store.update(f"missing-{user}", payload=good)
    assert client.get(f"taken-{user}").version == 1


def test_registration_is_what_the_user_writes(server: Any, llm: LlmServer, tmp_path: Path) -> None:
    assert mnemo_mem0.PROVIDER == "mnemo"
    config = mem0_config(
        {"provider": "mnemo", "config": {"address": server.address, "unknown_key": 1}},
        llm.base_url,
        tmp_path / "h.db",
    )
    with pytest.raises(ValueError, match="unknown_key"):
        Memory.from_config(config)


def test_awkward_keys_and_values_match_exactly(memory: Memory, store: MnemoVectorStore, user: str) -> None:
    tricky = 'said "hi" \\ then\nleft'
    payloads = [
        {"data": "one", "user_id": user, "favourite food": "pho", "note": tricky},
        {"data": "two", "user_id": user, "favourite food": "pho!", "note": "said hi"},
    ]
    store.insert([vector(memory, "one"), vector(memory, "two")], payloads=payloads)
    q = vector(memory, "one")
    [hit] = store.search("", q, top_k=5, filters={"user_id": user, "favourite food": "pho"})
    assert hit.payload == payloads[0]  # the payload round-trips exactly
    [hit] = store.search("", q, top_k=5, filters={"user_id": user, "note": tricky})
    assert hit.payload["data"] == "one"
    assert store.search("", q, filters={"user_id": user, "note": "said"}) == []
    with pytest.raises(UnsupportedFilterError, match="quotes"):
        store.search("", q, filters={"user_id": user, 'bad"key': 1})
    # An empty scope id is an exact match on "no user", never "any user".
    assert store.search("", q, filters={"user_id": ""}) == []


async def test_async_memory_uses_the_same_store(
    server: Any, llm: LlmServer, collection: str, tmp_path: Path, user: str
) -> None:
    block = {"provider": "mnemo", "config": {"address": server.address, "collection_name": collection}}
    m = AsyncMemory.from_config(mem0_config(block, llm.base_url, tmp_path / "async.db"))
    try:
        added = (await m.add("I enjoy chess", user_id=user))["results"]
        assert [r["memory"] for r in added] == ["Enjoys playing chess online"]
        hits = (await m.search("board games", filters={"user_id": user}))["results"]
        assert hits[0]["id"] == added[0]["id"]
    finally:
        m.vector_store.close()
