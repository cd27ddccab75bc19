"""`AsyncMnemoClient`: the asyncio client, with the methods of `MnemoClient` as coroutines.

Methods that stream (`iter_memories`, `iter_history`, `iter_api_keys`,
`stream_search`, `export`, `watch`, `reembed`) return async iterators at once
instead of being awaited.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import grpc

from mnemo import _convert, _jsonl, _requests
from mnemo import extraction as x
from mnemo import types as t
from mnemo._base import Deadline, PathLike, Settings, call_timeout, request_id
from mnemo._progress import Progress
from mnemo._requests import (
    UNSET,
    DedupLike,
    HeaderLike,
    LinkLike,
    MemoryLike,
    Seconds,
    WriteOp,
    _Unset,
)
from mnemo._retry import RetryPolicy
from mnemo.client import resume_revision
from mnemo.errors import MnemoError, from_rpc_error
from mnemo.v1 import admin_service_pb2_grpc, extraction_service_pb2_grpc, memory_service_pb2_grpc

log = logging.getLogger("mnemo")
R = TypeVar("R")


async def _aiter(items: Iterable[R] | AsyncIterable[R]) -> AsyncIterator[R]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


class AsyncMnemoClient:
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

    def __init__(
        self,
        address: str | None = None,
        *,
        api_key: str | None = None,
        tls: bool | None = None,
        ca_file: PathLike | None = None,
        cert_file: PathLike | None = None,
        key_file: PathLike | None = None,
        tls_server_name: str | None = None,
        timeout: float | None = 30.0,
        gzip: bool = False,
        keepalive_time: float | None = None,
        keepalive_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        auto_request_id: bool = True,
        metadata: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        channel_options: Sequence[tuple[str, Any]] | None = None,
    ) -> None:
        self._settings = Settings.resolve(
            address,
            api_key=api_key,
            tls=tls,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            tls_server_name=tls_server_name,
            timeout=timeout,
            gzip=gzip,
            keepalive_time=keepalive_time,
            keepalive_timeout=keepalive_timeout,
            retry=retry,
            auto_request_id=auto_request_id,
            metadata=metadata,
            channel_options=channel_options,
        )
        s = self._settings
        credentials = s.credentials()
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(
                s.address, options=s.options(), compression=s.compression()
            )
        else:
            self._channel = grpc.aio.secure_channel(
                s.address, credentials, options=s.options(), compression=s.compression()
            )
        # The generated stubs are untyped; `stub` and `admin_stub` say what they are.
        self._stub: memory_service_pb2_grpc.MemoryServiceStub = memory_service_pb2_grpc.MemoryServiceStub(  # type: ignore[no-untyped-call, unused-ignore]
            self._channel
        )
        self._admin: admin_service_pb2_grpc.AdminServiceStub = admin_service_pb2_grpc.AdminServiceStub(  # type: ignore[no-untyped-call, unused-ignore]
            self._channel
        )
        self._extraction: extraction_service_pb2_grpc.ExtractionServiceStub = (
            extraction_service_pb2_grpc.ExtractionServiceStub(self._channel)  # type: ignore[no-untyped-call, unused-ignore]
        )

    # -- plumbing -----------------------------------------------------------------

    @property
    def address(self) -> str:
        """The server address this client talks to."""
        return self._settings.address

    @property
    def channel(self) -> grpc.aio.Channel:
        """The underlying grpc.aio channel."""
        return self._channel

    @property
    def stub(self) -> memory_service_pb2_grpc.MemoryServiceStub:
        """The raw mnemo.v1.MemoryService stub (on a grpc.aio channel)."""
        return self._stub

    @property
    def admin_stub(self) -> admin_service_pb2_grpc.AdminServiceStub:
        """The raw mnemo.v1.AdminService stub (on a grpc.aio channel)."""
        return self._admin

    @property
    def extraction_stub(self) -> extraction_service_pb2_grpc.ExtractionServiceStub:
        """The raw mnemo.v1.ExtractionService stub (on a grpc.aio channel)."""
        return self._extraction

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> AsyncMnemoClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncMnemoClient({self._settings.address!r})"

    async def _unary(
        self,
        method: Callable[..., Awaitable[Any]],
        request: Any,
        timeout: float | None,
        *,
        retry: bool = True,
    ) -> Any:
        deadline = Deadline(call_timeout(self._settings, timeout))
        policy = self._settings.retry
        attempt = 0
        while True:
            attempt += 1
            try:
                return await method(
                    request, timeout=deadline.remaining(), metadata=self._settings.call_metadata()
                )
            except grpc.RpcError as exc:
                error = from_rpc_error(exc)
            delay = policy.delay(attempt, error) if retry else None
            if delay is None or not deadline.allows(delay):
                raise error from None
            log.debug("retrying in %.2fs after %s", delay, error)
            await asyncio.sleep(delay)

    async def _server_stream(
        self, method: Callable[..., Any], request: Any, timeout: float | None, *, retry: bool = True
    ) -> AsyncIterator[Any]:
        deadline = Deadline(call_timeout(self._settings, timeout, stream=True))
        policy = self._settings.retry
        attempt = 0
        received = False
        while True:
            attempt += 1
            call = method(request, timeout=deadline.remaining(), metadata=self._settings.call_metadata())
            try:
                async for message in call:
                    received = True
                    yield message
                return
            except grpc.RpcError as exc:
                error = from_rpc_error(exc)
            finally:
                call.cancel()
            delay = policy.delay(attempt, error) if retry and not received else None
            if delay is None or not deadline.allows(delay):
                raise error from None
            await asyncio.sleep(delay)

    async def _pages(
        self, fetch: Callable[[str], Awaitable[Any]], items: Callable[[Any], Iterable[R]]
    ) -> AsyncIterator[R]:
        token = ""
        while True:
            page = await fetch(token)
            for item in items(page):
                yield item
            token = page.next_page_token
            if not token:
                return

    def _request_id(self, given: str | None) -> str | None:
        return request_id(self._settings, given)

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
        """Creates a memory (CreateMemory); see `MnemoClient.create`."""
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
        self, id: str, *, read_mask: Sequence[str] | None = None, timeout: float | None = None
    ) -> t.Memory:
        """Returns one memory (GetMemory); see `MnemoClient.get`."""
        response = await self._unary(
            self._stub.GetMemory, _requests.get_memory(id, read_mask=read_mask), timeout
        )
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
        """Changes the fields given, and only those (UpdateMemory); see `MnemoClient.update`."""
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
        """Deletes a memory (DeleteMemory); see `MnemoClient.delete`."""
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
        timeout: float | None = None,
    ) -> t.MemoryPage:
        """Returns one page of memories (ListMemories); see `MnemoClient.list`."""
        request = _requests.list_memories(
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            filter=filter,
            order_by=order_by,
            page_size=page_size,
            page_token=page_token,
            read_mask=read_mask,
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
        timeout: float | None = None,
    ) -> AsyncIterator[t.Memory]:
        """Iterates over every memory of a scope; see `MnemoClient.iter_memories`."""
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
                timeout=timeout,
            ),
            lambda page: page.memories,
        )

    async def search(
        self,
        query: str | None = None,
        *,
        vector: Sequence[float] | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filter: str | None = None,
        top_k: int | None = None,
        min_score: float | None = None,
        mode: t.SearchMode | str | None = None,
        rrf_k: int | None = None,
        explain: bool = False,
        include_embedding: bool = False,
        timeout: float | None = None,
    ) -> t.SearchResult:
        """Finds memories by meaning, by words or both (SearchMemories); see `MnemoClient.search`."""
        request = _requests.search_memories(
            query,
            vector=vector,
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            filter=filter,
            top_k=top_k,
            min_score=min_score,
            mode=mode,
            rrf_k=rrf_k,
            explain=explain,
            include_embedding=include_embedding,
        )
        return _convert.search_result(await self._unary(self._stub.SearchMemories, request, timeout))

    async def batch_search(
        self,
        queries: Sequence[str | t.SearchQuery],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filter: str | None = None,
        top_k: int | None = None,
        min_score: float | None = None,
        mode: t.SearchMode | str | None = None,
        rrf_k: int | None = None,
        explain: bool = False,
        include_embedding: bool = False,
        timeout: float | None = None,
    ) -> builtins.list[t.SearchResult]:
        """Runs many searches in one call (BatchSearchMemories); see `MnemoClient.batch_search`."""
        request = _requests.batch_search_memories(
            queries,
            dict(
                user_id=user_id,
                agent_id=agent_id,
                run_id=run_id,
                filter=filter,
                top_k=top_k,
                min_score=min_score,
                mode=mode,
                rrf_k=rrf_k,
                explain=explain,
                include_embedding=include_embedding,
            ),
        )
        response = await self._unary(self._stub.BatchSearchMemories, request, timeout)
        return [_convert.search_result(r) for r in response.results]

    async def stream_search(
        self,
        queries: Iterable[str | t.SearchQuery] | AsyncIterable[str | t.SearchQuery],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filter: str | None = None,
        top_k: int | None = None,
        min_score: float | None = None,
        mode: t.SearchMode | str | None = None,
        rrf_k: int | None = None,
        explain: bool = False,
        include_embedding: bool = False,
        timeout: float | None = None,
    ) -> AsyncIterator[t.StreamSearchResult]:
        """Searches over one stream (StreamSearchMemories); see `MnemoClient.stream_search`.
        `queries` may be an async iterable."""
        defaults = dict(
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            filter=filter,
            top_k=top_k,
            min_score=min_score,
            mode=mode,
            rrf_k=rrf_k,
            explain=explain,
            include_embedding=include_embedding,
        )

        async def requests() -> AsyncIterator[Any]:
            position = 0
            async for query in _aiter(queries):
                yield _requests.stream_search_memories(query, defaults, position)
                position += 1

        call = self._stub.StreamSearchMemories(
            requests(),
            timeout=call_timeout(self._settings, timeout, stream=True),
            metadata=self._settings.call_metadata(),
        )
        try:
            async for response in call:
                yield _convert.stream_search_result(response)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        finally:
            call.cancel()

    async def batch_write(
        self,
        operations: Sequence[WriteOp],
        *,
        atomic: bool = False,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> t.BatchWriteResult:
        """Applies many writes in one call (BatchWriteMemories); see `MnemoClient.batch_write`."""
        request = _requests.batch_write_memories(
            operations, atomic=atomic, request_id=self._request_id(request_id)
        )
        response = await self._unary(
            self._stub.BatchWriteMemories, request, timeout, retry=bool(request.request_id)
        )
        return _convert.batch_write_result(response)

    async def import_memories(
        self,
        memories: Iterable[MemoryLike] | AsyncIterable[MemoryLike],
        *,
        header: HeaderLike | None = None,
        on_conflict: t.ImportConflictPolicy | str | None = None,
        force_reembed: bool = False,
        timeout: float | None = None,
    ) -> t.ImportResult:
        """Loads memories over one stream (ImportMemories); see `MnemoClient.import_memories`.
        `memories` may be an async iterable."""
        head = _requests.import_memories_head(
            header=header, on_conflict=on_conflict, force_reembed=force_reembed
        )
        return await self._import(head, memories, timeout, None)

    async def _import(
        self,
        head: builtins.list[Any],
        memories: Iterable[MemoryLike] | AsyncIterable[MemoryLike],
        timeout: float | None,
        progress: Progress | None,
    ) -> t.ImportResult:
        async def requests() -> AsyncIterator[Any]:
            for message in head:
                yield message
            async for memory in _aiter(memories):
                yield _requests.import_memories_item(memory)
                if progress is not None:
                    progress.advance()

        try:
            response = await self._stub.ImportMemories(
                requests(),
                timeout=call_timeout(self._settings, timeout, stream=True),
                metadata=self._settings.call_metadata(),
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return _convert.import_result(response)

    async def import_jsonl(
        self,
        path: PathLike,
        *,
        on_conflict: t.ImportConflictPolicy | str | None = None,
        force_reembed: bool = False,
        progress: bool | None = False,
        timeout: float | None = None,
    ) -> t.ImportResult:
        """Imports a JSON Lines export file; see `MnemoClient.import_jsonl`."""
        with open(path, encoding="utf-8") as stream:
            total = _jsonl.validate(stream)  # a bad line imports nothing
            header, memories = _jsonl.read(stream)
            head = _requests.import_memories_head(
                header=header, on_conflict=on_conflict, force_reembed=force_reembed
            )
            with Progress("imported", total=total, enabled=progress) as bar:
                return await self._import(head, memories, timeout, bar)

    def export(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filter: str | None = None,
        omit_embeddings: bool = False,
        timeout: float | None = None,
    ) -> AsyncExportStream:
        """Streams memories in the export format (ExportMemories); see `MnemoClient.export`."""
        request = _requests.export_memories(
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            filter=filter,
            omit_embeddings=omit_embeddings,
        )
        return AsyncExportStream(self._server_stream(self._stub.ExportMemories, request, timeout))

    async def export_jsonl(
        self,
        path: PathLike,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filter: str | None = None,
        omit_embeddings: bool = False,
        progress: bool | None = False,
        timeout: float | None = None,
    ) -> int:
        """Writes an export to a JSON Lines file; see `MnemoClient.export_jsonl`."""
        request = _requests.export_memories(
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            filter=filter,
            omit_embeddings=omit_embeddings,
        )
        count = 0
        with (
            open(path, "w", encoding="utf-8") as out,
            Progress("exported", enabled=progress) as bar,
        ):
            async for message in self._server_stream(self._stub.ExportMemories, request, timeout):
                out.write(_jsonl.line(message) + "\n")
                if message.WhichOneof("item") == "memory":
                    count += 1
                    bar.advance()
        return count

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
        """Deletes every memory of a scope or filter (DeleteMemories); see `MnemoClient.delete_memories`."""
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
        """Returns one page of a memory's versions (GetMemoryHistory); see `MnemoClient.history`."""
        request = _requests.get_memory_history(id, page_size=page_size, page_token=page_token)
        return _convert.history_page(await self._unary(self._stub.GetMemoryHistory, request, timeout))

    def iter_history(
        self, id: str, *, page_size: int | None = None, timeout: float | None = None
    ) -> AsyncIterator[t.MemoryVersion]:
        """Iterates over all versions of a memory; see `MnemoClient.iter_history`."""
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
        """Follows the change feed (WatchMemories); see `MnemoClient.watch`."""

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
        """Reports statistics (GetStats); see `MnemoClient.get_stats`."""
        request = _requests.get_stats(
            user_id=user_id, agent_id=agent_id, run_id=run_id, scope_limit=scope_limit
        )
        return _convert.stats(await self._unary(self._admin.GetStats, request, timeout))

    async def check_consistency(
        self, *, repair: bool = False, timeout: float | None = None
    ) -> t.ConsistencyReport:
        """Compares the store, the index and the cache (CheckConsistency)."""
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
        """Re-embeds memories, yielding progress (ReembedMemories); see `MnemoClient.reembed`."""
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

    async def create_api_key(
        self,
        role: t.ApiKeyRole | str,
        *,
        tenant: str | None = None,
        user_ids: Sequence[str] | None = None,
        agent_ids: Sequence[str] | None = None,
        display_name: str | None = None,
        ttl: Seconds | None = None,
        timeout: float | None = None,
    ) -> t.CreatedApiKey:
        """Creates an API key (CreateApiKey); see `MnemoClient.create_api_key`."""
        request = _requests.create_api_key(
            role,
            tenant=tenant,
            user_ids=user_ids,
            agent_ids=agent_ids,
            display_name=display_name,
            ttl=ttl,
        )
        return _convert.created_api_key(
            await self._unary(self._admin.CreateApiKey, request, timeout, retry=False)
        )

    async def list_api_keys(
        self,
        *,
        page_size: int | None = None,
        page_token: str | None = None,
        show_revoked: bool = False,
        tenant: str | None = None,
        timeout: float | None = None,
    ) -> t.ApiKeyPage:
        """Returns one page of API keys (ListApiKeys)."""
        request = _requests.list_api_keys(
            page_size=page_size, page_token=page_token, show_revoked=show_revoked, tenant=tenant
        )
        return _convert.api_key_page(await self._unary(self._admin.ListApiKeys, request, timeout))

    def iter_api_keys(
        self,
        *,
        page_size: int | None = None,
        show_revoked: bool = False,
        tenant: str | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[t.ApiKey]:
        """Iterates over all the tenant's API keys."""
        return self._pages(
            lambda token: self.list_api_keys(
                page_size=page_size,
                page_token=token,
                show_revoked=show_revoked,
                tenant=tenant,
                timeout=timeout,
            ),
            lambda page: page.api_keys,
        )

    async def revoke_api_key(self, id: str, *, timeout: float | None = None) -> t.ApiKey:
        """Revokes an API key (RevokeApiKey)."""
        response = await self._unary(
            self._admin.RevokeApiKey, _requests.revoke_api_key(id), timeout, retry=False
        )
        return _convert.api_key(response.api_key)

    # -- ExtractionService ----------------------------------------------------------

    async def extract(
        self,
        messages: Sequence[x.MessageLike],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        mode: x.ExtractionMode | str | None = None,
        request_id: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> x.Operation:
        """Hands the server a conversation to turn into memories with its LLM
        (ExtractMemories) and returns the job's Operation: at once, or with `wait`
        once it has finished (or the deadline is near).

        Args:
            messages: `ConversationMessage`s or mappings with "role" ("user",
                "assistant", "system"), "content", and optionally "name" and "time".
            mode: "additive" (mem0 2.x, the default) or "reconcile" (ADD/UPDATE/DELETE/NONE
                against the scope's nearest memories).
            request_id: An idempotency key: a retry returns the first call's Operation.
        """
        request = x.extract_memories(
            messages,
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            metadata=metadata,
            mode=mode,
            request_id=self._request_id(request_id),
            wait=wait,
        )
        # Retried only under a request id: then a retry returns the first call's Operation.
        retry = bool(request.request_id)
        response = await self._unary(self._extraction.ExtractMemories, request, timeout, retry=retry)
        return x.operation(response.operation)

    async def get_operation(self, id: str, *, timeout: float | None = None) -> x.Operation:
        """Returns one extraction Operation (GetOperation)."""
        response = await self._unary(self._extraction.GetOperation, x.get_operation(id), timeout)
        return x.operation(response.operation)

    async def list_operations(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        state: x.OperationState | str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        timeout: float | None = None,
    ) -> x.OperationPage:
        """Returns one page of the caller's extraction Operations, newest first (ListOperations)."""
        request = x.list_operations(
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            state=state,
            page_size=page_size,
            page_token=page_token,
        )
        return x.operation_page(await self._unary(self._extraction.ListOperations, request, timeout))

    def iter_operations(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        state: x.OperationState | str | None = None,
        page_size: int | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[x.Operation]:
        """Iterates over all the caller's extraction Operations, fetching pages as needed."""
        return self._pages(
            lambda token: self.list_operations(
                user_id=user_id,
                agent_id=agent_id,
                run_id=run_id,
                state=state,
                page_size=page_size,
                page_token=token,
                timeout=timeout,
            ),
            lambda page: page.operations,
        )

    async def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """The server's health (grpc.health.v1 Check); see `MnemoClient.health`."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self._channel)
        response = await self._unary(stub.Check, health_pb2.HealthCheckRequest(service=service), timeout)
        name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        return name


class AsyncExportStream(AsyncIterator[t.Memory]):
    """The memories of an export, in order; `await stream.header()` is the export's header."""

    def __init__(self, messages: AsyncIterator[Any]) -> None:
        self._messages = messages
        self._header: t.ExportHeader | None = None
        self._pending: Any = None
        self._started = False

    async def header(self) -> t.ExportHeader:
        """The export's header (reads it from the stream if needed)."""
        await self._start()
        if self._header is None:
            raise MnemoError("the export stream ended without a header", code="DATA_LOSS")
        return self._header

    async def _start(self) -> None:
        if not self._started:
            self._started = True
            first = await anext(self._messages, None)
            if first is not None and first.WhichOneof("item") == "header":
                self._header = _convert.export_header(first.header)
            elif first is not None:
                self._pending = first

    async def __anext__(self) -> t.Memory:
        await self._start()
        message = self._pending if self._pending is not None else await anext(self._messages)
        self._pending = None
        return _convert.memory(message.memory)

    async def aclose(self) -> None:
        """Stops the export; the call is cancelled."""
        aclose = getattr(self._messages, "aclose", None)
        if aclose is not None:
            await aclose()


class AsyncWatch(AsyncIterator[t.MemoryEvent]):
    """The change feed as an async iterator of `MemoryEvent`s; see `mnemo.Watch`."""

    def __init__(
        self,
        open_call: Callable[[int | None], Any],
        *,
        start_revision: int | None,
        reconnect: bool,
        retry: RetryPolicy,
    ) -> None:
        self.revision = start_revision
        self._open_call = open_call
        self._reconnect = reconnect
        self._retry = retry
        self._closed = False
        self._call: Any = None
        self._events = self._run()

    async def __anext__(self) -> t.MemoryEvent:
        return await anext(self._events)

    async def _run(self) -> AsyncGenerator[t.MemoryEvent, None]:
        failures = 0
        while not self._closed:
            call = self._call = self._open_call(self.revision)
            error: MnemoError | None = None
            try:
                async for response in call:
                    failures = 0
                    for event in response.events:
                        self.revision = max(self.revision or 0, event.revision)
                        yield _convert.memory_event(event)
                    self.revision = max(self.revision or 0, response.revision)
            except grpc.RpcError as exc:
                error = from_rpc_error(exc)
            finally:
                call.cancel()
            if self._closed:
                return
            if error is not None:
                resume = resume_revision(error)
                if resume is not None:
                    self.revision = resume
                if not self._reconnect or (resume is None and not self._retry.retryable(error)):
                    raise error
            elif not self._reconnect:
                return
            failures += 1
            delay = self._retry.backoff(failures, error)
            log.info(
                "watch disconnected (%s); resuming after revision %d in %.2fs",
                error,
                self.revision,
                delay,
            )
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        """Stops watching; the call is cancelled."""
        self._closed = True
        if self._call is not None:
            self._call.cancel()
        await self._events.aclose()

    async def __aenter__(self) -> AsyncWatch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
