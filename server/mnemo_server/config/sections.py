"""The sections of the server and its data path: server, store, embedder,
cache, index, limits and lifecycle (with its retention rules)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from mnemo_server.config.checks import ConfigError, doc, positive


@dataclass(frozen=True)
class ServerSettings:
    address: str = doc("Host and port to listen on.", default="127.0.0.1:50051")
    data_dir: Path = doc("Directory for the SQLite store and index snapshots.", default=Path("mnemo-data"))
    log_level: str = doc("debug, info, warning or error.", default="info")
    log_json: bool = doc("Write logs as JSON lines.", default=False)
    workers: int = doc(
        "Server processes sharing the address (SO_REUSEPORT) and the data directory, under a "
        "supervisor that restarts them; 1 runs one process without a supervisor. At most twice the "
        "cores. (Until 2026-12-03 this key counted threads: that is `threads` now.)",
        default=1,
    )
    threads: int = doc("Threads for blocking work (store, index, model), per process.", default=32)
    max_message_bytes: int = doc(
        "Largest gRPC request message accepted (a batch must fit: 1,000 memories of up to 4 KB, or "
        "100 of 32 KB); larger ones fail with RESOURCE_EXHAUSTED before they are read. Responses may "
        "be up to 64 MiB.",
        default=4 * 1024 * 1024,
    )
    shutdown_drain_s: float = doc(
        "Seconds the server keeps serving after SIGTERM with health NOT_SERVING, so probes and load "
        "balancers stop sending calls before the port closes (not on Ctrl-C; a second signal ends it).",
        default=5.0,
    )
    shutdown_grace_s: float = doc("Seconds in-flight calls get to finish on SIGTERM.", default=10.0)
    keepalive_time_s: float = doc("Seconds between keepalive pings on idle streams.", default=30.0)
    keepalive_timeout_s: float = doc("Seconds to wait for a keepalive ack.", default=10.0)
    sweep_interval_s: float = doc("Seconds between expiry sweeps.", default=1.0)
    storage_check_interval_s: float = doc(
        "Seconds between checks that the data directory is still there (writes also check it "
        "before they commit); once it is deleted or replaced, health turns NOT_SERVING.",
        default=1.0,
    )
    consistency_wait_ms: int = doc(
        "Longest a read with a `min_revision` (a consistency token) waits for this server to apply "
        "that revision, another replica's write, before it fails with UNAVAILABLE / "
        "REVISION_NOT_REACHED; the call's deadline shortens it. 0 fails at once when behind.",
        default=1000,
    )
    redis_url: str = doc(
        "Redis for the shared cache (redis://, rediss://, unix://, "
        "redis+cluster://); empty for the in-process cache.",
        default="",
    )

    def validate(self) -> None:
        host, sep, port = self.address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(f"address: expected HOST:PORT, got {self.address!r}")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"log_level: expected debug, info, warning or error, got {self.log_level!r}")
        positive("threads", self.threads)
        check_workers(self.workers)
        positive("max_message_bytes", self.max_message_bytes)
        positive("sweep_interval_s", self.sweep_interval_s)
        positive("storage_check_interval_s", self.storage_check_interval_s)
        if self.consistency_wait_ms < 0:
            raise ConfigError("consistency_wait_ms: must not be negative")
        if self.shutdown_grace_s < 0:
            raise ConfigError("shutdown_grace_s: must not be negative")
        if self.shutdown_drain_s < 0:
            raise ConfigError("shutdown_drain_s: must not be negative")
        if self.redis_url and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
        ):
            raise ConfigError(
                f"redis_url: expected redis://, rediss://, unix:// or redis+cluster://, "
                f"got {self.redis_url!r}"
            )


def check_workers(workers: int) -> None:
    """1 to twice the cores this process may run on: more processes than that
    only compete for the cores, and a larger number is most likely a setting
    written when `workers` still counted threads."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    most = max(2, 2 * cores)
    if not 1 <= workers <= most:
        raise ConfigError(
            f"workers: counts server processes, expected 1 to {most} (twice the {cores} cores), got {workers}"
            " (the thread pool is `threads`, which `workers` counted until 2026-12-03)"
        )


