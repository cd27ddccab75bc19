"""Key layout and generation keys: what makes invalidation exact.

base.py gives the argument; this module holds the mechanics shared by the
search-result and record caches:

- Keys. Every part that comes from a client (tenant, scope values, memory id,
  model id) is hashed (BLAKE2b, 128 bits, base64url), so keys are short, hold
  no client data, and cannot contain a brace. The part in braces is the Redis
  Cluster hash tag: a scope's generation and its result entries share a slot,
  as do a record's generation and entry, so each lookup is one MGET per slot.

      {T}:te            tenant epoch: every search and record entry of T embeds it
      {S}:sg            generation of one exact scope (tenant, user, agent, run)
      {S}:sr:<fp>       a search result under scope S, request fingerprint fp
      {R}:rg  {R}:rv    generation and entry of one record (tenant, memory id)
      e:<M>:<digest>    an embedding of model M (optionally e:<M>:<T>:<digest>)

- Scopes a write affects. A search with query scope (U, A, R), an empty field
  matching anything, can see a memory of scope (u, a, r) exactly when each of
  U, A, R is empty or equal to the memory's. So a write bumps the generations
  of those at most 8 query scopes, and a search reads the one generation of
  its own query scope, plus the tenant epoch, in the MGET of its entry.

- Failed bumps. A bump the backend did not take is remembered; lookups that
  depend on a remembered key miss (and do not store) until a later attempt
  succeeds, which each lookup and bump tries first. Past `max_pending` keys
  the remembered set collapses to the tenant epochs involved.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from mnemo_server.cache.base import Cache, check_ttl
from mnemo_server.models import Scope

#: Bytes of a generation value; an entry's stamp is the concatenation of its
#: generation values (tenant epoch first).
GENERATION_BYTES: Final = 8


@functools.lru_cache(maxsize=8192)
def digest(*parts: str, size: int = 16) -> str:
    """base64url BLAKE2b of the parts; NUL-separated so parts cannot run together.
    Memoized: tenants, hot scopes and ids repeat (a few MB at most)."""
    raw = "\0".join(parts).encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(hashlib.blake2b(raw, digest_size=size).digest()).decode().rstrip("=")


def tenant_epoch_key(tenant: str) -> str:
    return f"{{{digest('t', tenant)}}}:te"


def scope_tag(tenant: str, scope: Scope) -> str:
    return digest("s", tenant, scope.user_id, scope.agent_id, scope.run_id)


def scope_generation_key(tenant: str, scope: Scope) -> str:
    return f"{{{scope_tag(tenant, scope)}}}:sg"


def record_tag(tenant: str, memory_id: str) -> str:
    return digest("r", tenant, memory_id)


def affected_scopes(scope: Scope) -> set[Scope]:
    """The query scopes whose results a write to a memory of `scope` can change."""
    fields = (scope.user_id, scope.agent_id, scope.run_id)
    return {
        Scope(*(value if keep else "" for value, keep in zip(fields, mask, strict=True)))
        for mask in itertools.product((False, True), repeat=3)
    }


class Generations:
    """Reads, creates and bumps generation keys on one Cache; thread-safe."""

    def __init__(self, cache: Cache, *, ttl_s: float = 86400.0, max_pending: int = 100_000) -> None:
        """Args:
        cache: where the generation keys live.
        ttl_s: TTL of a generation key; keep it longer than the entries'
            (an expired generation only costs misses).
        max_pending: failed bumps remembered one by one before they
            collapse to tenant epochs.
        """
        check_ttl(ttl_s)
        self.cache = cache
        self._ttl_s = ttl_s
        self._max_pending = max_pending
        self._lock = threading.Lock()
        # generation key -> (its tenant epoch key, sequence of the failure)
        self._pending: dict[str, tuple[str, int]] = {}
        self._sequence = 0

    @property
    def pending(self) -> int:
        """Bumps not yet delivered."""
        return len(self._pending)

    def resolve(self, keys: Sequence[str], values: list[bytes | None]) -> list[bytes | None]:
        """The generation values read for `keys`, with absent ones created
        fresh; None where no usable value could be had."""
        absent = [i for i, v in enumerate(values) if v is None or len(v) != GENERATION_BYTES]
        if not absent:
            return values
        held = self.cache.add_many([(keys[i], os.urandom(GENERATION_BYTES), self._ttl_s) for i in absent])
        out = list(values)
        for n, i in enumerate(absent):
            value = None if held is None else held[n]
            out[i] = value if value is not None and len(value) == GENERATION_BYTES else None
        return out

    def blocked(self, keys: Iterable[str]) -> bool:
        """Whether a bump of one of the keys has not been delivered yet."""
        pending = self._pending
        return bool(pending) and any(key in pending for key in keys)

    def bump(self, keys: Mapping[str, str]) -> bool:
        """Gives the generation keys (mapped to their tenant epoch keys) fresh
        values; remembers them if the backend does not take it."""
        if not keys:
            return True
        self.flush()
        if self.cache.available and self.cache.bump_many(list(keys), ttl_s=self._ttl_s):
            return True
        with self._lock:
            for key, epoch_key in keys.items():
                self._sequence += 1
                self._pending[key] = (epoch_key, self._sequence)
            if len(self._pending) > self._max_pending:
                epochs = {epoch_key for epoch_key, _ in self._pending.values()}
                self._sequence += 1
                self._pending = {e: (e, self._sequence) for e in epochs}
        return False

    def flush(self) -> bool:
        """Delivers remembered bumps; whether none remain."""
        if not self._pending:
            return True
        if not self.cache.available:
            return False
        with self._lock:
            attempt = dict(self._pending)
        if not self.cache.bump_many(list(attempt), ttl_s=self._ttl_s):
            return False
        with self._lock:
            for key, entry in attempt.items():
                # A key that failed again meanwhile stays: our bump may predate it.
                if self._pending.get(key) == entry:
                    del self._pending[key]
            return not self._pending
