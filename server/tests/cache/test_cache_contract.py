"""The Cache contract, run against LocalCache, Redis and Redis Cluster."""

from __future__ import annotations

import os
import threading
import time

import pytest

from mnemo_server.cache.base import Cache
from mnemo_server.cache.local import LocalCache
from mnemo_server.cache.redis import RedisCache


def stored_bytes(cache: Cache, key: str) -> int:
    """How many bytes the backend holds for a key (value plus framing)."""
    if isinstance(cache, RedisCache):
        return int(cache._client.strlen(cache._prefix + key))  # type: ignore[union-attr]
    assert isinstance(cache, LocalCache)
    return len(cache._entries[key][0])


def test_absent_keys_read_as_none(backend: Cache) -> None:
    assert backend.get_many([]) == []
    assert backend.get_many(["nope", "nada"]) == [None, None]


def test_set_then_get_returns_each_value(backend: Cache) -> None:
    values = {f"k{i}": os.urandom(i * 7) for i in range(20)}

    assert backend.set_many([(k, v, 30) for k, v in values.items()])

    assert backend.get_many([*values, "missing"]) == [*values.values(), None]


def test_set_overwrites(backend: Cache) -> None:
    backend.set_many([("k", b"one", 30)])
    backend.set_many([("k", b"two", 30)])

    assert backend.get_many(["k"]) == [b"two"]


def test_keys_and_values_are_binary_and_unicode_safe(backend: Cache) -> None:
    items = [("ключ:{tag}:✓", b"\x00\xff\x00", 30.0), ("empty", b"", 30.0)]

    backend.set_many(items)

    assert backend.get_many([k for k, _, _ in items]) == [b"\x00\xff\x00", b""]


def test_add_sets_only_absent_keys_and_answers_the_held_value(backend: Cache) -> None:
    backend.set_many([("held", b"first", 30)])

    assert backend.add_many([("held", b"second", 30), ("new", b"mine", 30)]) == [b"first", b"mine"]
    assert backend.get_many(["held", "new"]) == [b"first", b"mine"]


def test_delete_removes(backend: Cache) -> None:
    backend.set_many([("a", b"1", 30), ("b", b"2", 30)])

    assert backend.delete_many(["a", "never-there"])

    assert backend.get_many(["a", "b"]) == [None, b"2"]


def test_bump_gives_fresh_values_never_seen_before(backend: Cache) -> None:
    seen = set()
    for _ in range(50):
        assert backend.bump_many(["g1", "g2"], ttl_s=30)
        values = backend.get_many(["g1", "g2"])
        assert values is not None
        for value in values:
            assert value is not None and len(value) == 8
            assert value not in seen
            seen.add(value)


def test_entries_expire_after_their_ttl(backend: Cache) -> None:
    backend.set_many([("short", b"x", 0.05), ("long", b"y", 30)])
    backend.add_many([("added", b"z", 0.05)])

    time.sleep(0.2)

    assert backend.get_many(["short", "long", "added"]) == [None, b"y", None]


def test_non_positive_ttl_is_a_programming_error(backend: Cache) -> None:
    with pytest.raises(ValueError):
        backend.set_many([("k", b"v", 0)])
    with pytest.raises(ValueError):
        backend.bump_many(["k"], ttl_s=-1)


def test_large_values_are_stored_lz4_compressed_and_round_trip(backend: Cache) -> None:
    text = (b"the user prefers window seats on morning flights; " * 400)[:20000]
    noise = os.urandom(20000)

    backend.set_many([("text", text, 30), ("noise", noise, 30), ("small", b"s" * 100, 30)])

    assert backend.get_many(["text", "noise", "small"]) == [text, noise, b"s" * 100]
    assert stored_bytes(backend, "text") < len(text) // 5
    # Incompressible values are kept raw: at most the framing more.
    assert stored_bytes(backend, "noise") <= len(noise) + 9


def test_stats_count_hits_and_misses(backend: Cache) -> None:
    backend.set_many([("a", b"1", 30)])

    backend.get_many(["a", "b", "a"])

    stats = backend.stats()
    assert (stats.hits, stats.misses, stats.errors) == (2, 1, 0)
    assert stats.state == "ok"
    assert stats.backend in ("local", "redis")
    assert stats.latency.count >= 2


def test_concurrent_use_from_threads(backend: Cache) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(50):
                key = f"t{n}-{i % 5}"
                backend.set_many([(key, f"{n}:{i}".encode(), 30)])
                value = backend.get_many([key])
                assert value is not None and value[0] is not None and value[0].startswith(f"{n}:".encode())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors


def test_closed_cache_misses_and_refuses(backend: Cache) -> None:
    backend.set_many([("a", b"1", 30)])

    backend.close()

    assert backend.get_many(["a"]) is None
    assert not backend.set_many([("a", b"1", 30)])
