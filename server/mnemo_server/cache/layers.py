"""The three typed caches on any Cache, and `Caches`, the one object the
service holds.

- EmbeddingCache: (model id, sha256(text)) -> float32 vector. Embeddings
  never go stale, so no generations; a batch is one lookup.
- SearchResultCache: (tenant, query scope, request fingerprint) -> the hits
  as (memory id, row key, score), never the records. An entry embeds the
  tenant epoch and its scope's generation (generations.py); a write bumps the
  generations of the (at most 8) query scopes that can see it.
- RecordCache: (tenant, memory id) -> the encoded Memory, for GetMemory and
  the hydration of cached search hits. An entry embeds the tenant epoch and
  the record's own generation, which every write to the memory bumps.

Protocol for search results and records (it is what makes them exact):
`lookup` BEFORE reading the store or the index; on a miss compute, then
`store`/`fill` with the lookup object; after a write is visible to searches
and before acknowledging it, `Caches.invalidate`. TTLs (defaults: results
and records 10 min, embeddings 1 day, generations 1 day) bound memory and the
one window base.py describes (a writer cut off from a Redis others reach).

Every method is blocking and never raises on backend trouble: a failed
lookup is a miss, a failed store is skipped, a failed invalidation is
remembered and retried before the cache is trusted again.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from mnemo_server.cache import codec
from mnemo_server.cache.base import Cache, LatencyRecorder, LatencySnapshot, check_ttl
from mnemo_server.cache.codec import CachedHit
from mnemo_server.cache.generations import (
    GENERATION_BYTES,
    Generations,
    affected_scopes,
    digest,
    record_tag,
    scope_generation_key,
    scope_tag,
    tenant_epoch_key,
)
from mnemo_server.models import Change, ChangeType, Memory, Scope, Vector

__all__ = [
    "CachedHit",
    "Caches",
    "EmbeddingCache",
    "LayerStats",
    "RecordCache",
    "RecordLookup",
    "SearchLookup",
    "SearchResultCache",
    "search_fingerprint",
]

_STAMP_BYTES: Final = 2 * GENERATION_BYTES
_FLOAT32_LE: Final = np.dtype("<f4")


@dataclass(frozen=True, slots=True)
class LayerStats:
    """What GetStats reports for one typed cache, plus its latency histogram
    (for the metrics endpoint). errors counts operations served without the
    cache: backend failures and calls skipped while it is down."""

    name: str
    backend: str
    state: str
    hits: int
    misses: int
    errors: int
    bytes: int
    latency: LatencySnapshot

    @property
    def hit_rate(self) -> float:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


class _Counters:
    def __init__(self, name: str, cache: Cache) -> None:
        self.name = name
        self.cache = cache
        self.lock = threading.Lock()
        self.hits = self.misses = self.errors = 0
        self.latency = LatencyRecorder()

    def count(self, hits: int, misses: int, errors: int = 0) -> None:
        with self.lock:
            self.hits += hits
            self.misses += misses
            self.errors += errors

    def error(self) -> None:
        with self.lock:
            self.errors += 1

    def snapshot(self) -> LayerStats:
        backend = self.cache.stats()
        with self.lock:
            return LayerStats(
                self.name,
                self.cache.backend,
                backend.state,
                self.hits,
                self.misses,
                self.errors,
                backend.bytes,
                self.latency.snapshot(),
            )


# -- embeddings -----------------------------------------------------------------


class EmbeddingCache:
    """Vectors by (model id, sha256(text)); see the module docstring.

    Shared across tenants by default, as the in-process cache was. That lets
    a tenant time whether a text was embedded recently by anyone (7 ms against
    0.1 ms); pass `tenant` to get_many/put_many to key by tenant as well where
    that matters more than the shared hits.
    """

    name = "embedding"

    def __init__(self, cache: Cache, *, ttl_s: float = 86400.0) -> None:
        check_ttl(ttl_s)
        self._cache = cache
        self._ttl_s = ttl_s
        self._counters = _Counters(self.name, cache)

    def get_many(
        self, model_id: str, texts: Sequence[str], *, dimension: int, tenant: str = ""
    ) -> list[Vector | None]:
        """The cached vector of each text (read-only), None where absent."""
        if not texts:
            return []
        started = time.perf_counter()
        keys = self._keys(model_id, texts, tenant)
        values = self._cache.get_many(keys)
        if values is None:
            self._counters.count(0, len(texts), 1)
            return [None] * len(texts)
        out: list[Vector | None] = []
        for value in values:
            if value is None or len(value) != 4 * dimension:
                out.append(None)
            else:
                out.append(np.frombuffer(value, dtype=_FLOAT32_LE))
        hits = sum(v is not None for v in out)
        self._counters.count(hits, len(texts) - hits)
        self._counters.latency.record(time.perf_counter() - started)
        return out

    def put_many(
        self, model_id: str, texts: Sequence[str], vectors: Sequence[Vector] | Vector, *, tenant: str = ""
    ) -> None:
        """Caches vectors[i] as the embedding of texts[i]."""
        if len(texts) != len(vectors):
            raise ValueError(f"{len(texts)} texts but {len(vectors)} vectors")
        if not texts:
            return
        items = {
            key: (key, np.ascontiguousarray(vector, dtype=_FLOAT32_LE).tobytes(), self._ttl_s)
            for key, vector in zip(self._keys(model_id, texts, tenant), vectors, strict=True)
        }
        if not self._cache.set_many(list(items.values())):
            self._counters.error()

    def stats(self) -> LayerStats:
        return self._counters.snapshot()

    def note_error(self) -> None:
        """Counts an operation served without this cache."""
        self._counters.error()

    def _keys(self, model_id: str, texts: Sequence[str], tenant: str) -> list[str]:
        prefix = f"e:{digest('m', model_id, size=8)}:"
        if tenant:
            prefix += f"{digest('t', tenant, size=12)}:"
        return [prefix + _text_digest(text) for text in texts]


def _text_digest(text: str) -> str:
    # surrogatepass: a str can hold lone surrogates that strict UTF-8 rejects.
    raw = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# -- search results ---------------------------------------------------------------


def search_fingerprint(
    *,
    model_id: str,
    text: str = "",
    vector: Sequence[float] | Vector | None = None,
    filter: str = "",
    top_k: int,
    min_score: float | None = None,
    mode: str = "vector",
    rrf_k: int = 0,
    explain: bool = False,
    adjustments: str = "",
) -> bytes:
    """The request part of a result-cache key: everything but tenant and scope
    that decides the hits. Give the filter in canonical form
    (filters.format_filter) so that spellings of one filter share entries,
    top_k after defaults are applied, and rrf_k as used (0 when the mode
    uses none), and the score adjustments in a canonical spelling ("" for
    none). Vector searches keep the keys they had before modes existed,
    and searches without explanations or adjustments the keys they had
    before those."""
    h = hashlib.blake2b(digest_size=16)
    if vector is not None:
        h.update(b"v\0")
        h.update(np.ascontiguousarray(vector, dtype=_FLOAT32_LE).tobytes())
    else:
        h.update(b"t\0")
        h.update(model_id.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
        h.update(text.encode("utf-8", "surrogatepass"))
    h.update(b"\0f\0")
    h.update(filter.encode("utf-8", "surrogatepass"))
    h.update(struct.pack("<q?d", top_k, min_score is not None, min_score or 0.0))
    if mode != "vector":
        h.update(b"\0m\0")
        h.update(mode.encode("ascii"))
        h.update(struct.pack("<q", rrf_k))
    if explain:
        h.update(b"\0x\0")
    if adjustments:
        h.update(b"\0a\0")
        h.update(adjustments.encode("utf-8", "surrogatepass"))
    return h.digest()


@dataclass(frozen=True, slots=True)
class SearchLookup:
    """The answer of SearchResultCache.lookup for one request.

    hits is None on a miss; hand the lookup back to store() with what the
    search computed. A lookup with no stamp (the cache is down, or an
    invalidation is pending) is not stored.
    """

    tenant: str
    scope: Scope
    fingerprint: bytes
    hits: tuple[CachedHit, ...] | None
    stamp: bytes | None = field(default=None, repr=False)


class SearchResultCache:
    """Search hits by (tenant, query scope, fingerprint); see the module docstring."""

    name = "search"

    def __init__(
        self,
        cache: Cache,
        *,
        ttl_s: float = 600.0,
        generations: Generations | None = None,
    ) -> None:
        """Args:
        cache: the backend.
        ttl_s: the longest an entry lives.
        generations: shared with the RecordCache on the same backend so
            that one write costs one round trip; by default its own.
        """
        check_ttl(ttl_s)
        self._cache = cache
        self._ttl_s = ttl_s
        self._gens = generations or Generations(cache)
        self._counters = _Counters(self.name, cache)

    def lookup(self, tenant: str, requests: Sequence[tuple[Scope, bytes]]) -> list[SearchLookup]:
        """Looks up (query scope, fingerprint) pairs in one round trip (two
        when generations must be created). Call it before reading any data."""
        if not requests:
            return []
        started = time.perf_counter()
        self._gens.flush()
        epoch_key = tenant_epoch_key(tenant)
        gen_keys = [epoch_key]
        gen_index: dict[Scope, int] = {}
        entry_keys = []
        for scope, fingerprint in requests:
            tag = scope_tag(tenant, scope)
            if scope not in gen_index:
                gen_index[scope] = len(gen_keys)
                gen_keys.append(f"{{{tag}}}:sg")
            entry_keys.append(_entry_key(tag, fingerprint))
        values = self._cache.get_many(gen_keys + entry_keys)
        if values is None:
            self._counters.count(0, len(requests), 1)
            return [SearchLookup(tenant, s, f, None) for s, f in requests]
        gens = self._gens.resolve(gen_keys, values[: len(gen_keys)])
        entries = values[len(gen_keys) :]
        out = []
        hits = 0
        for (scope, fingerprint), entry in zip(requests, entries, strict=True):
            i = gen_index[scope]
            epoch, generation = gens[0], gens[i]
            if epoch is None or generation is None or self._gens.blocked((epoch_key, gen_keys[i])):
                out.append(SearchLookup(tenant, scope, fingerprint, None))
                continue
            stamp = epoch + generation
            found = None
            if entry is not None and entry[:_STAMP_BYTES] == stamp:
                found = codec.decode_hits(entry[_STAMP_BYTES:])
            hits += found is not None
            out.append(SearchLookup(tenant, scope, fingerprint, found, stamp))
        self._counters.count(hits, len(requests) - hits)
        self._counters.latency.record(time.perf_counter() - started)
        return out

    def store(
        self, results: Sequence[tuple[SearchLookup, Sequence[CachedHit]]], *, now_us: int | None = None
    ) -> None:
        """Caches what searches computed after missing. An entry lives at most
        ttl_s, and never past the earliest expire_time_us of its hits (an
        expired hit would be replaced by the next one in a fresh search)."""
        now = time.time_ns() // 1000 if now_us is None else now_us
        items = []
        for lookup, hits in results:
            if lookup.stamp is None or lookup.hits is not None:
                continue
            ttl_s = self._ttl_s
            expiries = [h.expire_time_us for h in hits if h.expire_time_us is not None]
            if expiries:
                ttl_s = min(ttl_s, (min(expiries) - now) / 1e6)
                if ttl_s <= 0.001:
                    continue
            tag = scope_tag(lookup.tenant, lookup.scope)
            items.append((_entry_key(tag, lookup.fingerprint), lookup.stamp + codec.encode_hits(hits), ttl_s))
        if items and not self._cache.set_many(items):
            self._counters.error()

    def bump(self, tenant: str, scopes: Iterable[Scope]) -> None:
        """After a write to memories of these scopes is visible and before it
        is acknowledged: no entry computed before it is served again."""
        epoch_key = tenant_epoch_key(tenant)
        keys = {
            scope_generation_key(tenant, s): epoch_key for scope in scopes for s in affected_scopes(scope)
        }
        if not self._gens.bump(keys):
            self._counters.error()

    def invalidate_tenants(self, tenants: Iterable[str]) -> None:
        """Drops every search-result and record entry of the tenants (bulk
        deletes, restores, repairs, an unclean start)."""
        keys = {tenant_epoch_key(t): tenant_epoch_key(t) for t in tenants}
        if not self._gens.bump(keys):
            self._counters.error()

    def stats(self) -> LayerStats:
        return self._counters.snapshot()

    def note_error(self) -> None:
        """Counts an operation served without this cache."""
        self._counters.error()


def _entry_key(tag: str, fingerprint: bytes) -> str:
    return f"{{{tag}}}:sr:{base64.urlsafe_b64encode(fingerprint).decode().rstrip('=')}"


# -- records ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordLookup:
    """The answer of RecordCache.lookup: the memories found, the ids missed,
    and what fill() needs to cache the missed ones."""

    tenant: str
    found: dict[str, Memory]
    missing: tuple[str, ...]
    stamps: dict[str, bytes] = field(default_factory=dict, repr=False)


class RecordCache:
    """Memories by (tenant, id); see the module docstring."""

    name = "record"

    def __init__(
        self,
        cache: Cache,
        *,
        ttl_s: float = 600.0,
        generations: Generations | None = None,
    ) -> None:
        check_ttl(ttl_s)
        self._cache = cache
        self._ttl_s = ttl_s
        self._gens = generations or Generations(cache)
        self._counters = _Counters(self.name, cache)

    def lookup(self, tenant: str, ids: Sequence[str], *, with_embedding: bool = False) -> RecordLookup:
        """Looks up memories by id in one round trip (two when generations
        must be created). Call it before reading the store. With
        with_embedding, an entry cached without its embedding is a miss;
        without, embeddings are left out."""
        unique = list(dict.fromkeys(ids))
        if not unique:
            return RecordLookup(tenant, {}, ())
        started = time.perf_counter()
        self._gens.flush()
        epoch_key = tenant_epoch_key(tenant)
        tags = [record_tag(tenant, i) for i in unique]
        gen_keys = [epoch_key] + [f"{{{t}}}:rg" for t in tags]
        values = self._cache.get_many(gen_keys + [f"{{{t}}}:rv" for t in tags])
        if values is None:
            self._counters.count(0, len(unique), 1)
            return RecordLookup(tenant, {}, tuple(unique))
        gens = self._gens.resolve(gen_keys, values[: len(gen_keys)])
        entries = values[len(gen_keys) :]
        found: dict[str, Memory] = {}
        stamps: dict[str, bytes] = {}
        for n, (memory_id, entry) in enumerate(zip(unique, entries, strict=True)):
            epoch, generation = gens[0], gens[n + 1]
            if epoch is None or generation is None or self._gens.blocked((epoch_key, gen_keys[n + 1])):
                continue
            stamp = epoch + generation
            stamps[memory_id] = stamp
            if entry is None or entry[:_STAMP_BYTES] != stamp:
                continue
            memory = codec.decode_memory(entry[_STAMP_BYTES:], with_embedding=with_embedding)
            # The tenant and id checks are defence in depth: keys are 128-bit hashes.
            if (
                memory is not None
                and memory.tenant == tenant
                and memory.id == memory_id
                and (memory.embedding is not None or not with_embedding)
            ):
                found[memory_id] = memory
        missing = tuple(i for i in unique if i not in found)
        self._counters.count(len(found), len(missing))
        self._counters.latency.record(time.perf_counter() - started)
        return RecordLookup(tenant, found, missing, {i: stamps[i] for i in missing if i in stamps})

    def fill(self, lookup: RecordLookup, memories: Iterable[Memory], *, now_us: int | None = None) -> None:
        """Caches memories the caller read from the store after `lookup` missed
        them. An entry never outlives the memory's expire time."""
        now = time.time_ns() // 1000 if now_us is None else now_us
        items = []
        for memory in memories:
            stamp = lookup.stamps.get(memory.id)
            if stamp is None or memory.tenant != lookup.tenant:
                continue
            ttl_s = self._ttl_s
            if memory.expire_time_us is not None:
                ttl_s = min(ttl_s, (memory.expire_time_us - now) / 1e6)
                if ttl_s <= 0.001:
                    continue
            try:
                value = codec.encode_memory(memory)
            except (ValueError, TypeError):
                continue
            items.append((f"{{{record_tag(memory.tenant, memory.id)}}}:rv", stamp + value, ttl_s))
        if items and not self._cache.set_many(items):
            self._counters.error()

    def invalidate(self, tenant: str, ids: Iterable[str]) -> None:
        """After a write to these memories is visible and before it is acknowledged."""
        epoch_key = tenant_epoch_key(tenant)
        keys = {f"{{{record_tag(tenant, i)}}}:rg": epoch_key for i in ids}
        if not self._gens.bump(keys):
            self._counters.error()

    def stats(self) -> LayerStats:
        return self._counters.snapshot()

    def note_error(self) -> None:
        """Counts an operation served without this cache."""
        self._counters.error()


