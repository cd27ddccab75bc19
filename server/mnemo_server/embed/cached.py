"""An embedding cache in front of any Embedder.

Agents search for the same phrases again and again, and the model bounds the
server's text throughput, so repeated texts are answered from a VectorCache.
The embedder names only what it needs (VectorCache, below); the cache layer's
EmbeddingCache (cache/layers.py: in-process or Redis, shared by replicas)
satisfies it, and app.py puts the two together, so embed/ and cache/ stay
independent of each other.
A batch looks every text up in one round trip and embeds only the distinct
misses, in one inner call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from mnemo_server.embed.base import Embedder
from mnemo_server.models import Vector


class VectorCache(Protocol):
    """Vectors by (model id, text); cache/layers.py EmbeddingCache is one."""

    def get_many(self, model_id: str, texts: Sequence[str], *, dimension: int) -> list[Vector | None]:
        """The cached vector of each text, None where absent; never raises."""
        ...

    def put_many(self, model_id: str, texts: Sequence[str], vectors: Vector) -> None:
        """Caches vectors[i] as the embedding of texts[i]; never raises."""
        ...


class CachingEmbedder(Embedder):
    """Answers repeated texts from a VectorCache keyed by (model_id, text).

    Concurrent misses on the same text may both reach the inner embedder;
    that costs a duplicate embedding, never a wrong one. It owns the inner
    embedder (close() closes it), not the cache.
    """

    def __init__(self, inner: Embedder, cache: VectorCache) -> None:
        self._inner = inner
        self._cache = cache

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
        missing: dict[str, list[int]] = {}
        cached = self._cache.get_many(self.model_id, texts, dimension=self.dimension)
        for position, (text, vector) in enumerate(zip(texts, cached, strict=True)):
            if vector is None:
                missing.setdefault(text, []).append(position)
            else:
                out[position] = vector
        if missing:
            fresh = self._inner.embed(list(missing))
            for positions, row in zip(missing.values(), fresh, strict=True):
                out[positions] = row
            self._cache.put_many(self.model_id, list(missing), fresh)
        return out

    def close(self) -> None:
        self._inner.close()
