"""GetStats' cache rows: the cache layer reports its own stats (cache/layers.py,
no proto names), and api/convert.py alone maps them onto mnemo.v1.CacheStats;
every field of the message is filled from them."""

from __future__ import annotations

import dataclasses

from mnemo.v1 import admin_service_pb2 as admin
from mnemo_server.api.convert import stats_to_proto
from mnemo_server.cache import Caches, LocalCache
from mnemo_server.models import Scope
from mnemo_server.service.types import Stats


def test_every_cache_stats_field_is_mapped_from_the_cache_layers_stats() -> None:
    caches = Caches.over(LocalCache(max_bytes=1 << 20))
    caches.search.lookup("t1", [(Scope(user_id="u"), b"f" * 32)])
    layer = dataclasses.replace(caches.stats()[1], hits=3, misses=1, errors=2, bytes=99)

    response = stats_to_proto(Stats([], [], [layer], 7, 1, "model", 4))

    [row] = response.caches
    assert {f.name: v for f, v in row.ListFields()} == {
        "name": "search",
        "backend": "local",
        "hits": 3,
        "misses": 1,
        "errors": 2,
        "hit_rate": 0.75,
        "bytes": 99,
        "state": "ok",
    }
    # A field added to CacheStats must be mapped too (or this test says so).
    assert set(admin.CacheStats.DESCRIPTOR.fields_by_name) == {f.name for f, _ in row.ListFields()}
