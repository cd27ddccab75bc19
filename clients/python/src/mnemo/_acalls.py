# Generated from mnemo/_calls.py by clients/python/scripts/gen_aio.py; do not edit.
"""`AsyncCalls`: the plumbing of `AsyncMnemoClient` (see `mnemo._calls`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc

from mnemo._core.retry import RetryPolicy
from mnemo._core.settings import Deadline, PathLike, Settings, call_timeout, request_id
from mnemo.errors import from_rpc_error
from mnemo.v1 import admin_service_pb2_grpc, extraction_service_pb2_grpc, memory_service_pb2_grpc

log = logging.getLogger("mnemo")
R = TypeVar("R")


class AsyncCalls:
    """A channel to a Mnemo server and the calls over it; the arguments are `MnemoClient`'s."""

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
        """The underlying gRPC channel."""
        return self._channel

    @property
    def stub(self) -> memory_service_pb2_grpc.MemoryServiceStub:
        """The raw mnemo.v1.MemoryService stub, as an escape hatch (pass `metadata` yourself)."""
        return self._stub

    @property
    def admin_stub(self) -> admin_service_pb2_grpc.AdminServiceStub:
        """The raw mnemo.v1.AdminService stub."""
        return self._admin

    @property
    def extraction_stub(self) -> extraction_service_pb2_grpc.ExtractionServiceStub:
        """The raw mnemo.v1.ExtractionService stub."""
        return self._extraction

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._settings.address!r})"

    async def _unary(
        self, method: Callable[..., Any], request: Any, timeout: float | None, *, retry: bool = True
    ) -> Any:
        """Calls a unary method, retrying per the policy within one deadline."""
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
    ) -> AsyncGenerator[Any, None]:
        """Yields a server stream's messages; retries only before the first one arrived."""
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
        self, fetch: Callable[[str], Any], items: Callable[[Any], Iterable[R]]
    ) -> AsyncIterator[R]:
        token = ""
        while True:
            page = await fetch(token)
            for _item in items(page):
                yield _item
            token = page.next_page_token
            if not token:
                return

    def _request_id(self, given: str | None) -> str | None:
        return request_id(self._settings, given)
