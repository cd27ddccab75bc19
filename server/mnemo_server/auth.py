"""API keys: secrets, roles, and who a call comes from. Imports no grpc.

A secret is "mnemo_" + key id + "_" + 32 random bytes in urlsafe base64. The
server keeps only sha256(salt || secret) with a per-key 16-byte salt: 256
random bits leave nothing to guess, so a slow password hash would only add
latency. The id inside the secret makes a lookup one read by primary key, and
the hash is compared in constant time.

Lookups are cached for `cache_s` seconds. A revocation through this process
replaces the cached entry at once; another process sharing the store notices
when its cached entry ages out, so within `cache_s` (0: it reads the store on
every call). Workers of one fleet (`--workers N`) share a key generation
that every revocation raises, so there a revocation holds on all of them at
once; servers sharing a PostgreSQL store hear every revocation as a
notification that raises theirs (fleet/pg_signal.py PgKeyGeneration), with
the same effect. Expiry is checked against the clock on every call.

The bootstrap key is a secret the operator gives in the settings. It is
held only in memory (as a hash), is an admin of the system tenant with id
"bootstrap", and cannot be listed or revoked: remove it from the settings and
restart to retire it.

Roles: reader < writer < admin. An admin of the system tenant (or any caller
while auth is off) may create and revoke keys of every tenant; other admins
only their own tenant's. Admin keys cannot be restricted to users or agents.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Protocol

from mnemo_server import validation
from mnemo_server.errors import (
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
    invalid,
)
from mnemo_server.models import ApiKeyRecord, Principal, now_us
from mnemo_server.pagination import decode_token, encode_token, fingerprint
from mnemo_server.store.base import KeyStore

log = logging.getLogger("mnemo.auth")

ROLES = ("reader", "writer", "admin")
BOOTSTRAP_KEY_ID = "bootstrap"
#: What a key id can be: 16 hex digits for created keys, "bootstrap" for the
#: bootstrap key; anything else names no key.
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9]{1,64}")
SECRET_PREFIX = "mnemo_"
#: last_use_time is kept to the minute: at most one store write per key a minute.
TOUCH_INTERVAL_US = 60_000_000
MAX_DISPLAY_NAME = 128
MAX_RESTRICTIONS = 1000
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: its principal, its role, and whether it may
    act on every tenant (an admin of the system tenant, or anyone with auth off)."""

    principal: Principal
    role: str
    system: bool = False

    def has_role(self, needed: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(needed)


#: Every caller while authentication is off.
ANONYMOUS = Caller(Principal(), "admin", system=True)


def hash_secret(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode("utf-8")).digest()


def key_id_of(token: str) -> str | None:
    """The key id a secret names, or None when it is not shaped like one."""
    if not token.startswith(SECRET_PREFIX):
        return None
    key_id, sep, rest = token[len(SECRET_PREFIX) :].partition("_")
    if not sep or not rest or not key_id or len(key_id) > 64:
        return None
    return key_id


def _invalid_key() -> UnauthenticatedError:
    # One message for unknown, wrong, revoked and expired keys: a caller
    # learns nothing about which keys exist.
    return UnauthenticatedError("the API key is not valid", reason="API_KEY_INVALID")


class KeyGenerationLike(Protocol):
    def current(self) -> int: ...

    def changed(self) -> int: ...


class ApiKeys:
    """Creates, lists, revokes and checks API keys; thread-safe."""

    def __init__(
        self,
        store: KeyStore | None,
        *,
        enabled: bool,
        system_tenant: str = "system",
        bootstrap_secret: str = "",
        cache_s: float = 5.0,
        executor: Executor | None = None,
        clock: Callable[[], int] = now_us,
    ) -> None:
        """Args:
        store: the key store; None until the server has opened it (calls
            that need it answer SERVER_NOT_READY meanwhile).
        enabled: whether calls must carry a key.
        system_tenant: the tenant of the bootstrap key and of the admins
            that may manage every tenant's keys.
        bootstrap_secret: the operator's bootstrap key; empty for none.
        cache_s: how long a key read from the store is trusted.
        executor: where last-use times are written from the event loop.
        clock: microseconds since the epoch.
        """
        self.store = store
        self.enabled = enabled
        self.system_tenant = system_tenant
        self.cache_s = cache_s
        self._executor = executor
        self._clock = clock
        self._bootstrap = hashlib.sha256(bootstrap_secret.encode()).digest() if bootstrap_secret else None
        self._cache: dict[str, tuple[ApiKeyRecord, float]] = {}
        self._lock = threading.Lock()
        #: Shared with the other workers of a fleet (fleet/counters.py
        #: KeyGeneration): every key change raises it, and a cache of an older
        #: generation is dropped, so a revocation holds on every worker at once.
        self.generation: KeyGenerationLike | None = None
        self._generation_seen = 0

    # -- checking calls ---------------------------------------------------------

    def cached(self, token: str) -> Caller | None:
        """The caller a secret names, when that needs no store read; None
        when it does (call `authenticate` off the event loop). Raises
        UnauthenticatedError for a key known to be bad."""
        if self._bootstrap is not None and hmac.compare_digest(
            hashlib.sha256(token.encode()).digest(), self._bootstrap
        ):
            return Caller(Principal(self.system_tenant, BOOTSTRAP_KEY_ID), "admin", system=True)
        key_id = key_id_of(token)
        if key_id is None:
            raise _invalid_key()
        generation = self.generation.current() if self.generation is not None else 0
        with self._lock:
            if generation != self._generation_seen:
                self._cache.clear()
                self._generation_seen = generation
            entry = self._cache.get(key_id)
        if entry is None or time.monotonic() - entry[1] >= self.cache_s:
            return None
        return self._check(entry[0], token)

    def authenticate(self, token: str) -> Caller:
        """The caller a secret names, reading the store; blocking."""
        found = self.cached(token)
        if found is not None:
            return found
        key_id = key_id_of(token)
        assert key_id is not None
        record = self._store().get_key(key_id)
        if record is None:
            raise _invalid_key()
        with self._lock:
            self._cache[key_id] = (record, time.monotonic())
        return self._check(record, token)

    def _check(self, record: ApiKeyRecord, token: str) -> Caller:
        if not hmac.compare_digest(hash_secret(record.salt, token), record.secret_hash):
            raise _invalid_key()
        now = self._clock()
        if record.revoke_time_us is not None or (
            record.expire_time_us is not None and record.expire_time_us <= now
        ):
            raise _invalid_key()
        if record.last_use_time_us is None or now - record.last_use_time_us >= TOUCH_INTERVAL_US:
            self._touch(record, now)
        principal = Principal(record.tenant, record.id, record.user_ids, record.agent_ids)
        return Caller(
            principal, record.role, system=record.role == "admin" and self._is_system(record.tenant)
        )

    def _touch(self, record: ApiKeyRecord, now: int) -> None:
        """Records the use off the call's path: a store busy with a long
        write must not delay the call."""
        with self._lock:
            entry = self._cache.get(record.id)
            if entry is not None and entry[0].secret_hash == record.secret_hash:
                self._cache[record.id] = (replace(entry[0], last_use_time_us=now), entry[1])
        store = self._store()
        if self._executor is None:
            _quietly(store.touch_key, record.id, now)
            return
        with contextlib.suppress(RuntimeError):  # the executor is shutting down
            self._executor.submit(_quietly, store.touch_key, record.id, now)

    def _is_system(self, tenant: str) -> bool:
        return tenant == self.system_tenant

    def _store(self) -> KeyStore:
        if self.store is None:
            raise UnavailableError(
                "the server is still loading", reason="SERVER_NOT_READY", retry_after_s=1.0
            )
        return self.store

    # -- managing keys ----------------------------------------------------------

    def create_key(
        self,
        caller: Caller,
        *,
        tenant: str,
        role: str,
        user_ids: tuple[str, ...],
        agent_ids: tuple[str, ...],
        display_name: str,
        ttl_us: int | None,
    ) -> tuple[ApiKeyRecord, str]:
        """A new key of `tenant` (the caller's when empty) and its secret."""
        tenant = tenant or caller.principal.tenant
        if not validation.ID_PATTERN.fullmatch(tenant):
            raise invalid("INVALID_ARGUMENT", "tenant", "must be 1 to 128 letters, digits and . _ : -")
        if role not in ROLES:
            raise invalid("INVALID_ARGUMENT", "role", "give the role of the key: reader, writer or admin")
        for name, values in (("user_ids", user_ids), ("agent_ids", agent_ids)):
            if len(values) > MAX_RESTRICTIONS:
                raise invalid("INVALID_ARGUMENT", name, f"give at most {MAX_RESTRICTIONS}")
            for i, value in enumerate(values):
                if not value:
                    raise invalid("INVALID_ARGUMENT", f"{name}[{i}]", "must not be empty")
                validation.check_scope_value(value, f"{name}[{i}]")
        if role == "admin" and (user_ids or agent_ids):
            raise invalid(
                "INVALID_ARGUMENT", "user_ids", "admin keys cannot be restricted to users or agents"
            )
        if len(display_name) > MAX_DISPLAY_NAME or any(ord(c) < 32 for c in display_name):
            raise invalid(
                "INVALID_ARGUMENT", "display_name", f"must be at most {MAX_DISPLAY_NAME} printable characters"
            )
        if ttl_us is not None and ttl_us <= 0:
            raise invalid("INVALID_ARGUMENT", "ttl", "must be positive")
        now = self._clock()
        expire_time_us = None if ttl_us is None else validation.check_expiry_us(now, ttl_us, "ttl")
        if tenant != caller.principal.tenant and not caller.system:
            raise PermissionDeniedError(
                "only an admin key of the system tenant may create keys for another tenant",
                reason="ROLE_FORBIDDEN",
            )
        key_id = secrets.token_hex(8)
        secret = f"{SECRET_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        salt = os.urandom(16)
        record = ApiKeyRecord(
            id=key_id,
            tenant=tenant,
            role=role,
            user_ids=tuple(dict.fromkeys(user_ids)),
            agent_ids=tuple(dict.fromkeys(agent_ids)),
            display_name=display_name,
            create_time_us=now,
            salt=salt,
            secret_hash=hash_secret(salt, secret),
            expire_time_us=expire_time_us,
        )
        self._store().create_key(record)
        return record, secret

    def list_keys(
        self, caller: Caller, *, page_size: int, page_token: str, show_revoked: bool, tenant: str = ""
    ) -> tuple[list[ApiKeyRecord], str]:
        """The keys of `tenant` (the caller's when empty) in id order, a page at a time."""
        if not 0 <= page_size <= MAX_PAGE_SIZE:
            raise invalid("INVALID_PAGE_SIZE", "page_size", f"must lie in [0, {MAX_PAGE_SIZE}]")
        size = page_size or DEFAULT_PAGE_SIZE
        tenant = tenant or caller.principal.tenant
        if not validation.ID_PATTERN.fullmatch(tenant):
            raise invalid("INVALID_ARGUMENT", "tenant", "must be 1 to 128 letters, digits and . _ : -")
        if tenant != caller.principal.tenant and not caller.system:
            raise PermissionDeniedError(
                "only an admin key of the system tenant may list another tenant's keys",
                reason="ROLE_FORBIDDEN",
            )
        query = fingerprint("api_keys", tenant, show_revoked)
        cursor = decode_token(page_token, query, [str])
        after = str(cursor[0]) if cursor else None
        rows = self._store().list_keys(tenant, show_revoked=show_revoked, after_id=after, limit=size + 1)
        token = ""
        if len(rows) > size:
            rows = rows[:size]
            token = encode_token(query, [rows[-1].id])
        return rows, token

    def revoke_key(self, caller: Caller, key_id: str) -> ApiKeyRecord:
        """Revokes a key of the caller's tenant (any tenant for a system
        caller); it fails in this process from now on."""
        store = self._store()
        # An id no key can have is not looked up, and never echoed back: a
        # status carrying a 10,000-character id would not fit gRPC's trailers.
        well_formed = bool(KEY_ID_PATTERN.fullmatch(key_id))
        record = store.get_key(key_id) if well_formed else None
        if record is None or (record.tenant != caller.principal.tenant and not caller.system):
            raise _key_not_found(key_id if well_formed else "")
        revoked = store.revoke_key(key_id, self._clock())
        if revoked is None:
            raise _key_not_found(key_id)
        with self._lock:
            self._cache[key_id] = (revoked, time.monotonic())
        if self.generation is not None:
            self.generation.changed()
        return revoked


def _key_not_found(key_id: str) -> NotFoundError:
    message = f"API key {key_id!r} not found" if key_id else "no API key has that id"
    return NotFoundError(message, reason="API_KEY_NOT_FOUND")


def _quietly(fn: Callable[[str, int], None], key_id: str, now: int) -> None:
    # A last-use time is a hint: a busy store must not fail the call.
    try:
        fn(key_id, now)
    except Exception:
        log.debug("could not record the last use of key %s", key_id, exc_info=True)
