"""AsyncMnemoClient against the real server: every RPC, the iterators and the
watch, with the same results as the blocking client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mnemo import AsyncMnemoClient, EventType, MemoryKind, SearchQuery, WriteOp
from mnemo.errors import InvalidArgumentError, NotFoundError


async def test_memory_crud_history_and_pages(aclient: AsyncMnemoClient, user: str) -> None:
    created = await aclient.create("async memory", user_id=user, kind="semantic", metadata={"n": 1})
    m = created.memory
    assert (await aclient.get(m.id)) == m and m.kind is MemoryKind.SEMANTIC
    updated = await aclient.update(m.id, content="async memory, changed", etag=m.etag)
    assert updated.version == 2
    for i in range(4):
        await aclient.create(f"more {i}", user_id=user)
    page = await aclient.list(user_id=user, page_size=2, order_by="create_time")
    assert len(page.memories) == 2 and page.next_page_token
    contents = [
        x.content async for x in aclient.iter_memories(user_id=user, page_size=2, order_by="create_time")
    ]
    assert contents == ["async memory, changed", "more 0", "more 1", "more 2", "more 3"]
    assert [v.version for v in (await aclient.history(m.id)).versions] == [2, 1]
    assert [v.version async for v in aclient.iter_history(m.id, page_size=1)] == [2, 1]
    assert (await aclient.delete(m.id)).revision > updated.revision
    with pytest.raises(NotFoundError) as err:
        await aclient.get(m.id)
    assert err.value.reason == "MEMORY_NOT_FOUND"


async def test_search_batch_stream_and_batch_write(aclient: AsyncMnemoClient, user: str) -> None:
    result = await aclient.batch_write(
        [
            WriteOp.create("Alice is allergic to peanuts", user_id=user),
            WriteOp.create("Bob plays the trumpet", user_id=user),
            WriteOp.delete("nope"),
        ]
    )
    assert [r.ok for r in result.results] == [True, True, False]
    hits = (await aclient.search("food allergy", user_id=user, top_k=1)).hits
    assert hits[0].memory.content == "Alice is allergic to peanuts"
    batch = await aclient.batch_search(["food allergy", SearchQuery(query="music")], user_id=user, top_k=1)
    assert [r.hits[0].memory.content for r in batch] == [
        "Alice is allergic to peanuts",
        "Bob plays the trumpet",
    ]

    async def queries() -> AsyncIterator[str | SearchQuery]:
        yield "food allergy"
        yield SearchQuery(query="x", filter="nope = 1", query_id="bad")

    answers = {a.query_id: a async for a in aclient.stream_search(queries(), user_id=user, top_k=1)}
    assert answers["0"].result is not None and answers["0"].result.hits[0].memory.content.startswith("Alice")
    assert isinstance(answers["bad"].error, InvalidArgumentError)


async def test_export_import_forget_and_jsonl(aclient: AsyncMnemoClient, user: str, tmp_path: Path) -> None:
    ids = [(await aclient.create(f"export me {i}", user_id=user)).memory.id for i in range(3)]
    stream = aclient.export(user_id=user)
    header = await stream.header()
    memories = [m async for m in stream]
    assert header.format_version == 1 and sorted(m.id for m in memories) == sorted(ids)
    assert await aclient.export_jsonl(tmp_path / "x.jsonl", user_id=user) == 3
    dry = await aclient.delete_memories(user_id=user, dry_run=True)
    assert dry.deleted_count == 3
    assert (await aclient.delete_memories(user_id=user)).deleted_count == 3

    async def items() -> AsyncIterator[object]:
        for m in memories[:2]:
            yield m

    assert (await aclient.import_memories(items(), header=header)).imported_count == 2  # type: ignore[arg-type]
    result = await aclient.import_jsonl(tmp_path / "x.jsonl")
    assert (result.imported_count, result.skipped_count) == (1, 2)


async def test_watch_yields_changes_live(aclient: AsyncMnemoClient, user: str) -> None:
    first = (await aclient.create("watched", user_id=user)).memory
    async with aclient.watch(user_id=user, start_revision=first.revision - 1) as watch:
        event = await anext(watch)
        assert (event.type, event.memory_id) == (EventType.PUT, first.id)
        pending = asyncio.ensure_future(anext(watch))
        await asyncio.sleep(0.2)
        second = (await aclient.create("live", user_id=user)).memory
        event = await asyncio.wait_for(pending, 10)
        assert event.memory_id == second.id and watch.revision == second.revision


async def test_admin_calls(aclient: AsyncMnemoClient, user: str) -> None:
    await aclient.create("counted", user_id=user)
    stats = await aclient.get_stats(user_id=user)
    assert stats.dimension == 384 and stats.tenants[0].scopes[0].user_id == user
    assert (await aclient.check_consistency()).consistent
    assert (await aclient.create_snapshot()).revision >= 1
    progress = [p async for p in aclient.reembed(user_id=user, dry_run=True)]
    assert progress[-1].done
    assert await aclient.health() == "SERVING"
    assert await aclient.health("mnemo.v1.MemoryService") == "SERVING"


async def test_search_modes(aclient: AsyncMnemoClient, user: str) -> None:
    await aclient.create("Gate B-12 closes at 10:40", user_id=user)
    await aclient.create("Lunch was a salad", user_id=user)
    keyword = await aclient.search("B-12", user_id=user, mode="keyword")
    assert [h.memory.content for h in keyword.hits] == ["Gate B-12 closes at 10:40"]
    hybrid = await aclient.search("B-12", user_id=user, mode="hybrid", rrf_k=1)
    assert hybrid.hits[0].score == 1.0 and len(hybrid.hits) == 2
    # Ids and scores: a search touches its hits' last_retrieve_time in the background, so
    # a later call may see the memory with a time the first did not.
    ranked = [(h.memory.id, h.score) for h in keyword.hits]
    [batch] = await aclient.batch_search(["B-12"], user_id=user, mode="keyword")
    assert [(h.memory.id, h.score) for h in batch.hits] == ranked
    answers = [a async for a in aclient.stream_search(["B-12"], user_id=user, mode="keyword")]
    assert answers[0].result is not None
    assert [(h.memory.id, h.score) for h in answers[0].result.hits] == ranked
    explained = await aclient.search("B-12", user_id=user, mode="hybrid", rrf_k=1, explain=True)
    e = explained.hits[0].explanation
    assert e is not None and (e.vector_rank, e.keyword_rank, e.fused_score) == (1, 1, 1.0)
    [batch] = await aclient.batch_search(["B-12"], user_id=user, mode="keyword", explain=True)
    assert batch.hits[0].explanation is not None and batch.hits[0].explanation.keyword_rank == 1
    answers = [a async for a in aclient.stream_search(["B-12"], user_id=user, explain=True)]
    assert answers[0].result is not None and answers[0].result.hits[0].explanation is not None
