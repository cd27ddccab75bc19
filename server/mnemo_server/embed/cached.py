"""An embedding cache in front of any Embedder.

Agents search for the same phrases again and again, and the model bounds the
server's text throughput, so repeated texts are answered from the cache layer
(cache/layers.py EmbeddingCache: in-process or Redis, shared by replicas).
A batch looks every text up in one round trip and embeds only the distinct
misses, in one inner call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mnemo_server.cache.layers import EmbeddingCache
from mnemo_server.embed.base import Embedder
from mnemo_server.models import Vector


class CachingEmbedder(Embedder):
    """Answers repeated texts from an EmbeddingCache keyed by (model_id, sha256(text)).

    Concurrent misses on the same text may both reach the inner embedder;
    that costs a duplicate embedding, never a wrong one. It owns the inner
    embedder (close() closes it), not the cache.
    """

    def __init__(self, inner: Embedder, cache: EmbeddingCache) -> None:
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
