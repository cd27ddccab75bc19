"""RedisCache: the cache every replica shares, over redis-py with hiredis.

URLs: `redis://[user:pass@]host:port/db`, `rediss://...` (TLS; certificate
options as query parameters, e.g. `?ssl_ca_certs=/etc/ca.pem`),
`unix:///path/redis.sock`, and Redis Cluster with `redis+cluster://` or
`rediss+cluster://` (or `cluster=True`): any node of the cluster.

Every value is stored as: 8-byte epoch stamp, flag byte, raw or LZ4 bytes.
The epoch of a key is a hash of the run_id of the Redis server holding it
(in a cluster, the node its slot maps to), read by `INFO server` when each
connection opens; base.py explains why that makes a restart from a persisted
snapshot harmless. The Redis user therefore needs the INFO command; without
it no connection opens and the cache stays down (logged), it never runs
unprotected.

Operations are single round trips: MGET (per slot in a cluster), or one
non-transactional pipeline. Each has a socket timeout (50 ms by default) and
one immediate retry on a broken connection, which reconnects after a restart.
A circuit breaker (breaker.py) skips Redis entirely while it is failing;
a write Redis refuses (OOM, READONLY, MISCONF, NOPERM, CLUSTERDOWN) opens it at
once, because a replica that cannot write cannot invalidate either.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import ResponseError
from redis.retry import Retry

from mnemo_server.cache import framing
from mnemo_server.cache.base import (
    STATE_DEGRADED,
    STATE_DOWN,
    STATE_OK,
    BackendStats,
    Cache,
    Item,
    LatencyRecorder,
    check_items,
    check_ttl,
)
from mnemo_server.cache.breaker import CLOSED, HALF_OPEN, CircuitBreaker
from mnemo_server.redis_url import cluster_url as _cluster_url

log = logging.getLogger("mnemo.cache")

_EPOCH_BYTES: Final = 8
_T = TypeVar("_T")


class _Failed:
    """The result of an operation that did not reach Redis or failed there;
    `refused` when Redis answered with an error (it is reachable)."""

    def __init__(self, *, refused: bool = False) -> None:
        self.refused = refused


_FAILED: Final = _Failed()
_REFUSED: Final = _Failed(refused=True)


class RedisCache(Cache):
    """A Cache on Redis or Redis Cluster; see the module docstring."""

    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "mnemo",
        cluster: bool | None = None,
        op_timeout_s: float = 0.05,
        connect_timeout_s: float = 0.2,
        max_connections: int = 128,
        compress_threshold: int | None = framing.DEFAULT_COMPRESS_THRESHOLD,
        failure_threshold: int = 3,
        retry_after_s: float = 0.5,
        max_retry_after_s: float = 10.0,
        **client_options: Any,
    ) -> None:
        """Connects (or, if Redis is down, starts probing for it in the background).

        Args:
            url: see the module docstring.
            namespace: prefix of every key ("mnemo:..."); give each deployment
                that shares a Redis its own. No braces: they would become the
                cluster hash tag.
            cluster: force cluster mode on or off; None decides by the URL.
            op_timeout_s: socket timeout of each operation.
            connect_timeout_s: timeout of opening a connection.
            max_connections: bound of the connection pool (per node in a cluster).
            compress_threshold: values of at least this many bytes are LZ4
                compressed when that saves space; None never compresses.
            failure_threshold: consecutive failures that open the breaker.
            retry_after_s: delay before the first probe once open.
            max_retry_after_s: bound of the doubling probe delay.
            **client_options: passed to redis-py (ssl_ca_certs, password, ...).
        """
        if not namespace or "{" in namespace or "}" in namespace:
            raise ValueError(f"namespace must be non-empty and brace-free, got {namespace!r}")
        self._url, self._cluster = _cluster_url(url, cluster)
        self._prefix = namespace + ":"
        self._threshold = compress_threshold
        self._client_options: dict[str, Any] = {
            "socket_timeout": op_timeout_s,
            "socket_connect_timeout": connect_timeout_s,
            "max_connections": max_connections,
            "client_name": "mnemo-cache",
            "redis_connect_func": self._on_connect,
            **client_options,
        }
        self._client: redis.Redis | RedisCluster | None = None
        self._client_lock = threading.Lock()
        self._closed = False
        self._run_ids: dict[str, str] = {}
        # server address -> epoch; standalone uses the last one learned.
        self._epochs: dict[str, bytes] = {}
        self._epoch: bytes | None = None
        self._epoch_lock = threading.Lock()
        self._counts_lock = threading.Lock()
        self._hits = self._misses = self._errors = self._skipped = self._stale = 0
        self._latency = LatencyRecorder()
        self.name = f"redis at {_redact(self._url)}"
        self._breaker = CircuitBreaker(
            name=self.name,
            probe=self._probe,
            failure_threshold=failure_threshold,
            retry_after_s=retry_after_s,
            max_retry_after_s=max_retry_after_s,
        )
        try:
            self._probe()
        except Exception as exc:
            self._breaker.open_now(exc)

    # -- Cache ---------------------------------------------------------------------

    def get_many(self, keys: Sequence[str]) -> list[bytes | None] | None:
        if not keys:
            return []
        full = [self._prefix + key for key in keys]

        def mget(client: Any) -> list[bytes | None]:
            if self._cluster:
                return client.mget_nonatomic(full)  # type: ignore[no-any-return]
            return client.mget(full)  # type: ignore[no-any-return]

        raw = self._call(mget, write=False)
        if isinstance(raw, _Failed):
            return None
        # Epochs as known AFTER the reply: a reconnect during the call has
        # already replaced them (see base.py).
        values = [self._decode(frame, stamp) for frame, stamp in zip(raw, self._stamps(full), strict=True)]
        hits = sum(v is not None for v in values)
        with self._counts_lock:
            self._hits += hits
            self._misses += len(values) - hits
        return values

    def set_many(self, items: Sequence[Item]) -> bool:
        check_items(items)
        return self._set(items) is None

    def _set(self, items: Sequence[Item]) -> _Failed | None:
        if not items:
            return None
        full = [self._prefix + key for key, _, _ in items]
        stamps = self._stamps(full, learn=True)
        if any(stamp is None for stamp in stamps):
            return _FAILED

        def put(client: Any) -> None:
            pipe = client.pipeline(transaction=False)
            for key, (_, value, ttl_s), stamp in zip(full, items, stamps, strict=True):
                pipe.set(key, self._encode(value, stamp), px=_ms(ttl_s))  # type: ignore[arg-type]
            pipe.execute()

        result = self._call(put, write=True)
        return result if isinstance(result, _Failed) else None

    def add_many(self, items: Sequence[Item]) -> list[bytes | None] | None:
        check_items(items)
        if not items:
            return []
        full = [self._prefix + key for key, _, _ in items]
        stamps = self._stamps(full, learn=True)
        if any(stamp is None for stamp in stamps):
            return None

        def add(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for key, (_, value, ttl_s), stamp in zip(full, items, stamps, strict=True):
                pipe.set(key, self._encode(value, stamp), px=_ms(ttl_s), nx=True)  # type: ignore[arg-type]
                pipe.get(key)
            return pipe.execute()  # type: ignore[no-any-return]

        replies = self._call(add, write=True)
        if isinstance(replies, _Failed):
            return None
        held: list[bytes | None] = []
        overwrite: list[Item] = []
        after = self._stamps(full)
        for (key, value, ttl_s), frame, stamp in zip(items, replies[1::2], after, strict=True):
            if frame is None:
                held.append(None)
                continue
            current = self._decode(frame, stamp)
            if current is None:
                # Stamped by an earlier epoch (a restored snapshot) or unreadable:
                # as good as absent, so ours replaces it.
                overwrite.append((key, value, ttl_s))
                held.append(value)
            else:
                held.append(current)
        if overwrite and not self.set_many(overwrite):
            return None
        return held

    def delete_many(self, keys: Sequence[str]) -> bool:
        if not keys:
            return True
        full = [self._prefix + key for key in keys]
        return not isinstance(self._call(lambda c: c.unlink(*full), write=True), _Failed)

    def bump_many(self, keys: Sequence[str], *, ttl_s: float) -> bool:
        check_ttl(ttl_s)
        if not keys:
            return True
        failed = self._set([(key, os.urandom(8), ttl_s) for key in keys])
        if failed is None:
            return True
        # Redis may refuse SET (out of memory, MISCONF) yet accept UNLINK, and a
        # deleted generation is recreated fresh by the next reader. Tried even
        # though the refusal just opened the breaker, since Redis did answer;
        # never after a timeout or a failed connection, which would cost as much again.
        if not failed.refused or self._closed or self._client is None:
            return False
        full = [self._prefix + key for key in keys]
        return not isinstance(self._call(lambda c: c.unlink(*full), write=True, force=True), _Failed)

    def stats(self) -> BackendStats:
        state = self._breaker.state
        used = self._call(self._used_memory, write=False, count=False)
        with self._counts_lock:
            return BackendStats(
                backend=self.backend,
                state=STATE_OK if state == CLOSED else STATE_DEGRADED if state == HALF_OPEN else STATE_DOWN,
                hits=self._hits,
                misses=self._misses,
                errors=self._errors,
                skipped=self._skipped,
                latency=self._latency.snapshot(),
                bytes=0 if isinstance(used, _Failed) else used,
                entries=0,
                evictions=0,
            )

    @property
    def available(self) -> bool:
        return not self._closed and self._client is not None and self._breaker.allow()

    @property
    def breaker_state(self) -> str:
        """The circuit breaker's state: closed, open or half_open."""
        return self._breaker.state

    @property
    def stale_reads(self) -> int:
        """Values read that an earlier Redis epoch had stamped (ignored)."""
        return self._stale

    def close(self) -> None:
        self._closed = True
        self._breaker.close()
        with self._client_lock:
            client, self._client = self._client, None
        if client is None:
            return
        if isinstance(client, RedisCluster):
            # RedisCluster.from_url gives each node a pool that its close()
            # leaves open (redis-py 8): disconnect them ourselves.
            for node in client.get_nodes():  # type: ignore[no-untyped-call]
                if node.redis_connection is not None:
                    node.redis_connection.connection_pool.disconnect()
        client.close()

    # -- internals ---------------------------------------------------------------

    def _call(
        self, op: Callable[[Any], _T], *, write: bool, force: bool = False, count: bool = True
    ) -> _T | _Failed:
        client = self._client
        if self._closed or client is None or not (force or self._breaker.allow()):
            if count:
                with self._counts_lock:
                    self._skipped += 1
            return _FAILED
        started = time.perf_counter()
        try:
            result = op(client)
        except Exception as exc:
            if count:
                with self._counts_lock:
                    self._errors += 1
            refused = isinstance(exc, ResponseError)
            if write and refused:
                self._breaker.open_now(exc)
            else:
                self._breaker.failure(exc)
            return _REFUSED if refused else _FAILED
        self._breaker.success()
        if count:
            self._latency.record(time.perf_counter() - started)
        return result

    def _stamps(self, full_keys: Sequence[str], *, learn: bool = False) -> list[bytes | None]:
        """The epoch of the server holding each key, as known now; with
        `learn`, connects to cluster nodes not met yet (a ping) to learn theirs."""
        if not self._cluster:
            return [self._epoch] * len(full_keys)
        client = self._client
        if not isinstance(client, RedisCluster):
            return [None] * len(full_keys)
        try:
            names = [client.get_node_from_key(key).name for key in full_keys]  # type: ignore[no-untyped-call]
        except Exception:
            return [None] * len(full_keys)
        if learn:
            for name in set(names) - self._epochs.keys():
                self._call(_pinger(name), write=False)
        return [self._epochs.get(name) for name in names]

    def _encode(self, value: bytes, epoch: bytes) -> bytes:
        return epoch + framing.pack(value, self._threshold)

    def _decode(self, frame: bytes | None, epoch: bytes | None) -> bytes | None:
        if frame is None:
            return None
        if epoch is None or frame[:_EPOCH_BYTES] != epoch:
            with self._counts_lock:
                self._stale += 1
            return None
        return framing.unpack(frame[_EPOCH_BYTES:])

    def _used_memory(self, client: Any) -> int:
        if self._cluster:
            info = client.info("memory", target_nodes=RedisCluster.PRIMARIES)
            nodes = info.values() if isinstance(info, dict) and "used_memory" not in info else [info]
            return sum(int(n.get("used_memory", 0)) for n in nodes)
        return int(client.info("memory").get("used_memory", 0))

    def _make_client(self) -> redis.Redis | RedisCluster:
        # One immediate retry on a broken connection (a pooled socket that
        # died with a restart), none on a timeout: slow Redis fails fast.
        retry = Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))
        if self._cluster:
            options = dict(self._client_options)
            return RedisCluster.from_url(self._url, retry=retry, **options)
        return redis.Redis.from_url(self._url, retry=retry, **self._client_options)

    def _probe(self) -> None:
        """Raises unless Redis accepts a write; opens the client if needed."""
        if self._closed:
            raise ConnectionError("closed")
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client()
            client = self._client
        if self._cluster:
            # Meets every node now, so that each key's epoch is known up front.
            client.ping(target_nodes=RedisCluster.ALL_NODES)
        client.set(self._prefix + "probe", b"1", px=1000)

    def _on_connect(self, connection: Any) -> None:
        """Runs on every new connection before it carries a command: learns
        the server's run_id, which changes when Redis restarts."""
        if not self._cluster:
            # RedisCluster runs the default handshake before calling us;
            # Redis leaves it to us.
            connection.on_connect()
        connection.send_command("INFO", "server")
        reply = connection.read_response()
        text = reply.decode() if isinstance(reply, bytes) else str(reply)
        run_id = next(
            (line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("run_id:")),
            "",
        )
        if not run_id:
            raise redis.ConnectionError("INFO server reported no run_id")
        path = getattr(connection, "path", "")
        address = path or f"{connection.host}:{connection.port}"
        with self._epoch_lock:
            previous = self._run_ids.get(address)
            if previous == run_id:
                return
            self._run_ids[address] = run_id
            epoch = hashlib.blake2b(run_id.encode(), digest_size=_EPOCH_BYTES).digest()
            self._epochs[address] = epoch
            self._epoch = epoch
        if previous is not None:
            log.warning(
                "redis at %s restarted or failed over (run_id %s -> %s); values cached before are ignored",
                address,
                previous[:8],
                run_id[:8],
            )


def _pinger(node_name: str) -> Callable[[Any], Any]:
    """Pings one cluster node: connecting to it teaches us its epoch."""
    return lambda client: client.ping(target_nodes=client.get_node(node_name=node_name))


def _ms(ttl_s: float) -> int:
    return max(1, round(ttl_s * 1000))


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
