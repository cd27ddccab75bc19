"""The security interceptor: API key -> caller, role check, rate and stream
limits, audit records. Health and reflection pass untouched.

Every call to a mnemo.v1 service gets a `CallState` in a context variable
before its handler runs; `principal_of` (api/envelope.py) reads the principal
from it and `Servicer.fail` notes the error it reports, so the audit record
has the code and reason the client saw.

Roles: READER_RPCS need a reader key, WRITER_RPCS a writer, everything else
(AdminService, and any RPC added without being listed here) an admin.
SYSTEM_RPCS act on the whole server and also need the system tenant.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hmac
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Final

import grpc
from google.protobuf.message import Message

from mnemo_server.api.status import grpc_status_of
from mnemo_server.audit import MAX_TARGET_IDS, AuditLog
from mnemo_server.auth import ANONYMOUS, ApiKeys, Caller
from mnemo_server.config import Settings
from mnemo_server.errors import MnemoError, PermissionDeniedError, UnauthenticatedError
from mnemo_server.models import Principal
from mnemo_server.ratelimit import RateLimiter, StreamLimiter

log = logging.getLogger("mnemo.api")

READER_RPCS: Final = frozenset(
    {
        "GetMemory",
        "ListMemories",
        "SearchMemories",
        "BatchSearchMemories",
        "StreamSearchMemories",
        "WatchMemories",
        "ExportMemories",
        "GetMemoryHistory",
        "GetOperation",
        "ListOperations",
    }
)
WRITER_RPCS: Final = frozenset(
    {
        "CreateMemory",
        "UpdateMemory",
        "DeleteMemory",
        "BatchWriteMemories",
        "ImportMemories",
        "DeleteMemories",
        "ExtractMemories",
    }
)
SYSTEM_RPCS: Final = frozenset({"CheckConsistency", "CreateSnapshot"})
PREFIX: Final = "/mnemo.v1."
#: Metadata of calls the HTTP side forwards: "SECRET PEER", the HTTP client's
#: address after this process's forwarding secret (no other caller knows it).
FORWARDED_PEER: Final = "x-mnemo-http-peer"


def role_needed(rpc: str) -> str:
    if rpc in READER_RPCS:
        return "reader"
    if rpc in WRITER_RPCS:
        return "writer"
    return "admin"


def audited(service: str, rpc: str) -> bool:
    """Writes, forgets and admin calls are audited; reads are not."""
    return rpc in WRITER_RPCS or service == "AdminService"


@dataclass(slots=True)
class CallState:
    """What the interceptor learned about one call."""

    rpc: str
    request_id: str
    peer: str
    caller: Caller | None = None
    error: BaseException | None = None
    targets: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    #: Takes one more token of the caller's rate limit (for each query of a
    #: stream after the first); None when calls are not limited.
    charge: Callable[[], Awaitable[None]] | None = None


_CURRENT: contextvars.ContextVar[CallState | None] = contextvars.ContextVar("mnemo_call", default=None)


def current_call() -> CallState | None:
    return _CURRENT.get()


def current_principal() -> Principal:
    """The principal of the call being handled (the default tenant when
    there is no interceptor, as in tests of the servicers alone)."""
    state = _CURRENT.get()
    if state is None or state.caller is None:
        return Principal()
    return state.caller.principal


def note_error(exc: BaseException) -> None:
    """Remembers the error a handler reports, for the audit record."""
    state = _CURRENT.get()
    if state is not None:
        state.error = exc


def bearer_token(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return ""


def _request_id(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and value:
            return str(value)[:128]
    return uuid.uuid4().hex


def _peer_host(peer: str) -> str:
    # "ipv4:10.0.0.7:51234" -> "ipv4:10.0.0.7"; "unix:/path" stays.
    if peer.startswith(("ipv4:", "ipv6:")):
        return peer.rpartition(":")[0]
    return peer


class SecurityInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Authenticates, authorizes, limits and audits mnemo.v1 calls."""

    def __init__(
        self,
        keys: ApiKeys,
        *,
        limiter: RateLimiter,
        streams: StreamLimiter,
        audit: AuditLog | None,
        executor: Executor,
    ) -> None:
        self.keys = keys
        self.limiter = limiter
        self.streams = streams
        self.audit = audit
        self.executor = executor
        #: Proves a call came from this process's HTTP side (api/connect.py).
        self.forward_secret = secrets.token_urlsafe(32)

    def peer_of(self, context: grpc.aio.ServicerContext) -> str:
        """The caller's address: the HTTP client's for a forwarded call."""
        for key, value in context.invocation_metadata() or ():
            if key == FORWARDED_PEER and isinstance(value, str):
                secret, _, peer = value.partition(" ")
                if hmac.compare_digest(secret.encode(), self.forward_secret.encode()):
                    return peer
        return str(context.peer() or "")

    async def aclose(self) -> None:
        """Closes the key store, the audit log and the limiter's Redis client."""
        await self.limiter.close()
        if self.keys.store is not None:
            self.keys.store.close()
            self.keys.store = None
        if self.audit is not None:
            self.audit.close()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(PREFIX):
            return handler
        service, _, rpc = method[len(PREFIX) :].partition("/")
        call = _Call(self, service, rpc)
        h: Any = handler
        if h.unary_unary is not None:
            return h._replace(unary_unary=call.unary_unary(h.unary_unary))
        if h.unary_stream is not None:
            return h._replace(unary_stream=call.unary_stream(h.unary_stream))
        if h.stream_unary is not None:
            return h._replace(stream_unary=call.stream_unary(h.stream_unary))
        return h._replace(stream_stream=call.stream_stream(h.stream_stream))

    async def admit(self, state: CallState, context: grpc.aio.ServicerContext, *, stream: bool) -> str:
        """Authenticates and checks the call; returns the caller's limit key
        (holding a stream slot when `stream`)."""
        if not self.keys.enabled:
            state.caller = ANONYMOUS
        else:
            token = bearer_token(context)
            if not token:
                raise UnauthenticatedError(
                    "this server needs an API key: send 'authorization: Bearer KEY'", reason="API_KEY_MISSING"
                )
            caller = self.keys.cached(token)
            if caller is None:
                loop = asyncio.get_running_loop()
                caller = await loop.run_in_executor(self.executor, self.keys.authenticate, token)
            state.caller = caller
        caller = state.caller
        needed = role_needed(state.rpc)
        if not caller.has_role(needed):
            raise PermissionDeniedError(
                f"{state.rpc} needs a {needed} key; this key is a {caller.role}", reason="ROLE_FORBIDDEN"
            )
        if state.rpc in SYSTEM_RPCS and not caller.system:
            raise PermissionDeniedError(
                f"{state.rpc} acts on the whole server and needs an admin key of the system tenant",
                reason="ROLE_FORBIDDEN",
            )
        limit_key = (
            f"key:{caller.principal.api_key_id}" if self.keys.enabled else f"peer:{_peer_host(state.peer)}"
        )
        await self.limiter.check(limit_key)
        if self.limiter.enabled:
            state.charge = functools.partial(self.limiter.check, limit_key)
        if stream:
            self.streams.acquire(limit_key)
        return limit_key

    def record(self, state: CallState, service: str) -> None:
        if self.audit is None or not audited(service, state.rpc):
            return
        code, reason = "OK", ""
        if state.error is not None:
            if isinstance(state.error, MnemoError):
                code, reason = state.error.code, state.error.reason
            elif isinstance(state.error, asyncio.CancelledError):
                code = "CANCELLED"
            else:
                code, reason = "INTERNAL", "INTERNAL"
        principal = state.caller.principal if state.caller is not None else None
        try:
            self.audit.record(
                rpc=f"{service}.{state.rpc}",
                key_id=principal.api_key_id if principal else "",
                tenant=principal.tenant if principal else "",
                request_id=state.request_id,
                code=code,
                reason=reason,
                target_ids=state.targets,
                peer=state.peer,
                extra=state.extra,
            )
        except Exception:
            log.exception(
                "could not write the audit record of %s (request_id=%s)", state.rpc, state.request_id
            )


