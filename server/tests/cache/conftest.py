"""Fixtures for the cache tests: real redis-server processes on free ports.

`backend` runs a test against every Cache implementation: LocalCache, a
RedisCache on a standalone redis-server, and a RedisCache on a three-node
Redis Cluster, all started by the test session. Tests sharing a server keep
apart with their own key namespace.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mnemo_server.cache.base import Cache
from mnemo_server.cache.local import LocalCache
from mnemo_server.cache.redis import RedisCache

from .redis_procs import RedisClusterProcs, RedisProcess

BACKENDS = ["local", "redis", "redis-cluster"]

#: Quick probing, so that recovery tests take tenths of a second.
FAST_BREAKER = {"retry_after_s": 0.05, "max_retry_after_s": 0.2}


@pytest.fixture(scope="session")
def redis_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """One redis-server for the session, also on a unix socket."""
    directory = tmp_path_factory.mktemp("redis")
    proc = RedisProcess(directory, unix_socket=directory / "redis.sock").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcs]:
    cluster = RedisClusterProcs(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test alone (to stop, restart or flush)."""
    proc = RedisProcess(tmp_path / "redis").start()
    yield proc
    proc.stop()


def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_redis_cache() -> Iterator[Callable[..., RedisCache]]:
    """Opens RedisCaches (closed after the test)."""
    opened: list[RedisCache] = []

    def make(url: str, **options: object) -> RedisCache:
        cache = RedisCache(url, **{"namespace": namespace(), **FAST_BREAKER, **options})  # type: ignore[arg-type]
        opened.append(cache)
        return cache

    yield make
    for cache in opened:
        cache.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, make_redis_cache: Callable[..., RedisCache]) -> Iterator[Cache]:
    """A fresh, empty cache of each implementation."""
    if request.param == "local":
        cache: Cache = LocalCache(max_bytes=64 * 2**20)
    elif request.param == "redis":
        cache = make_redis_cache(request.getfixturevalue("redis_proc").url)
    else:
        cache = make_redis_cache(request.getfixturevalue("redis_cluster").url)
    yield cache
    cache.close()
