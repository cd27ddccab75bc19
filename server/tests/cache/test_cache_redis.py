"""RedisCache against real redis-server processes: degradation, recovery,
restarts and flushes that must never resurrect a stale entry, other
processes sharing the Redis, and the ways of connecting."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mnemo_server.cache import CachedHit, Caches, search_fingerprint
from mnemo_server.cache.generations import scope_generation_key
from mnemo_server.cache.redis import RedisCache, _cluster_url, _redact
from mnemo_server.models import Memory, Scope

from .redis_procs import RedisProcess, self_signed_certificate

ALICE = Scope("alice")
FP = search_fingerprint(model_id="m", text="where do I live?", top_k=10)
HITS = [CachedHit("m1", 1, 0.9)]

MakeCache = Callable[..., RedisCache]


def warm(caches: Caches, tenant: str = "t1") -> None:
    """Caches a search result and checks that it is served."""
    caches.search.store([(lk, HITS) for lk in caches.search.lookup(tenant, [(ALICE, FP)])])
    assert caches.search.lookup(tenant, [(ALICE, FP)])[0].hits is not None


def served(caches: Caches, tenant: str = "t1") -> bool:
    return caches.search.lookup(tenant, [(ALICE, FP)])[0].hits is not None


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def cache_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "mnemo.cache"]


# -- Redis down, slow, refusing writes --------------------------------------------------


def test_a_stopped_redis_costs_no_latency_and_the_cache_recovers_by_itself(
    own_redis: RedisProcess, make_redis_cache: MakeCache, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mnemo.cache")
    cache = make_redis_cache(own_redis.url)
    caches = Caches.over(cache)
    warm(caches)

    own_redis.stop()
    for _ in range(3):  # refused connections: the breaker opens
        assert not served(caches)
    assert cache.breaker_state != "closed"
    durations = []
    for i in range(200):
        started = time.perf_counter()
        assert not served(caches)
        caches.invalidate("t1", [(f"m{i}", ALICE)])
        assert caches.embeddings.get_many("mini", ["hello"], dimension=4) == [None]
        caches.records.fill(caches.records.lookup("t1", ["m1"]), [])
        durations.append(time.perf_counter() - started)
    # Generous bounds (a round trip is ~0.1 ms, these take ~0.02 ms); the
    # 99th percentile, so that one scheduler hiccup on a busy machine is no failure.
    durations.sort()
    assert durations[197] < 0.05, durations[-5:]
    rows = {r.name: r for r in caches.stats()}
    assert rows["search"].state in ("down", "degraded")
    assert rows["search"].errors >= 200
    assert caches.pending_invalidations > 0

    own_redis.start()
    wait_until(lambda: cache.breaker_state == "closed")
    warm(caches)

    assert caches.pending_invalidations == 0
    assert {r.state for r in caches.stats()} == {"ok"}
    # Once per change of state, not per request: down, restarted (a new run_id), back.
    expected = [
        ("WARNING", f"cache backend {cache.name} failed"),
        ("WARNING", f"redis at 127.0.0.1:{own_redis.port} restarted or failed over"),
        ("INFO", f"cache backend {cache.name} recovered after"),
    ]
    messages = [(r.levelname, r.getMessage()) for r in cache_logs(caplog)]
    assert len(messages) == len(expected), messages
    for (level, message), (want_level, start) in zip(messages, expected, strict=True):
        assert level == want_level and message.startswith(start), messages


def test_a_slow_redis_opens_the_breaker_instead_of_slowing_every_request(
    own_redis: RedisProcess, make_redis_cache: MakeCache
) -> None:
    cache = make_redis_cache(own_redis.url, op_timeout_s=0.05)
    caches = Caches.over(cache)
    warm(caches)
    with own_redis.client() as admin:
        admin.execute_command("CLIENT", "PAUSE", "800", "ALL")

        started = time.perf_counter()
        results = [served(caches) for _ in range(20)]
        elapsed = time.perf_counter() - started

        assert not any(results)
        assert cache.breaker_state != "closed"
        # Three timeouts of 50 ms open the breaker; the rest cost nothing.
        assert elapsed < 0.5
        wait_until(lambda: cache.breaker_state == "closed")
    assert served(caches)


def test_redis_out_of_memory_still_takes_invalidations_and_the_cache_comes_back(
    own_redis: RedisProcess, make_redis_cache: MakeCache
) -> None:
    cache = make_redis_cache(own_redis.url)
    caches = Caches.over(cache)
    warm(caches)
    gen_key = cache._prefix + scope_generation_key("t1", ALICE)
    with own_redis.client() as admin:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")

        caches.invalidate("t1", [("m1", ALICE)])

        # SET was refused (the breaker opened), the fallback UNLINK went through.
        assert cache.breaker_state != "closed"
        assert caches.pending_invalidations == 0
        assert admin.exists(gen_key) == 0
        assert not served(caches)
        admin.config_set("maxmemory", "0")
    wait_until(lambda: cache.breaker_state == "closed")

    assert not served(caches)
    warm(caches)


def test_an_invalidation_redis_could_not_take_is_replayed_before_the_cache_is_trusted(
    own_redis: RedisProcess, make_redis_cache: MakeCache
) -> None:
    # A breaker that stays closed, so that reads keep reaching Redis.
    cache = make_redis_cache(own_redis.url, failure_threshold=1000)
    caches = Caches.over(cache)
    other_replica = Caches.over(make_redis_cache(own_redis.url, namespace=cache._prefix[:-1]))
    warm(caches)
    with own_redis.client() as admin:
        admin.execute_command("CLIENT", "PAUSE", "600", "WRITE")  # writes time out, reads are served

        caches.invalidate("t1", [("m1", ALICE)])

        assert caches.pending_invalidations > 0
        assert cache.breaker_state == "closed"
        # Redis still holds the entry under the old generation; this replica knows better.
        assert not served(caches)
    wait_until(lambda: not served(caches) and caches.pending_invalidations == 0)

    assert not served(other_replica)


# -- restarts and flushes --------------------------------------------------------------


def test_a_restart_from_a_snapshot_never_resurrects_an_entry(
    own_redis: RedisProcess, make_redis_cache: MakeCache, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mnemo.cache")
    cache = make_redis_cache(own_redis.url)
    caches = Caches.over(cache)
    warm(caches)
    record = Memory("t1", "m1", ALICE, "Alice lives in Lyon")
    caches.records.fill(caches.records.lookup("t1", ["m1"]), [record])
    gen_key = cache._prefix + scope_generation_key("t1", ALICE)
    with own_redis.client() as admin:
        admin.save()  # a snapshot holding the entries and the generations they carry
        snapshot_gen = admin.get(gen_key)

    caches.invalidate("t1", [("m1", ALICE)])
    assert not served(caches)
    own_redis.restart()  # loads the snapshot: the write's bumps are lost

    with own_redis.client() as admin:
        assert admin.get(gen_key) == snapshot_gen  # the old state is really back
    assert not served(caches)
    assert caches.records.lookup("t1", ["m1"]).missing == ("m1",)
    assert cache.stale_reads > 0
    assert any("restarted" in r.getMessage() for r in cache_logs(caplog))
    warm(caches)


def test_a_flush_never_resurrects_an_entry_computed_before_it(
    own_redis: RedisProcess, make_redis_cache: MakeCache
) -> None:
    cache = make_redis_cache(own_redis.url)
    caches = Caches.over(cache)
    gen_key = cache._prefix + scope_generation_key("t1", ALICE)
    [slow_search] = caches.search.lookup("t1", [(ALICE, FP)])  # reads the generations
    with own_redis.client() as admin:
        before = admin.get(gen_key)

        admin.flushall()
        for i in range(5):  # writes after the flush recreate the generations
            caches.invalidate("t1", [(f"m{i}", ALICE)])
        caches.search.store([(slow_search, HITS)])  # the slow search finishes

        assert admin.get(gen_key) not in (None, before)
    assert not served(caches)


def test_a_restart_without_persistence_starts_empty_and_works(
    own_redis: RedisProcess, make_redis_cache: MakeCache
) -> None:
    cache = make_redis_cache(own_redis.url)
    caches = Caches.over(cache)
    warm(caches)

    own_redis.stop(kill=True)
    own_redis.start()

    # The pooled connections died with the server: one retry reconnects.
    assert not served(caches)
    assert cache.breaker_state == "closed"
    warm(caches)


# -- several processes ------------------------------------------------------------------

_SECOND_PROCESS = textwrap.dedent("""
    import sys
    from mnemo_server.cache import CachedHit, Caches, search_fingerprint
    from mnemo_server.cache.redis import RedisCache
    from mnemo_server.models import Memory, Scope

    url, namespace, action = sys.argv[1:4]
    caches = Caches.over(RedisCache(url, namespace=namespace))
    fp = search_fingerprint(model_id="m", text="where do I live?", top_k=10)
    if action == "invalidate":
        caches.invalidate("t1", [("m7", Scope("alice", "bot", "r9"))])
    else:
        caches.search.store([(lk, [CachedHit("from-b", 5, 0.5)])
                             for lk in caches.search.lookup("t1", [(Scope("alice"), fp)])])
    assert caches.pending_invalidations == 0
    caches.close()
