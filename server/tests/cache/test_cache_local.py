"""LocalCache: the byte bound, LRU order and TTLs (on a fake clock)."""

from __future__ import annotations

import os

import pytest

from mnemo_server.cache.local import LocalCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_stays_within_the_byte_bound_evicting_least_recently_used() -> None:
    cache = LocalCache(max_bytes=20_000, compress_threshold=None)
    cache.set_many([(f"k{i}", os.urandom(500), 60) for i in range(10)])
    cache.get_many(["k0"])  # k0 is now the most recently used

    cache.set_many([(f"k{i}", os.urandom(500), 60) for i in range(10, 60)])

    stats = cache.stats()
    assert stats.bytes <= 20_000
    assert stats.evictions > 0
    assert stats.entries == 60 - stats.evictions
    found = cache.get_many([f"k{i}" for i in range(60)])
    assert found is not None
    assert found[59] is not None and found[1] is None
    assert [i for i, v in enumerate(found) if v is not None] == list(range(60 - stats.entries, 60))


def test_the_bound_counts_values_keys_and_overhead() -> None:
    cache = LocalCache(max_bytes=10**6, compress_threshold=None)

    cache.set_many([("k", b"x" * 1000, 60)])

    assert 1000 < cache.stats().bytes < 1000 + 400


def test_a_value_larger_than_the_bound_is_not_kept() -> None:
    cache = LocalCache(max_bytes=1000, compress_threshold=None)

    assert cache.set_many([("big", os.urandom(5000), 60)])

    assert cache.get_many(["big"]) == [None]
    assert cache.add_many([("big", os.urandom(5000), 60)]) == [None]
    assert cache.stats().bytes == 0


def test_compression_lets_more_fit() -> None:
    text = b"agents repeat themselves " * 200
    plain = LocalCache(max_bytes=10**6, compress_threshold=None)
    packed = LocalCache(max_bytes=10**6)

    for cache in (plain, packed):
        cache.set_many([("k", text, 60)])

    assert packed.stats().bytes < plain.stats().bytes // 5
    assert packed.get_many(["k"]) == [text]


def test_entries_expire_on_the_clock() -> None:
    clock = FakeClock()
    cache = LocalCache(clock=clock)
    cache.set_many([("a", b"1", 10), ("b", b"2", 100)])

    clock.now += 50

    assert cache.get_many(["a", "b"]) == [None, b"2"]
    assert cache.add_many([("a", b"new", 10)]) == [b"new"]
    assert cache.stats().entries == 2


def test_expired_entries_free_their_bytes_when_read() -> None:
    clock = FakeClock()
    cache = LocalCache(clock=clock, compress_threshold=None)
    cache.set_many([("a", b"1" * 100, 10)])
    held = cache.stats().bytes

    clock.now += 11
    cache.get_many(["a"])

    assert held > 0 and cache.stats().bytes == 0


def test_a_bound_below_one_byte_is_rejected() -> None:
    with pytest.raises(ValueError):
        LocalCache(max_bytes=0)
