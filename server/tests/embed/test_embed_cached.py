"""CachingEmbedder: repeats are served from the cache, misses embedded together."""

from __future__ import annotations

import numpy as np
import pytest

from mnemo_server import errors
from mnemo_server.cache import EmbeddingCache, LocalCache
from mnemo_server.embed.cached import CachingEmbedder

from .embed_fakes import RecordingEmbedder, fake_vector, run_threads


def expected(texts: list[str]) -> np.ndarray:
    return np.stack([fake_vector(t, 16) for t in texts])


def caching(inner: RecordingEmbedder) -> tuple[CachingEmbedder, EmbeddingCache]:
    cache = EmbeddingCache(LocalCache(max_bytes=1 << 20))
    return CachingEmbedder(inner, cache), cache


def test_repeats_hit_and_only_misses_are_embedded() -> None:
    inner = RecordingEmbedder()
    embedder, cache = caching(inner)

    first = embedder.embed(["a", "b"])
    second = embedder.embed(["b", "c", "a"])

    assert inner.calls == [["a", "b"], ["c"]]
    np.testing.assert_array_equal(first, expected(["a", "b"]))
    np.testing.assert_array_equal(second, expected(["b", "c", "a"]))
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (2, 3)


def test_a_batch_of_hits_makes_no_inner_call() -> None:
    inner = RecordingEmbedder()
    embedder, _ = caching(inner)
    embedder.embed(["a", "b"])
    embedder.embed(["b", "a", "b"])
    assert len(inner.calls) == 1


def test_duplicates_within_a_call_are_embedded_once() -> None:
    inner = RecordingEmbedder()
    embedder, _ = caching(inner)
    out = embedder.embed(["x", "y", "x"])
    assert inner.calls == [["x", "y"]]
    np.testing.assert_array_equal(out, expected(["x", "y", "x"]))


def test_callers_cannot_corrupt_the_cache() -> None:
    embedder, _ = caching(RecordingEmbedder())
    first = embedder.embed(["a"])
    first[:] = 0
    np.testing.assert_array_equal(embedder.embed(["a"]), expected(["a"]))


def test_an_inner_error_propagates_and_caches_nothing() -> None:
    inner = RecordingEmbedder()
    embedder, cache = caching(inner)
    with pytest.raises(errors.UnavailableError):
        embedder.embed(["boom"])
    assert cache.get_many(inner.model_id, ["boom"], dimension=inner.dimension) == [None]


def test_concurrent_callers_get_correct_rows() -> None:
    embedder, _ = caching(RecordingEmbedder())
    texts = [f"t{i % 7}" for i in range(64)]

    def call(i: int) -> np.ndarray:
        return embedder.embed([texts[i]])

    for i, out in enumerate(run_threads(len(texts), call)):
        np.testing.assert_array_equal(out[0], fake_vector(texts[i], 16))


def test_no_texts() -> None:
    embedder, _ = caching(RecordingEmbedder())
    assert embedder.embed([]).shape == (0, 16)