@dataclass(frozen=True)
class StoreSettings:
    synchronous: str = doc("SQLite synchronous mode: FULL (fsync every commit) or NORMAL.", default="FULL")
    url: str = doc(
        "A PostgreSQL database (postgresql://user@host:port/db) to store memories and API keys in; "
        "empty for the SQLite file in data_dir (docs/operations.md, PostgreSQL).",
        default="",
    )
    pool_size: int = doc("Most connections to PostgreSQL this server opens (store.url).", default=16)

    def validate(self) -> None:
        if self.synchronous.upper() not in ("FULL", "NORMAL"):
            raise ConfigError(f"store.synchronous: expected FULL or NORMAL, got {self.synchronous!r}")
        if self.url and not self.url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"store.url: expected a postgresql:// URL, got {self.url.split(':')[0]!r}")
        if self.pool_size < 2:
            raise ConfigError("store.pool_size must be at least 2")


@dataclass(frozen=True)
class EmbedderSettings:
    provider: str = doc("local (sentence-transformers) or http (OpenAI-compatible).", default="local")
    model: str = doc(
        "Local model name or path, or the model name sent to the HTTP endpoint; "
        "empty for the bundled all-MiniLM-L6-v2.",
        default="",
    )
    url: str = doc("Base URL of the OpenAI-compatible endpoint (provider http).", default="")
    api_key: str = doc("Bearer key for the HTTP endpoint.", default="")
    dimension: int = doc("Embedding dimension; 0 to discover it.", default=0)
    timeout_s: float = doc("Timeout of one HTTP embedding call.", default=10.0)
    batch_size: int = doc("Most texts per model call (micro-batching).", default=32)
    max_wait_ms: float = doc("Longest a partly full batch waits for more texts.", default=2.0)
    torch_threads: int = doc("Threads torch uses for the local model.", default=2)
    cache_bytes: int = doc(
        "Bytes of the in-process embedding cache; 0 turns it off.", default=64 * 1024 * 1024
    )

    def validate(self) -> None:
        if self.provider not in ("local", "http"):
            raise ConfigError(f"embedder.provider: expected local or http, got {self.provider!r}")
        if self.provider == "http" and not self.url:
            raise ConfigError("embedder.url: required when embedder.provider is http")
        if self.dimension < 0:
            raise ConfigError("embedder.dimension: must not be negative")
        positive("embedder.batch_size", self.batch_size)
        positive("embedder.torch_threads", self.torch_threads)
        if self.max_wait_ms < 0 or self.cache_bytes < 0:
            raise ConfigError("embedder.max_wait_ms and embedder.cache_bytes must not be negative")


@dataclass(frozen=True)
class CacheSettings:
    namespace: str = doc("Key prefix in Redis; empty for one derived from the store's id.", default="")
    local_bytes: int = doc(
        "Bytes of the in-process result and record cache (no Redis).", default=32 * 1024 * 1024
    )
    search_ttl_s: float = doc("Lifetime of a cached search result.", default=600.0)
    record_ttl_s: float = doc("Lifetime of a cached record.", default=600.0)
    embedding_ttl_s: float = doc("Lifetime of a cached embedding.", default=86400.0)
    op_timeout_ms: float = doc("Timeout of one Redis operation.", default=50.0)
    enabled: bool = doc(
        "Cache search results and records (embeddings are cached per embedder.cache_bytes or Redis).",
        default=True,
    )
    record_table_entries: int = doc(
        "Decoded memories (without embeddings) kept in process to hydrate search hits without a "
        "store read, in every process even with Redis; 0 turns the table off.",
        default=100_000,
    )

    def validate(self) -> None:
        if "{" in self.namespace or "}" in self.namespace:
            raise ConfigError("cache.namespace: must not contain braces")
        if self.record_table_entries < 0:
            raise ConfigError("cache.record_table_entries: must not be negative")
        for name in ("local_bytes", "search_ttl_s", "record_ttl_s", "embedding_ttl_s", "op_timeout_ms"):
            positive(f"cache.{name}", getattr(self, name))


