"""Per-caller rate limits (token buckets) and open-stream limits. Imports no grpc.

A caller is an API key (its id), or the client's address while auth is off.
Each caller has a bucket of `burst` tokens refilled at `rate` per second; a
call takes one token (a batch or a stream is one call) and a call that finds
the bucket empty fails with RESOURCE_EXHAUSTED / RATE_LIMITED and a RetryInfo
delay after which a token will be there.

With Redis configured the buckets live in Redis, updated by one Lua script
(atomic, on Redis's clock), so a key's limit holds across every replica. If
Redis fails the limiter logs it once, uses in-process buckets, and tries Redis
again after a pause: a Redis outage never fails a call (while it lasts each
replica enforces the limit on its own).

Open streams are counted per process.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from mnemo_server.errors import ResourceExhaustedError
from mnemo_server.redis_url import cluster_url

log = logging.getLogger("mnemo.ratelimit")

#: KEYS[1] the bucket; ARGV rate per second, burst. Returns {allowed, wait_s}
#: (the wait as a string: Redis truncates Lua numbers to integers).
_TAKE_LUA: Final = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'time')
local tokens = tonumber(state[1])
local last = tonumber(state[2])
if tokens == nil or last == nil then
  tokens = burst
  last = now
end
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'time', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, string.format('%.6f', wait)}
"""


def _burst(rate: float, burst: int) -> int:
    return burst or max(1, math.ceil(rate))


class LocalBuckets:
    """Token buckets in this process; thread-safe."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_callers: int = 100_000,
    ) -> None:
        self.rate = rate
        self.burst = _burst(rate, burst)
        self._clock = clock
        self._max_callers = max_callers
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, caller: str) -> float | None:
        """None when the call may go ahead, else the seconds until it may."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(caller, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + max(0.0, now - last) * self.rate)
            if tokens >= 1:
                self._buckets[caller] = (tokens - 1, now)
                return None
            self._buckets[caller] = (tokens, now)
            if len(self._buckets) > self._max_callers:
                self._prune(now)
            return (1 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket.
        full_after = self.burst / self.rate
        for caller, (_, last) in list(self._buckets.items()):
            if now - last >= full_after:
                del self._buckets[caller]


class RedisBuckets:
    """Token buckets in Redis, shared by every replica using the same namespace."""

    def __init__(self, url: str, *, namespace: str, rate: float, burst: int, timeout_s: float) -> None:
        self.rate = rate
        self.burst = _burst(rate, burst)
        self._url, self._cluster = cluster_url(url, None)
        self._prefix = f"{namespace}:ratelimit:"
        self._timeout_s = timeout_s
        self._client: Any = None
        self._script: Any = None

    def _connect(self) -> Any:
        # Created on first use, inside the event loop that serves calls.
        options: dict[str, Any] = {
            "socket_timeout": self._timeout_s,
            "socket_connect_timeout": self._timeout_s * 4,
            "client_name": "mnemo-ratelimit",
        }
        if self._cluster:
            from redis.asyncio.cluster import RedisCluster

            return RedisCluster.from_url(self._url, **options)
        import redis.asyncio

        return redis.asyncio.Redis.from_url(self._url, **options)

    async def take(self, caller: str) -> float | None:
        """As LocalBuckets.take; raises when Redis fails."""
        if self._client is None:
            self._client = self._connect()
            self._script = self._client.register_script(_TAKE_LUA)
        allowed, wait = await asyncio.wait_for(
            self._script(keys=[self._prefix + caller], args=[repr(self.rate), str(self.burst)]),
            timeout=self._timeout_s * 8,
        )
        return None if int(allowed) == 1 else float(wait)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class RateLimiter:
    """Checks each call against its caller's bucket."""

    def __init__(self, rate: float, burst: int, *, pause_s: float = 1.0) -> None:
        """Args:
        rate: calls per second per caller; 0 turns limiting off.
        burst: calls at once above the rate; 0 for the rate rounded up.
        pause_s: how long to use in-process buckets after Redis failed.
        """
        self.rate = rate
        self._burst = burst
        self.local = LocalBuckets(rate, burst) if rate > 0 else None
        self.redis: RedisBuckets | None = None
        self._pause_s = pause_s
        self._redis_down_until = 0.0
        self.redis_failures = 0

    @property
    def enabled(self) -> bool:
        return self.local is not None

    def use_redis(self, url: str, *, namespace: str, timeout_s: float) -> None:
        """Shares the buckets through Redis from now on."""
        if self.enabled:
            self.redis = RedisBuckets(
                url, namespace=namespace, rate=self.rate, burst=self._burst, timeout_s=timeout_s
            )

    async def check(self, caller: str) -> None:
        """Raises RATE_LIMITED when the caller has no token left."""
        if self.local is None:
            return
        wait: float | None
        if self.redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                wait = await self.redis.take(caller)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.redis_failures += 1
                if self._redis_down_until == 0.0:
                    log.warning(
                        "rate limits: Redis failed (%s); limiting in this process", exc or type(exc).__name__
                    )
                self._redis_down_until = time.monotonic() + self._pause_s
                wait = self.local.take(caller)
            else:
                if self._redis_down_until:
                    log.warning("rate limits: Redis is back; limits are shared again")
                    self._redis_down_until = 0.0
        else:
            wait = self.local.take(caller)
        if wait is not None:
            raise ResourceExhaustedError(
                f"rate limit of {self.rate:g} calls per second exceeded; retry in {wait:.3f} s",
                reason="RATE_LIMITED",
                retry_after_s=max(wait, 0.001),
            )

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.close()


class StreamLimiter:
    """Counts the open streams of each caller in this process."""

    def __init__(self, max_streams: int) -> None:
        self.max_streams = max_streams
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, caller: str) -> None:
        """Raises TOO_MANY_STREAMS when the caller has as many open as it may."""
        if not self.max_streams:
            return
        with self._lock:
            count = self._open.get(caller, 0)
            if count >= self.max_streams:
                raise ResourceExhaustedError(
                    f"at most {self.max_streams} open streams per key; close one first",
                    reason="TOO_MANY_STREAMS",
                )
            self._open[caller] = count + 1

    def release(self, caller: str) -> None:
        if not self.max_streams:
            return
        with self._lock:
            count = self._open.get(caller, 0) - 1
            if count > 0:
                self._open[caller] = count
            else:
                self._open.pop(caller, None)

    def open_count(self, caller: str) -> int:
        with self._lock:
            return self._open.get(caller, 0)
