"""Caches for embeddings, search results and records.

base.py: the Cache seam and the argument for exact invalidation; local.py
and redis.py: its implementations; layers.py: the typed caches and `Caches`,
which the service holds. RedisCache is imported from its module, so that a
server without Redis configured never imports redis-py.
"""

from mnemo_server.cache.base import BackendStats, Cache
from mnemo_server.cache.codec import CachedHit
from mnemo_server.cache.layers import (
    Caches,
    EmbeddingCache,
    LayerStats,
    RecordCache,
    RecordLookup,
    SearchLookup,
    SearchResultCache,
    search_fingerprint,
)
from mnemo_server.cache.local import LocalCache

__all__ = [
    "BackendStats",
    "Cache",
    "CachedHit",
    "Caches",
    "EmbeddingCache",
    "LayerStats",
    "LocalCache",
    "RecordCache",
    "RecordLookup",
    "SearchLookup",
    "SearchResultCache",
    "search_fingerprint",
]