class _Call:
    """Wraps the four kinds of handler of one RPC."""

    def __init__(self, owner: SecurityInterceptor, service: str, rpc: str) -> None:
        self.owner = owner
        self.service = service
        self.rpc = rpc

    def _begin(
        self, context: grpc.aio.ServicerContext
    ) -> tuple[CallState, contextvars.Token[CallState | None]]:
        state = CallState(self.rpc, _request_id(context), self.owner.peer_of(context))
        return state, _CURRENT.set(state)

    async def _refuse(self, state: CallState, context: grpc.aio.ServicerContext, exc: MnemoError) -> None:
        state.error = exc
        log.info("%s refused: %s %s (request_id=%s)", self.rpc, exc.code, exc.reason, state.request_id)
        await context.abort_with_status(grpc_status_of(exc, request_id=state.request_id))

    def _end(self, state: CallState, exc: BaseException | None) -> None:
        if exc is not None and state.error is None:
            state.error = exc
        self.owner.record(state, self.service)

    def unary_unary(self, inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
            state, token = self._begin(context)
            failure: BaseException | None = None
            try:
                try:
                    await self.owner.admit(state, context, stream=False)
                except MnemoError as exc:
                    await self._refuse(state, context, exc)
                response = await inner(request, context)
                _targets(self.rpc, request, response, state)
                return response
            except BaseException as exc:
                failure = exc
                _targets(self.rpc, request, None, state)
                raise
            finally:
                self._end(state, _real(failure))
                _CURRENT.reset(token)

        return handle

    def stream_unary(self, inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def handle(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            state, token = self._begin(context)
            failure: BaseException | None = None
            limit_key = ""
            try:
                try:
                    limit_key = await self.owner.admit(state, context, stream=True)
                except MnemoError as exc:
                    await self._refuse(state, context, exc)
                return await inner(_watch_ids(requests, state), context)
            except BaseException as exc:
                failure = exc
                raise
            finally:
                if limit_key:
                    self.owner.streams.release(limit_key)
                self._end(state, _real(failure))
                _CURRENT.reset(token)

        return handle

    def unary_stream(self, inner: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            state, token = self._begin(context)
            failure: BaseException | None = None
            limit_key = ""
            try:
                try:
                    limit_key = await self.owner.admit(state, context, stream=True)
                except MnemoError as exc:
                    await self._refuse(state, context, exc)
                async for item in inner(request, context):
                    yield item
            except BaseException as exc:
                failure = exc
                raise
            finally:
                if limit_key:
                    self.owner.streams.release(limit_key)
                self._end(state, _real(failure))
                _reset(token)

        return handle

    def stream_stream(self, inner: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        async def handle(
            requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            state, token = self._begin(context)
            failure: BaseException | None = None
            limit_key = ""
            try:
                try:
                    limit_key = await self.owner.admit(state, context, stream=True)
                except MnemoError as exc:
                    await self._refuse(state, context, exc)
                async for item in inner(requests, context):
                    yield item
            except BaseException as exc:
                failure = exc
                raise
            finally:
                if limit_key:
                    self.owner.streams.release(limit_key)
                self._end(state, _real(failure))
                _reset(token)

        return handle


def _reset(token: contextvars.Token[CallState | None]) -> None:
    """Resets the call state at the end of a response stream. A stream the
    client cancelled is closed by asyncio's async-generator finalizer in
    another context, where the token is foreign: nothing to reset there, and
    raising would log a false "Task exception was never retrieved" ERROR."""
    with contextlib.suppress(ValueError):
        _CURRENT.reset(token)


def _real(exc: BaseException | None) -> BaseException | None:
    """The failure to record: an abort is recorded through note_error, the
    end of a stream the client closed is not a failure of the server."""
    if exc is None or isinstance(exc, GeneratorExit):
        return None
    if isinstance(exc, grpc.aio.AbortError):
        return None
    return exc


async def _watch_ids(requests: AsyncIterator[Any], state: CallState) -> AsyncIterator[Any]:
    """Passes an import stream through, noting the ids of its memories."""
    async for item in requests:
        # Not a message: a request that did not decode (api/decoding.py reports it).
        if not _decoded(item):
            yield item
            continue
        if item.WhichOneof("item") == "memory" and len(state.targets) < MAX_TARGET_IDS:
            state.targets.append(item.memory.id)
        yield item


def _decoded(request: Any) -> bool:
    """Whether a request decoded: api/decoding.py lets an undecodable one through as a sentinel."""
    return isinstance(request, Message)


def _targets(rpc: str, request: Any, response: Any, state: CallState) -> None:
    """The ids a write or admin call targeted (never content or metadata)."""
    if state.targets or not _decoded(request):
        return
    if rpc == "CreateMemory":
        ident = response.memory.id if response is not None else request.memory.id
        state.targets = [ident] if ident else []
    elif rpc == "UpdateMemory":
        state.targets = [request.memory.id]
    elif rpc == "DeleteMemory":
        state.targets = [request.id]
    elif rpc == "BatchWriteMemories":
        ids = []
        for i, op in enumerate(request.operations[:MAX_TARGET_IDS]):
            which = op.WhichOneof("operation")
            if which == "create":
                ident = op.create.memory.id
                if not ident and response is not None and i < len(response.results):
                    ident = response.results[i].create.memory.id
                ids.append(ident)
            elif which == "update":
                ids.append(op.update.memory.id)
            elif which == "delete":
                ids.append(op.delete.id)
        state.targets = ids
        state.extra["atomic"] = bool(request.atomic)
    elif rpc == "DeleteMemories":
        scope = request.scope
        state.extra.update(
            scope={"user_id": scope.user_id, "agent_id": scope.agent_id, "run_id": scope.run_id},
            dry_run=bool(request.dry_run),
        )
        if response is not None:
            state.targets = list(response.memory_ids)
            state.extra["deleted_count"] = int(response.deleted_count)
    elif rpc == "CreateApiKey":
        if response is not None:
            state.targets = [response.api_key.id]
        state.extra.update(key_tenant=request.tenant, key_role=int(request.role))
    elif rpc == "RevokeApiKey":
        state.targets = [request.id]


def build_security(settings: Settings, executor: Executor) -> SecurityInterceptor:
    """The interceptor the settings ask for; the key store is attached once open."""
    auth = settings.auth
    enabled = settings.keys_required()
    keys = ApiKeys(
        None,
        enabled=enabled,
        system_tenant=auth.system_tenant,
        bootstrap_secret=auth.bootstrap_secret() if enabled else "",
        cache_s=auth.key_cache_s,
        executor=executor,
    )
    limits = settings.rate_limit
    audit = AuditLog(settings.audit.log_file) if settings.audit.log_file else None
    return SecurityInterceptor(
        keys,
        limiter=RateLimiter(limits.requests_per_s, limits.burst),
        streams=StreamLimiter(limits.max_streams),
        audit=audit,
        executor=executor,
    )
