"""CachingEmbedder: repeats are served from memory, misses embedded together."""

from __future__ import annotations

import numpy as np
import pytest
from mnemo_server import errors
from mnemo_server.embed.cached import CachingEmbedder

from .embed_fakes import RecordingEmbedder, fake_vector, run_threads


def expected(texts: list[str]) -> np.ndarray:
    return np.stack([fake_vector(t, 16) for t in texts])


def test_repeats_hit_and_only_misses_are_embedded() -> None:
    inner = RecordingEmbedder()
    cache = CachingEmbedder(inner)

    first = cache.embed(["a", "b"])
    second = cache.embed(["b", "c", "a"])

    assert inner.calls == [["a", "b"], ["c"]]
    np.testing.assert_array_equal(first, expected(["a", "b"]))
    np.testing.assert_array_equal(second, expected(["b", "c", "a"]))
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries) == (2, 3, 3)
    assert stats.hit_rate == pytest.approx(0.4)


def test_reports_the_fields_of_the_api_cache_stats() -> None:
    cache = CachingEmbedder(RecordingEmbedder())
    cache.embed(["a", "a"])
    cache.embed(["a"])

    reported = cache.cache_stats()

    assert reported["name"] == "embedding"
    # Both copies of "a" in the first call were lookups that found nothing.
    assert (reported["hits"], reported["misses"], reported["errors"]) == (1, 2, 0)
    assert reported["hit_rate"] == pytest.approx(1 / 3)
    assert reported["bytes"] > 384
    assert reported["state"] == "ok"


def test_a_batch_of_hits_makes_no_inner_call() -> None:
    inner = RecordingEmbedder()
    cache = CachingEmbedder(inner)
    cache.embed(["a", "b"])

    cache.embed(["b", "a", "b"])

    assert len(inner.calls) == 1


def test_duplicates_within_a_call_are_embedded_once() -> None:
    inner = RecordingEmbedder()
    cache = CachingEmbedder(inner)

    vectors = cache.embed(["x", "y", "x"])

    assert inner.calls == [["x", "y"]]
    np.testing.assert_array_equal(vectors, expected(["x", "y", "x"]))


def test_the_byte_bound_evicts_the_least_recently_used() -> None:
    probe = CachingEmbedder(RecordingEmbedder())
    probe.embed(["sizing"])
    entry_bytes = probe.stats().bytes
    inner = RecordingEmbedder()
    cache = CachingEmbedder(inner, max_bytes=3 * entry_bytes)

    cache.embed(["a", "b", "c"])
    cache.embed(["a"])  # now b is the least recently used
    cache.embed(["d"])
    inner.calls.clear()
    cache.embed(["a", "c", "d"])
    cache.embed(["b"])

    assert inner.calls == [["b"]]
    stats = cache.stats()
    assert stats.entries == 3
    assert stats.evictions == 2
    assert stats.bytes <= 3 * entry_bytes


def test_callers_cannot_corrupt_the_cache() -> None:
    cache = CachingEmbedder(RecordingEmbedder())

    cache.embed(["a"])[0][:] = 0
    again = cache.embed(["a"])
    again[0][:] = 0

    np.testing.assert_array_equal(cache.embed(["a"]), expected(["a"]))


def test_an_inner_error_propagates_and_caches_nothing() -> None:
    inner = RecordingEmbedder()
    cache = CachingEmbedder(inner)

    with pytest.raises(errors.UnavailableError):
        cache.embed(["fine", "boom"])

    assert cache.stats().entries == 0
    cache.embed(["fine"])
    assert inner.calls[-1] == ["fine"]


def test_concurrent_callers_get_correct_rows() -> None:
    cache = CachingEmbedder(RecordingEmbedder())

    def call(i: int) -> tuple[list[str], np.ndarray]:
        texts = [f"t{(i + j) % 10}" for j in range(5)]
        return texts, cache.embed(texts)

    for texts, vectors in run_threads(24, call):
        np.testing.assert_array_equal(vectors, expected(texts))
    stats = cache.stats()
    assert stats.hits + stats.misses == 24 * 5
    assert stats.entries == 10


def test_no_texts() -> None:
    inner = RecordingEmbedder()

    assert CachingEmbedder(inner).embed([]).shape == (0, 16)
    assert inner.calls == []