# -- the service's handle ---------------------------------------------------------------


class Caches:
    """The three caches; what the service holds."""

    def __init__(
        self,
        *,
        embeddings: EmbeddingCache,
        search: SearchResultCache,
        records: RecordCache,
        generations: Generations,
        backends: Sequence[Cache],
    ) -> None:
        self.embeddings = embeddings
        self.search = search
        self.records = records
        self._gens = generations
        self._backends = list(dict.fromkeys(backends))

    @classmethod
    def over(
        cls,
        cache: Cache,
        *,
        embedding_cache: Cache | None = None,
        embedding_ttl_s: float = 86400.0,
        search_ttl_s: float = 600.0,
        record_ttl_s: float = 600.0,
        generation_ttl_s: float = 86400.0,
    ) -> Caches:
        """Search results and records on `cache` (sharing generations, so an
        invalidation is one round trip); embeddings on `embedding_cache`, or
        on `cache` too."""
        gens = Generations(cache, ttl_s=generation_ttl_s)
        embed_backend = embedding_cache or cache
        return cls(
            embeddings=EmbeddingCache(embed_backend, ttl_s=embedding_ttl_s),
            search=SearchResultCache(cache, ttl_s=search_ttl_s, generations=gens),
            records=RecordCache(cache, ttl_s=record_ttl_s, generations=gens),
            generations=gens,
            backends=[cache, embed_backend],
        )

    def invalidate(self, tenant: str, changed: Iterable[tuple[str, Scope]]) -> None:
        """After a write is visible to searches and before it is acknowledged:
        every (memory id, scope) it created, updated, deleted or expired.
        One round trip for any number of memories."""
        self.invalidate_changes(
            Change(0, tenant, memory_id, 0, ChangeType.UPDATE, scope, 0) for memory_id, scope in changed
        )

    def invalidate_changes(self, changes: Iterable[Change]) -> None:
        """`invalidate` for revision-log entries of any tenants (what
        MemoryService.add_listener hands over): one round trip in all."""
        keys: dict[str, str] = {}
        for change in changes:
            epoch_key = tenant_epoch_key(change.tenant)
            keys[f"{{{record_tag(change.tenant, change.memory_id)}}}:rg"] = epoch_key
            for s in affected_scopes(change.scope):
                keys[scope_generation_key(change.tenant, s)] = epoch_key
        if not self._gens.bump(keys):
            self.search.note_error()
            self.records.note_error()

    def invalidate_tenants(self, tenants: Iterable[str]) -> None:
        self.search.invalidate_tenants(tenants)

    @property
    def pending_invalidations(self) -> int:
        return self._gens.pending

    def stats(self) -> list[LayerStats]:
        return [self.embeddings.stats(), self.search.stats(), self.records.stats()]

    def close(self) -> None:
        for backend in self._backends:
            backend.close()