@dataclass(frozen=True)
class IndexSettings:
    shard_capacity: int = doc("Most vectors per shard.", default=262144)
    ann_threshold: int = doc("A shard switches from exact to HNSW past this many vectors.", default=20000)
    exact_threshold: int = doc("Scopes with at most this many vectors are scanned exactly.", default=20000)
    ef_search: int = doc("HNSW efSearch for unrestricted queries.", default=64)
    snapshot_interval_s: float = doc(
        "Seconds between background snapshots (0: only on shutdown).", default=300.0
    )

    def validate(self) -> None:
        for name in ("shard_capacity", "ann_threshold", "exact_threshold", "ef_search"):
            positive(f"index.{name}", getattr(self, name))
        if self.snapshot_interval_s < 0:
            raise ConfigError("index.snapshot_interval_s: must not be negative")


@dataclass(frozen=True)
class LimitSettings:
    max_content_bytes: int = doc("Largest memory content or text query, UTF-8 bytes.", default=32 * 1024)
    max_metadata_bytes: int = doc(
        "Largest metadata, tags and links of one memory, as JSON.", default=64 * 1024
    )
    max_tags: int = doc("Most tags per memory.", default=64)
    max_links: int = doc("Most links per memory.", default=64)
    max_batch_write: int = doc("Most operations per BatchWriteMemories.", default=1000)
    max_batch_search: int = doc("Most queries per BatchSearchMemories.", default=256)
    max_top_k: int = doc("Largest top_k.", default=1000)
    max_page_size: int = doc("Largest page_size.", default=1000)
    max_stream_in_flight: int = doc(
        "Queries of one StreamSearchMemories call answered at a time; the stream is not read further "
        "until one is answered.",
        default=8,
    )
    max_stream_queries: int = doc(
        "Queries of all StreamSearchMemories calls of the server answered at a time.", default=64
    )

    def validate(self) -> None:
        for f in fields(self):
            positive(f"limits.{f.name}", getattr(self, f.name))


@dataclass(frozen=True)
class RetentionRule:
    """One retention policy: in `tenant` ("*" for all) and `scope`, delete
    unpinned memories older than `max_age_s`, and keep at most `max_count`
    per distinct (user, agent, run), evicting by `eviction`."""

    tenant: str = "*"
    user_id: str = ""
    agent_id: str = ""
    run_id: str = ""
    max_age_s: float = 0.0
    max_count: int = 0
    eviction: str = "oldest"

    def validate(self, where: str) -> None:
        if self.max_age_s < 0 or self.max_count < 0:
            raise ConfigError(f"{where}: max_age_s and max_count must not be negative")
        if not self.max_age_s and not self.max_count:
            raise ConfigError(f"{where}: give max_age_s or max_count")
        if self.eviction not in ("oldest", "least_recently_retrieved"):
            raise ConfigError(f"{where}.eviction: expected oldest or least_recently_retrieved")


@dataclass(frozen=True)
class LifecycleSettings:
    idempotency_window_s: float = doc("How long a request_id is remembered.", default=86400.0)
    feed_retention_s: float = doc(
        "How long the change feed can replay (revision log retention).", default=7 * 86400.0
    )
    watch_buffer: int = doc("Events a watcher may fall behind by before it is told to resume.", default=10000)
    retention: tuple[RetentionRule, ...] = doc(
        "Retention policies: a TOML array of tables [[lifecycle.retention]] or JSON in "
        "MNEMO_LIFECYCLE_RETENTION.",
        default=(),
    )

    def validate(self) -> None:
        positive("lifecycle.idempotency_window_s", self.idempotency_window_s)
        positive("lifecycle.feed_retention_s", self.feed_retention_s)
        positive("lifecycle.watch_buffer", self.watch_buffer)
        for i, rule in enumerate(self.retention):
            rule.validate(f"lifecycle.retention[{i}]")
