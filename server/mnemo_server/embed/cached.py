"""An embedding cache in front of any Embedder.

Agents search for the same phrases again and again, and the model bounds the
server's text throughput, so repeated texts are answered from memory. The
store here is an in-process LRU bounded by bytes; a shared (Redis) backend
will replace `_LruStore` behind the cache interface without changing
CachingEmbedder.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mnemo_server.embed.base import Embedder
from mnemo_server.models import Vector

#: Bytes an entry costs beyond its vector, key tuple and digest: the
#: OrderedDict's slot and node plus the (vector, cost) tuple, measured with
#: tracemalloc on CPython 3.11 (~131). A 384-dim entry is ~1.9 KB in all,
#: so the default 64 MiB holds ~35k vectors.
_SLOT_BYTES = 136

_Key = tuple[str, bytes]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters since construction, and the current size."""

    hits: int
    misses: int
    evictions: int
    entries: int
    bytes: int

    @property
    def hit_rate(self) -> float:
        """hits / (hits + misses), or 0 before any lookup."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


class _LruStore:
    """A thread-safe LRU of read-only vectors, bounded by estimated bytes."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._entries: OrderedDict[_Key, tuple[Vector, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get_many(self, keys: Sequence[_Key]) -> list[Vector | None]:
        with self._lock:
            found: list[Vector | None] = []
            for key in keys:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                found.append(None if entry is None else entry[0])
            return found

    def put_many(self, items: Sequence[tuple[_Key, Vector]]) -> None:
        with self._lock:
            for key, vector in items:
                cost = sys.getsizeof(vector) + sys.getsizeof(key) + sys.getsizeof(key[1])
                cost += _SLOT_BYTES
                if cost > self._max_bytes:
                    continue
                old = self._entries.pop(key, None)
                if old is not None:
                    self.bytes -= old[1]
                self._entries[key] = (vector, cost)
                self.bytes += cost
                while self.bytes > self._max_bytes:
                    _, (_, evicted) = self._entries.popitem(last=False)
                    self.bytes -= evicted
                    self.evictions += 1


class CachingEmbedder(Embedder):
    """Answers repeated texts from an LRU keyed by (model_id, sha256(text)).

    Concurrent misses on the same text may both reach the inner embedder;
    that costs a duplicate embedding, never a wrong one. It owns the inner
    embedder: close() closes it too.
    """

    def __init__(self, inner: Embedder, *, max_bytes: int = 64 * 2**20) -> None:
        """Creates an empty cache.

        Args:
            inner: the embedder that computes misses.
            max_bytes: bound on the estimated memory of the cached entries.
        """
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self._inner = inner
        self._store = _LruStore(max_bytes)
        self._counts_lock = threading.Lock()
        self._hits = self._misses = 0

    @property
    def model_id(self) -> str:
        return self._inner.model_id

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    def embed(self, texts: Sequence[str]) -> Vector:
        """Looks up every text, embeds the distinct misses in one inner call."""
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        model_id = self.model_id
        keys = [(model_id, _digest(text)) for text in texts]
        missing: dict[_Key, list[int]] = {}
        for position, vector in enumerate(self._store.get_many(keys)):
            if vector is None:
                missing.setdefault(keys[position], []).append(position)
            else:
                out[position] = vector
        with self._counts_lock:
            self._hits += len(texts) - sum(map(len, missing.values()))
            self._misses += sum(map(len, missing.values()))
        if missing:
            fresh = self._inner.embed([texts[positions[0]] for positions in missing.values()])
            stored: list[tuple[_Key, Vector]] = []
            for (key, positions), row in zip(missing.items(), fresh, strict=True):
                out[positions] = row
                # A copy: a row is a view that would keep the whole batch alive.
                vector = row.copy()
                vector.setflags(write=False)
                stored.append((key, vector))
            self._store.put_many(stored)
        return out

    def stats(self) -> CacheStats:
        """A snapshot of the counters."""
        with self._counts_lock:
            hits, misses = self._hits, self._misses
        return CacheStats(hits, misses, self._store.evictions, len(self._store), self._store.bytes)

    def cache_stats(self) -> dict[str, Any]:
        """The fields of mnemo.v1.CacheStats, for GetStats (app.py looks
        this method up by name on the outermost embedder)."""
        stats = self.stats()
        return {
            "name": "embedding",
            "backend": "local",
            "hits": stats.hits,
            "misses": stats.misses,
            "errors": 0,  # an in-process LRU cannot fail apart from its inner embedder
            "hit_rate": stats.hit_rate,
            "bytes": stats.bytes,
            "state": "ok",
        }

    def close(self) -> None:
        """Closes the inner embedder."""
        self._inner.close()


def _digest(text: str) -> bytes:
    # surrogatepass: a str can hold lone surrogates that strict UTF-8 rejects.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