""")


def run_second_process(url: str, namespace: str, action: str) -> None:
    subprocess.run([sys.executable, "-c", _SECOND_PROCESS, url, namespace, action], check=True, timeout=60)


def test_a_write_in_another_process_invalidates_this_ones_results(
    redis_proc: RedisProcess, make_redis_cache: MakeCache
) -> None:
    cache = make_redis_cache(redis_proc.url)
    caches = Caches.over(cache)
    warm(caches)

    run_second_process(redis_proc.url, cache._prefix[:-1], "invalidate")

    assert not served(caches)


def test_results_another_process_computed_are_served_here(
    redis_proc: RedisProcess, make_redis_cache: MakeCache
) -> None:
    cache = make_redis_cache(redis_proc.url)
    caches = Caches.over(cache)

    run_second_process(redis_proc.url, cache._prefix[:-1], "store")

    [lookup] = caches.search.lookup("t1", [(ALICE, FP)])
    assert lookup.hits == (CachedHit("from-b", 5, 0.5),)


# -- batching ------------------------------------------------------------------------------


def test_a_batch_of_texts_is_one_mget(own_redis: RedisProcess, make_redis_cache: MakeCache) -> None:
    caches = Caches.over(make_redis_cache(own_redis.url))
    texts = [f"text {i}" for i in range(64)]
    caches.embeddings.put_many("mini", texts[:32], np.ones((32, 4), dtype=np.float32))
    with own_redis.client() as admin:
        before = admin.info("commandstats").get("cmdstat_mget", {}).get("calls", 0)

        found = caches.embeddings.get_many("mini", texts, dimension=4)

        after = admin.info("commandstats")["cmdstat_mget"]["calls"]
    assert after - before == 1
    assert sum(v is not None for v in found) == 32


# -- connecting ----------------------------------------------------------------------------


def test_connects_over_a_unix_socket(redis_proc: RedisProcess, make_redis_cache: MakeCache) -> None:
    cache = make_redis_cache(redis_proc.unix_url)
    caches = Caches.over(cache)

    warm(caches)

    assert cache.breaker_state == "closed"


def test_connects_over_tls(tmp_path: Path, make_redis_cache: MakeCache) -> None:
    proc = RedisProcess(tmp_path / "tls", tls=self_signed_certificate(tmp_path)).start()
    try:
        cache = make_redis_cache(proc.url)
        caches = Caches.over(cache)

        warm(caches)

        assert type(cache._client).__name__ == "Redis"
        assert cache._client.connection_pool.connection_class.__name__ == "SSLConnection"  # type: ignore[union-attr]
    finally:
        proc.stop()


def test_without_the_info_command_the_cache_stays_off(
    redis_proc: RedisProcess, make_redis_cache: MakeCache
) -> None:
    with redis_proc.client() as admin:
        admin.acl_setuser(
            "noinfo", enabled=True, passwords=["+secret"], keys=["*"], commands=["+@all", "-info"]
        )
    cache = make_redis_cache(f"redis://noinfo:secret@127.0.0.1:{redis_proc.port}")

    assert cache.breaker_state != "closed"
    assert cache.get_many(["a"]) is None
    assert "secret" not in cache.name


def test_urls_choose_standalone_or_cluster() -> None:
    assert _cluster_url("redis://h:1/0", None) == ("redis://h:1/0", False)
    assert _cluster_url("redis+cluster://h:1", None) == ("redis://h:1", True)
    assert _cluster_url("rediss+cluster://h:1?ssl_ca_certs=/ca.pem", None) == (
        "rediss://h:1?ssl_ca_certs=%2Fca.pem",
        True,
    )
    assert _cluster_url("redis://h:1?cluster=yes&db=0", None) == ("redis://h:1?db=0", True)
    assert _cluster_url("redis://h:1", True) == ("redis://h:1", True)
    assert _cluster_url("unix:///run/redis.sock", None) == ("unix:///run/redis.sock", False)
    for bad in ("http://h:1", "unix:///s.sock?cluster=true"):
        with pytest.raises(ValueError):
            _cluster_url(bad, None)
    assert _redact("redis://user:pw@h:6379/0") == "redis://user:***@h:6379/0"


def test_many_threads_share_one_pool_while_redis_comes_and_goes(
    own_redis: RedisProcess, make_redis_cache: MakeCache
) -> None:
    cache = make_redis_cache(own_redis.url)
    caches = Caches.over(cache)
    stop = threading.Event()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            while not stop.is_set():
                lookups = caches.search.lookup("t1", [(Scope(f"u{n}"), FP)])
                caches.search.store([(lk, HITS) for lk in lookups])
                caches.invalidate("t1", [(f"m{n}", Scope(f"u{n}"))])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    own_redis.stop()
    time.sleep(0.3)
    own_redis.start()
    wait_until(lambda: cache.breaker_state == "closed")
    time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join()

    assert not errors
    served(caches)  # a lookup delivers what the outage left pending
    assert caches.pending_invalidations == 0
    warm(caches)
