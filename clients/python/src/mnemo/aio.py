# Generated from mnemo/client.py by clients/python/scripts/gen_aio.py; do not edit.
"""`AsyncMnemoClient`: the asyncio client, with the methods of `MnemoClient` as coroutines.

Methods that stream (`iter_memories`, `iter_history`, `iter_api_keys`,
`stream_search`, `export`, `watch`, `reembed`) return async iterators at once
instead of being awaited.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from mnemo import types as t
from mnemo._aextract import AsyncExtraction
from mnemo._akeys import AsyncKeys
from mnemo._asearch import AsyncSearch
from mnemo._astreams import AsyncWatch
from mnemo._atransfer import AsyncTransfer
from mnemo._core import conversions as _convert
from mnemo._core import requests as _requests
from mnemo._core.requests import (
    UNSET,
    DedupLike,
    LinkLike,
    Seconds,
    WriteOp,
    _Unset,
)


class AsyncMnemoClient(AsyncSearch, AsyncTransfer, AsyncKeys, AsyncExtraction):
    """An asyncio client of a Mnemo server; the arguments are those of `MnemoClient`.

    Make it inside a running event loop, and close it with `await client.close()`
    or `async with`.

    Example:
        >>> import asyncio
        >>> async def main() -> str:
        ...     async with AsyncMnemoClient(address) as c:
        ...         created = await c.create("Carol works in Oslo", user_id="doc-async")
        ...         return (await c.get(created.memory.id)).content
        >>> asyncio.run(main())
        'Carol works in Oslo'
    """

    # -- MemoryService --------------------------------------------------------------

    async def create(
        self,
        content: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        kind: t.MemoryKind | str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        id: str | None = None,
        request_id: str | None = None,
        dedup: DedupLike | None = None,
        ttl: Seconds | None = None,
        expire_time: datetime | None = None,
        embedding: Sequence[float] | None = None,
        embedding_model: str | None = None,
        links: Sequence[LinkLike] | None = None,
        pinned: bool | None = None,
        timeout: float | None = None,
    ) -> t.CreateResult:
        """Creates a memory (CreateMemory).

        Args:
            content: The text of the memory.
            user_id: The user it belongs to; one of user_id, agent_id and run_id is required.
            agent_id: The agent it belongs to.
            run_id: The run (conversation, session, task) it belongs to.
            kind: "episodic" (the default), "semantic" or "procedural".
            tags: Free-form labels.
            metadata: JSON-like metadata; ints are kept exact to 64 bits.
            id: A client-chosen id; the server makes one when not given.
            request_id: Idempotency key; a fresh one is made when not given (see `auto_request_id`).
            dedup: "exact", "semantic" or a `DedupPolicy`: return an existing duplicate instead.
            ttl: Seconds (or a timedelta) the memory lives; not with expire_time.
            expire_time: When the memory expires (timezone-aware).
            embedding: A vector to use instead of embedding `content` on the server.
            embedding_model: The name of the model that made `embedding`.
            links: `MemoryLink`s to other memories.
            pinned: Exempt the memory from retention policies.
            timeout: Deadline in seconds.

        Returns:
            The memory created, or with `deduplicated` the existing one matched.
        """
        request = _requests.create_memory(
            content,
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            kind=kind,
            tags=tags,
            metadata=metadata,
            id=id,
            request_id=self._request_id(request_id),
            dedup=dedup,
            ttl=ttl,
            expire_time=expire_time,
            embedding=embedding,
            embedding_model=embedding_model,
            links=links,
            pinned=pinned,
        )
        response = await self._unary(
            self._stub.CreateMemory, request, timeout, retry=bool(request.request_id)
        )
        return _convert.create_result(response)

    async def get(
        self,
        id: str,
        *,
        read_mask: Sequence[str] | None = None,
        min_revision: int | None = None,
        timeout: float | None = None,
    ) -> t.Memory:
        """Returns one memory (GetMemory).

        Args:
            id: The memory's id.
            read_mask: The fields to return (all but "embedding" by default; name
                "embedding" to get the vector).
            min_revision: A consistency token: a write's (or an earlier read's)
                `revision` this read must reflect; a server behind waits, bounded, to
                catch up (docs/operations.md, "Read your own writes on any replica").
        """
        request = _requests.get_memory(id, read_mask=read_mask, min_revision=min_revision)
        response = await self._unary(self._stub.GetMemory, request, timeout)
        return _convert.memory(response.memory)

    async def update(
        self,
        id: str,
        *,
        content: str | _Unset | None = UNSET,
        kind: t.MemoryKind | str | _Unset | None = UNSET,
        tags: Sequence[str] | _Unset | None = UNSET,
        metadata: Mapping[str, Any] | _Unset | None = UNSET,
        embedding: Sequence[float] | _Unset | None = UNSET,
        expire_time: datetime | _Unset | None = UNSET,
        links: Sequence[LinkLike] | _Unset | None = UNSET,
        pinned: bool | _Unset | None = UNSET,
        embedding_model: str | None = None,
        ttl: Seconds | None = None,
        etag: str | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> t.Memory:
        """Changes the fields given, and only those (UpdateMemory).

        The update mask is made from the keyword arguments passed; passing None
        clears a field (for example `expire_time=None` makes the memory never expire).

        Args:
            id: The memory's id.
            content: New text; the memory is re-embedded.
            kind: New kind.
            tags: New tags (replacing the old ones).
            metadata: New metadata (replacing the old).
            embedding: A new client-supplied vector.
            expire_time: New expiry time, or None for never.
            links: New links (replacing the old).
            pinned: New pinned flag.
            embedding_model: The model that made `embedding`.
            ttl: New lifetime from now, in seconds; not with expire_time.
            etag: Apply only if the memory's etag still equals this (else ETAG_MISMATCH).
            request_id: Idempotency key; a fresh one is made when not given.

        Returns:
            The memory after the update.
        """
        request = _requests.update_memory(
            id,
            content=content,
            kind=kind,
            tags=tags,
            metadata=metadata,
            embedding=embedding,
            expire_time=expire_time,
            links=links,
            pinned=pinned,
            embedding_model=embedding_model,
            ttl=ttl,
            etag=etag,
            request_id=self._request_id(request_id),
        )
        response = await self._unary(
            self._stub.UpdateMemory, request, timeout, retry=bool(request.request_id)
        )
        return _convert.memory(response.memory)

    async def delete(
        self,
        id: str,
        *,
        etag: str | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> t.DeleteResult:
        """Deletes a memory, optionally only if its etag still matches (DeleteMemory)."""
        request = _requests.delete_memory(id, etag=etag, request_id=self._request_id(request_id))
        response = await self._unary(
            self._stub.DeleteMemory, request, timeout, retry=bool(request.request_id)
        )
        return t.DeleteResult(revision=response.revision, raw=response)

    async def list(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filter: str | None = None,
        order_by: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        read_mask: Sequence[str] | None = None,
        min_revision: int | None = None,
        timeout: float | None = None,
    ) -> t.MemoryPage:
        """Returns one page of memories in a scope (ListMemories); see `iter_memories`.

        Args:
            filter: A filter expression (docs/filters.md), such as 'tags:"pref"'.
            order_by: "create_time desc" (the default), "update_time", "id", ...
            page_size: 1 to 1000; the server's default is 100.
            page_token: The `next_page_token` of the previous page.
            min_revision: A consistency token: a write's (or an earlier read's)
                `revision` this read must reflect; a server behind waits, bounded, to
                catch up (docs/operations.md, "Read your own writes on any replica").
        """
        request = _requests.list_memories(
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            filter=filter,
            order_by=order_by,
            page_size=page_size,
            page_token=page_token,
            read_mask=read_mask,
            min_revision=min_revision,
        )
        return _convert.memory_page(await self._unary(self._stub.ListMemories, request, timeout))

    def iter_memories(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filter: str | None = None,
        order_by: str | None = None,
        page_size: int | None = None,
        read_mask: Sequence[str] | None = None,
        min_revision: int | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[t.Memory]:
        """Iterates over every memory of a scope, fetching pages as needed.

        `timeout` applies to each page.
        """
        return self._pages(
            lambda token: self.list(
                user_id=user_id,
                agent_id=agent_id,
                run_id=run_id,
                filter=filter,
                order_by=order_by,
                page_size=page_size,
                page_token=token,
                read_mask=read_mask,
                min_revision=min_revision,
                timeout=timeout,
            ),
            lambda page: page.memories,
        )

    async def batch_write(
        self,
        operations: Sequence[WriteOp],
        *,
        atomic: bool = False,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> t.BatchWriteResult:
        """Applies many creates, updates and deletes in one call (BatchWriteMemories).

        Args:
            operations: `WriteOp.create(...)`, `WriteOp.update(...)`, `WriteOp.delete(...)`.
            atomic: Apply all or none.
            request_id: Idempotency key of the whole batch; a fresh one is made when not given.

        Returns:
            One `WriteResult` per operation, in order; a failed operation has `error`
            set and does not raise.
        """
        request = _requests.batch_write_memories(
            operations, atomic=atomic, request_id=self._request_id(request_id)
        )
        response = await self._unary(
            self._stub.BatchWriteMemories, request, timeout, retry=bool(request.request_id)
        )
        return _convert.batch_write_result(response)

    async def delete_memories(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filter: str | None = None,
        dry_run: bool = False,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> t.DeleteMemoriesResult:
        """Deletes every memory of a scope or filter with its history (DeleteMemories):
        a user's right to be forgotten. A scope or a filter is required.

        Args:
            dry_run: Report what would be deleted and delete nothing.
            request_id: Idempotency key; a fresh one is made when not given.
        """
        request = _requests.delete_memories(
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            filter=filter,
            dry_run=dry_run,
            request_id=self._request_id(request_id),
        )
        response = await self._unary(
            self._stub.DeleteMemories, request, timeout, retry=bool(request.request_id)
        )
        return _convert.delete_memories_result(response)

    async def history(
        self,
        id: str,
        *,
        page_size: int | None = None,
        page_token: str | None = None,
        timeout: float | None = None,
    ) -> t.HistoryPage:
        """Returns one page of a memory's versions, newest first (GetMemoryHistory)."""
        request = _requests.get_memory_history(id, page_size=page_size, page_token=page_token)
        return _convert.history_page(await self._unary(self._stub.GetMemoryHistory, request, timeout))

    def iter_history(
        self, id: str, *, page_size: int | None = None, timeout: float | None = None
    ) -> AsyncIterator[t.MemoryVersion]:
        """Iterates over all versions of a memory, newest first, fetching pages as needed."""
        return self._pages(
            lambda token: self.history(id, page_size=page_size, page_token=token, timeout=timeout),
            lambda page: page.versions,
        )

    def watch(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filter: str | None = None,
        start_revision: int | None = None,
        event_types: Sequence[t.EventType | str] | None = None,
        progress_interval: Seconds | None = None,
        reconnect: bool = True,
    ) -> AsyncWatch:
        """Follows the change feed (WatchMemories).

        Replays every change after `start_revision` (None: from now on; 0: the
        whole retained log), then goes on
        live. After a disconnect it reconnects (backing off per the retry policy,
        for as long as the server is unavailable) and resumes after the last
        revision seen, so no change is lost or repeated; a watcher the server
        dropped for being too slow resumes from the revision the server names.

        Args:
            start_revision: Replay the changes after this revision.
            event_types: Only these kinds ("put", "delete", "expired").
            progress_interval: Seconds between the server's progress notifications
                while idle; they move `Watch.revision` on but are not yielded.
            reconnect: Reconnect after a disconnect; False raises UnavailableError instead.

        Returns:
            An iterator of `MemoryEvent`; close it (or use it as a context manager) to stop.
            Its `revision` is the revision to resume from later.
        """

        def open_call(revision: int | None) -> Any:
            request = _requests.watch_memories(
                user_id=user_id,
                agent_id=agent_id,
                run_id=run_id,
                filter=filter,
                start_revision=revision,
                event_types=event_types,
                progress_interval=progress_interval,
            )
            return self._stub.WatchMemories(request, metadata=self._settings.call_metadata())

        return AsyncWatch(
            open_call,
            start_revision=start_revision,
            reconnect=reconnect,
            retry=self._settings.retry,
        )

    # -- AdminService ---------------------------------------------------------------

    async def get_stats(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        scope_limit: int | None = None,
        timeout: float | None = None,
    ) -> t.Stats:
        """Reports memory counts, index shards, caches, revisions and retention (GetStats)."""
        request = _requests.get_stats(
            user_id=user_id, agent_id=agent_id, run_id=run_id, scope_limit=scope_limit
        )
        return _convert.stats(await self._unary(self._admin.GetStats, request, timeout))

    async def check_consistency(
        self, *, repair: bool = False, timeout: float | None = None
    ) -> t.ConsistencyReport:
        """Compares the store, the index and the cache, and optionally repairs (CheckConsistency)."""
        request = _requests.check_consistency(repair=repair)
        return _convert.consistency_report(await self._unary(self._admin.CheckConsistency, request, timeout))

    async def create_snapshot(self, *, timeout: float | None = None) -> t.Snapshot:
        """Writes a snapshot of every index shard now (CreateSnapshot)."""
        return _convert.snapshot(
            await self._unary(self._admin.CreateSnapshot, _requests.create_snapshot(), timeout)
        )

    async def reembed(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filter: str | None = None,
        force: bool = False,
        dry_run: bool = False,
        timeout: float | None = None,
    ) -> AsyncIterator[t.ReembedProgress]:
        """Re-embeds memories with the server's current model, yielding progress until
        one with `done` (ReembedMemories)."""
        request = _requests.reembed_memories(
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            filter=filter,
            force=force,
            dry_run=dry_run,
        )
        async for message in self._server_stream(self._admin.ReembedMemories, request, timeout, retry=False):
            yield _convert.reembed_progress(message)

    # -- grpc.health.v1 -----------------------------------------------------------

    async def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """The server's health (grpc.health.v1 Check): "SERVING", "NOT_SERVING", ...

        Args:
            service: A service name such as "mnemo.v1.MemoryService"; "" for the server.
        """
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self._channel)
        response = await self._unary(stub.Check, health_pb2.HealthCheckRequest(service=service), timeout)
        name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        return name
