"""Read-your-writes end to end: a real SqliteStore, exact search, the caches
used as the service will use them, and every kind of write, made by this
process or by a second server process sharing the store and the Redis.

After each write every search must equal an uncached exact search, and the
searches the write cannot affect must still be served from the cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mnemo_server.cache import Caches, search_fingerprint
from mnemo_server.cache.base import Cache
from mnemo_server.cache.local import LocalCache
from mnemo_server.cache.redis import RedisCache
from mnemo_server.models import Scope, now_us
from mnemo_server.store.sqlite import SqliteStore

from .mini_server import MiniServer, _unit

MINI_SERVER = Path(__file__).with_name("mini_server.py")
Writer = Callable[[dict[str, Any]], None]
DIM = 8
RNG = np.random.default_rng(7)
VECTORS = {name: RNG.standard_normal(DIM) for name in ("a1", "a2", "a3", "a4", "b1", "b2", "e1")}
QUERY = VECTORS["a1"] + 0.3 * RNG.standard_normal(DIM)
SEED = {
    "a1": Scope("alice", "bot", "r1"),
    "a2": Scope("alice", "bot", "r2"),
    "a3": Scope("alice"),
    "a4": Scope("alice", "other", "r1"),
    "b1": Scope("bob", "bot", "r1"),
    "b2": Scope("bob"),
}
QUERY_SCOPES = [
    Scope(),
    Scope("alice"),
    Scope("alice", "bot"),
    Scope("", "bot"),
    Scope("alice", "bot", "r1"),
    Scope("", "", "r2"),
    Scope("bob"),
    Scope("bob", "bot"),
]
#: The write kinds, each as (operation, the query scopes it must leave cached).
ALICE_BOT_R1_UNTOUCHED = [Scope("", "", "r2"), Scope("bob"), Scope("bob", "bot")]
WRITES: dict[str, tuple[dict[str, Any], list[Scope]]] = {
    "create": (
        {
            "op": "create",
            "args": ["new"],
            "scope": ["alice", "bot", "r1"],
            "content": "new fact",
            "vector": list(VECTORS["a1"] + 0.01),
        },
        ALICE_BOT_R1_UNTOUCHED,
    ),
    "update-content": (
        {"op": "update", "args": ["a1"], "content": "Alice moved to Paris", "vector": list(-VECTORS["a1"])},
        ALICE_BOT_R1_UNTOUCHED,
    ),
    "update-metadata": (
        {"op": "update", "args": ["a1"], "metadata": {"verified": True}},
        ALICE_BOT_R1_UNTOUCHED,
    ),
    "delete": ({"op": "delete", "args": ["a1"]}, ALICE_BOT_R1_UNTOUCHED),
    "forget": ({"op": "forget", "scope": ["alice", "bot", ""]}, [Scope("bob"), Scope("bob", "bot")]),
    "expire": ({"op": "sweep_expired"}, ALICE_BOT_R1_UNTOUCHED),
}
SETUPS = [
    pytest.param(("local", "this"), id="local"),
    pytest.param(("redis", "this"), id="redis"),
    pytest.param(("redis", "second"), id="redis-second-process"),
    pytest.param(("redis-cluster", "this"), id="redis-cluster"),
]


@pytest.fixture(params=SETUPS)
def setup(
    request: pytest.FixtureRequest, tmp_path: Path, make_redis_cache: Callable[..., RedisCache]
) -> Iterator[tuple[MiniServer, Writer]]:
    """(the server under test, a function making a write as this process or a second one)."""
    kind, writer = request.param
    cache: Cache
    url = ""
    if kind == "local":
        cache = LocalCache()
    else:
        url = request.getfixturevalue("redis_proc" if kind == "redis" else "redis_cluster").url
        # Generous timeouts: this test is about exact invalidation, not about
        # degrading on a loaded machine (test_cache_redis.py covers that).
        cache = make_redis_cache(url, op_timeout_s=1.0, connect_timeout_s=5.0)
    db = tmp_path / "mnemo.db"
    server = MiniServer(SqliteStore(db), Caches.over(cache))

    def write(operation: dict[str, Any]) -> None:
        op = {"tenant": "t1", **operation}
        if writer == "second":
            assert isinstance(cache, RedisCache)
            subprocess.run(
                [sys.executable, str(MINI_SERVER), str(db), url, cache._prefix[:-1], json.dumps(op)],
                check=True,
                timeout=60,
            )
            return
        kind = op.pop("op")
        if "scope" in op:
            op["scope"] = Scope(*op["scope"])
        if kind == "sweep_expired":
            server.sweep_expired()
        else:
            getattr(server, kind)(op.pop("tenant"), *op.pop("args", []), **op)

    for tenant in ("t1", "t2"):
        for memory_id, scope in SEED.items():
            server.create(tenant, memory_id, scope, f"{memory_id} of {tenant}", list(VECTORS[memory_id]))
    yield server, write
    server.store.close()
    server.caches.close()


def assert_exact(server: MiniServer) -> None:
    for tenant in ("t1", "t2"):
        for scope in QUERY_SCOPES:
            expected = server.exact_search(tenant, scope, QUERY)
            assert server.search(tenant, scope, QUERY) == expected, (tenant, scope)
        for memory_id in [*SEED, "new", "e1"]:
            stored = server.store.get(tenant, memory_id)
            if stored is not None and stored.is_expired(now_us()):
                stored = None
            assert server.get(tenant, memory_id) == stored, (tenant, memory_id)


def cached_scopes(server: MiniServer, tenant: str = "t1") -> set[Scope]:
    fingerprint = search_fingerprint(model_id="", vector=_unit(QUERY), top_k=3)
    lookups = server.caches.search.lookup(tenant, [(s, fingerprint) for s in QUERY_SCOPES])
    return {lk.scope for lk in lookups if lk.hits is not None}


@pytest.mark.parametrize("write_kind", list(WRITES))
def test_every_search_after_a_write_equals_an_uncached_one(
    setup: tuple[MiniServer, Writer], write_kind: str
) -> None:
    server, write = setup
    operation, untouched = WRITES[write_kind]
    if write_kind == "expire":
        expire_at = now_us() + 300_000
        server.create(
            "t1",
            "e1",
            Scope("alice", "bot", "r1"),
            "expiring",
            list(VECTORS["a1"] + 0.02),
            expire_time_us=expire_at,
        )
    assert_exact(server)  # fills the caches
    assert cached_scopes(server) == set(QUERY_SCOPES)
    assert_exact(server)  # now served from them
    if write_kind == "expire":
        time.sleep(max(0.0, (expire_at - now_us()) / 1e6) + 0.05)
        assert_exact(server)  # expired but not yet swept: no cached answer shows it

    write(operation)

    assert cached_scopes(server) == set(untouched)
    assert cached_scopes(server, "t2") == set(QUERY_SCOPES)
    assert_exact(server)
