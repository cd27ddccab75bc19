"""Settings: frozen dataclasses filled from a TOML file < MNEMO_* environment < flags.

Every setting has one name in each source, derived from its section and field:

    TOML  [index] ann_threshold = 20000
    env   MNEMO_INDEX_ANN_THRESHOLD=20000
    flag  --index-ann-threshold 20000

Settings of the `server` section drop the prefix (MNEMO_ADDRESS, --address).
Anything invalid raises ConfigError with one line that names the setting.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """An invalid setting; the message is one line meant for the operator."""


def _doc(text: str, **kwargs: Any) -> Any:
    return field(metadata={"doc": text}, **kwargs)


@dataclass(frozen=True)
class ServerSettings:
    address: str = _doc("Host and port to listen on.", default="127.0.0.1:50051")
    data_dir: Path = _doc("Directory for the SQLite store and index snapshots.", default=Path("mnemo-data"))
    log_level: str = _doc("debug, info, warning or error.", default="info")
    log_json: bool = _doc("Write logs as JSON lines.", default=False)
    workers: int = _doc("Threads for blocking work (store, index, model).", default=32)
    max_message_bytes: int = _doc(
        "Largest gRPC request message accepted (a batch must fit: 1,000 memories of up to 4 KB, or "
        "100 of 32 KB); larger ones fail with RESOURCE_EXHAUSTED before they are read. Responses may "
        "be up to 64 MiB.",
        default=4 * 1024 * 1024,
    )
    shutdown_drain_s: float = _doc(
        "Seconds the server keeps serving after SIGTERM with health NOT_SERVING, so probes and load "
        "balancers stop sending calls before the port closes (not on Ctrl-C; a second signal ends it).",
        default=5.0,
    )
    shutdown_grace_s: float = _doc("Seconds in-flight calls get to finish on SIGTERM.", default=10.0)
    keepalive_time_s: float = _doc("Seconds between keepalive pings on idle streams.", default=30.0)
    keepalive_timeout_s: float = _doc("Seconds to wait for a keepalive ack.", default=10.0)
    sweep_interval_s: float = _doc("Seconds between expiry sweeps.", default=1.0)
    storage_check_interval_s: float = _doc(
        "Seconds between checks that the data directory is still there (writes also check it "
        "before they commit); once it is deleted or replaced, health turns NOT_SERVING.",
        default=1.0,
    )
    redis_url: str = _doc(
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
        _positive("workers", self.workers)
        _positive("max_message_bytes", self.max_message_bytes)
        _positive("sweep_interval_s", self.sweep_interval_s)
        _positive("storage_check_interval_s", self.storage_check_interval_s)
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


@dataclass(frozen=True)
class StoreSettings:
    synchronous: str = _doc("SQLite synchronous mode: FULL (fsync every commit) or NORMAL.", default="FULL")

    def validate(self) -> None:
        if self.synchronous.upper() not in ("FULL", "NORMAL"):
            raise ConfigError(f"store.synchronous: expected FULL or NORMAL, got {self.synchronous!r}")


@dataclass(frozen=True)
class EmbedderSettings:
    provider: str = _doc("local (sentence-transformers) or http (OpenAI-compatible).", default="local")
    model: str = _doc(
        "Local model name or path, or the model name sent to the HTTP endpoint; "
        "empty for the bundled all-MiniLM-L6-v2.",
        default="",
    )
    url: str = _doc("Base URL of the OpenAI-compatible endpoint (provider http).", default="")
    api_key: str = _doc("Bearer key for the HTTP endpoint.", default="")
    dimension: int = _doc("Embedding dimension; 0 to discover it.", default=0)
    timeout_s: float = _doc("Timeout of one HTTP embedding call.", default=10.0)
    batch_size: int = _doc("Most texts per model call (micro-batching).", default=32)
    max_wait_ms: float = _doc("Longest a partly full batch waits for more texts.", default=2.0)
    torch_threads: int = _doc("Threads torch uses for the local model.", default=2)
    cache_bytes: int = _doc(
        "Bytes of the in-process embedding cache; 0 turns it off.", default=64 * 1024 * 1024
    )

    def validate(self) -> None:
        if self.provider not in ("local", "http"):
            raise ConfigError(f"embedder.provider: expected local or http, got {self.provider!r}")
        if self.provider == "http" and not self.url:
            raise ConfigError("embedder.url: required when embedder.provider is http")
        if self.dimension < 0:
            raise ConfigError("embedder.dimension: must not be negative")
        _positive("embedder.batch_size", self.batch_size)
        _positive("embedder.torch_threads", self.torch_threads)
        if self.max_wait_ms < 0 or self.cache_bytes < 0:
            raise ConfigError("embedder.max_wait_ms and embedder.cache_bytes must not be negative")


@dataclass(frozen=True)
class CacheSettings:
    namespace: str = _doc("Key prefix in Redis; empty for one derived from the store's id.", default="")
    local_bytes: int = _doc(
        "Bytes of the in-process result and record cache (no Redis).", default=32 * 1024 * 1024
    )
    search_ttl_s: float = _doc("Lifetime of a cached search result.", default=600.0)
    record_ttl_s: float = _doc("Lifetime of a cached record.", default=600.0)
    embedding_ttl_s: float = _doc("Lifetime of a cached embedding.", default=86400.0)
    op_timeout_ms: float = _doc("Timeout of one Redis operation.", default=50.0)
    enabled: bool = _doc(
        "Cache search results and records (embeddings are cached per embedder.cache_bytes or Redis).",
        default=True,
    )

    def validate(self) -> None:
        if "{" in self.namespace or "}" in self.namespace:
            raise ConfigError("cache.namespace: must not contain braces")
        for name in ("local_bytes", "search_ttl_s", "record_ttl_s", "embedding_ttl_s", "op_timeout_ms"):
            _positive(f"cache.{name}", getattr(self, name))


@dataclass(frozen=True)
class IndexSettings:
    shard_capacity: int = _doc("Most vectors per shard.", default=262144)
    ann_threshold: int = _doc("A shard switches from exact to HNSW past this many vectors.", default=20000)
    exact_threshold: int = _doc("Scopes with at most this many vectors are scanned exactly.", default=20000)
    ef_search: int = _doc("HNSW efSearch for unrestricted queries.", default=64)
    snapshot_interval_s: float = _doc(
        "Seconds between background snapshots (0: only on shutdown).", default=300.0
    )

    def validate(self) -> None:
        for name in ("shard_capacity", "ann_threshold", "exact_threshold", "ef_search"):
            _positive(f"index.{name}", getattr(self, name))
        if self.snapshot_interval_s < 0:
            raise ConfigError("index.snapshot_interval_s: must not be negative")


@dataclass(frozen=True)
class LimitSettings:
    max_content_bytes: int = _doc("Largest memory content or text query, UTF-8 bytes.", default=32 * 1024)
    max_metadata_bytes: int = _doc(
        "Largest metadata, tags and links of one memory, as JSON.", default=64 * 1024
    )
    max_tags: int = _doc("Most tags per memory.", default=64)
    max_links: int = _doc("Most links per memory.", default=64)
    max_batch_write: int = _doc("Most operations per BatchWriteMemories.", default=1000)
    max_batch_search: int = _doc("Most queries per BatchSearchMemories.", default=256)
    max_top_k: int = _doc("Largest top_k.", default=1000)
    max_page_size: int = _doc("Largest page_size.", default=1000)
    max_stream_in_flight: int = _doc(
        "Queries of one StreamSearchMemories call answered at a time; the stream is not read further "
        "until one is answered.",
        default=8,
    )
    max_stream_queries: int = _doc(
        "Queries of all StreamSearchMemories calls of the server answered at a time.", default=64
    )

    def validate(self) -> None:
        for f in fields(self):
            _positive(f"limits.{f.name}", getattr(self, f.name))


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
    idempotency_window_s: float = _doc("How long a request_id is remembered.", default=86400.0)
    feed_retention_s: float = _doc(
        "How long the change feed can replay (revision log retention).", default=7 * 86400.0
    )
    watch_buffer: int = _doc(
        "Events a watcher may fall behind by before it is told to resume.", default=10000
    )
    retention: tuple[RetentionRule, ...] = _doc(
        "Retention policies: a TOML array of tables [[lifecycle.retention]] or JSON in "
        "MNEMO_LIFECYCLE_RETENTION.",
        default=(),
    )

    def validate(self) -> None:
        _positive("lifecycle.idempotency_window_s", self.idempotency_window_s)
        _positive("lifecycle.feed_retention_s", self.feed_retention_s)
        _positive("lifecycle.watch_buffer", self.watch_buffer)
        for i, rule in enumerate(self.retention):
            rule.validate(f"lifecycle.retention[{i}]")


@dataclass(frozen=True)
class MetricsSettings:
    address: str = _doc(
        "Host and port of the Prometheus endpoint (HTTP, /metrics); empty turns it off.", default=""
    )
    tenant_limit: int = _doc(
        "Most tenants and index shards given their own series; the rest are summed as __other__.",
        default=100,
    )
    tenant_interval_s: float = _doc(
        "Seconds between recounts of memories per tenant (a scan of the store); 0: every scrape.",
        default=30.0,
    )

    def validate(self) -> None:
        if self.address:
            _host_port("metrics.address", self.address)
        _positive("metrics.tenant_limit", self.tenant_limit)
        if self.tenant_interval_s < 0:
            raise ConfigError("metrics.tenant_interval_s: must not be negative")


DEFAULT_SERVICE_NAME = "mnemo"


@dataclass(frozen=True)
class TracingSettings:
    otlp_endpoint: str = _doc(
        "OTLP/gRPC collector for spans (http://host:4317 plaintext, https:// TLS); empty for none.",
        default="",
    )
    console: bool = _doc("Print spans to stderr.", default=False)
    file: str = _doc("Append spans as JSON lines to this file; empty for none.", default="")
    service_name: str = _doc(
        "The service.name resource attribute of the spans; OTEL_SERVICE_NAME wins over the default.",
        default=DEFAULT_SERVICE_NAME,
    )
    sample_ratio: float = _doc(
        "Share of traces recorded when the caller sent no sampling decision.", default=1.0
    )

    @property
    def enabled(self) -> bool:
        return bool(self.otlp_endpoint or self.console or self.file)

    def validate(self) -> None:
        if self.otlp_endpoint and not self.otlp_endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                f"tracing.otlp_endpoint: expected http://HOST:PORT or https://HOST:PORT, "
                f"got {self.otlp_endpoint!r}"
            )
        if not 0.0 <= self.sample_ratio <= 1.0:
            raise ConfigError(f"tracing.sample_ratio: must lie in [0, 1], got {self.sample_ratio}")
        if not self.service_name:
            raise ConfigError("tracing.service_name: must not be empty")


@dataclass(frozen=True)
class HttpSettings:
    address: str = _doc(
        "Host and port of the HTTP endpoint: every RPC as JSON over HTTP/1.1 (the Connect protocol; "
        "gRPC-Web too) and /healthz, with the gRPC side's API keys, limits and TLS; empty turns it off.",
        default="",
    )
    cors_allowed_origins: str = _doc(
        "Web origins whose pages may call the HTTP endpoint from a browser, comma-separated "
        "(https://app.example.com); * for any (only with API keys on); empty for none.",
        default="",
    )
    dashboard: bool = _doc(
        "Serve the web dashboard at /dashboard/ on the HTTP endpoint (sign in with an API key).",
        default=True,
    )

    @property
    def origins(self) -> tuple[str, ...]:
        return tuple(o.strip().rstrip("/") for o in self.cors_allowed_origins.split(",") if o.strip())

    def validate(self) -> None:
        if self.address:
            _host_port("http.address", self.address)
        for origin in self.origins:
            scheme, sep, rest = origin.partition("://")
            if origin != "*" and (scheme not in ("http", "https") or not sep or not rest or "/" in rest):
                raise ConfigError(
                    f"http.cors_allowed_origins: expected * or origins like https://app.example.com, "
                    f"got {origin!r}"
                )


def _host_port(name: str, value: str) -> None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{name}: expected HOST:PORT, got {value!r}")


_AUTH_MODES: dict[str, bool | None] = {
    "auto": None,
    **dict.fromkeys(("on", "true", "yes", "1"), True),
    **dict.fromkeys(("off", "false", "no", "0"), False),
}


@dataclass(frozen=True)
class AuthSettings:
    enabled: str = _doc(
        "API keys required: auto (on unless the server binds a loopback address), on or off.", default="auto"
    )
    insecure_allow_unauthenticated: bool = _doc(
        "Allow auth off on a non-loopback address: anyone who reaches the port is an admin.", default=False
    )
    bootstrap_key: str = _doc(
        "An admin key of the system tenant chosen by the operator, at least 32 characters "
        "(prefer MNEMO_AUTH_BOOTSTRAP_KEY or bootstrap_key_file: flags show in ps).",
        default="",
    )
    bootstrap_key_file: str = _doc("A file whose first line is the bootstrap key.", default="")
    system_tenant: str = _doc(
        "The bootstrap key's tenant; its admin keys may create keys for any tenant and run "
        "server-wide admin calls.",
        default="system",
    )
    key_cache_s: float = _doc(
        "Seconds a key read from the store is trusted before it is read again: the longest a "
        "server keeps accepting a key revoked through another server sharing the store (0: every call).",
        default=5.0,
    )

    def validate(self) -> None:
        if self.enabled.strip().lower() not in _AUTH_MODES:
            raise ConfigError(f"auth.enabled: expected auto, on or off, got {self.enabled!r}")
        if self.bootstrap_key and self.bootstrap_key_file:
            raise ConfigError("auth.bootstrap_key and auth.bootstrap_key_file: give one, not both")
        if self.bootstrap_key_file:
            try:
                lines = Path(self.bootstrap_key_file).expanduser().read_text().splitlines()
            except OSError as exc:
                raise ConfigError(
                    f"auth.bootstrap_key_file: cannot read {self.bootstrap_key_file}: {exc.strerror}"
                ) from None
            _check_bootstrap("auth.bootstrap_key_file", lines[0].strip() if lines else "")
        elif self.bootstrap_key:
            _check_bootstrap("auth.bootstrap_key", self.bootstrap_key)
        if not self.system_tenant or len(self.system_tenant) > 128:
            raise ConfigError("auth.system_tenant: must be 1 to 128 characters")
        if self.key_cache_s < 0:
            raise ConfigError("auth.key_cache_s: must not be negative")

    def bootstrap_secret(self) -> str:
        """The bootstrap key, from the setting or the first line of the file; empty for none."""
        if self.bootstrap_key_file:
            lines = Path(self.bootstrap_key_file).expanduser().read_text().splitlines()
            return lines[0].strip() if lines else ""
        return self.bootstrap_key

    def is_on(self, address: str) -> bool:
        """Whether API keys are required on a server bound to `address`."""
        mode = _AUTH_MODES[self.enabled.strip().lower()]
        return not is_loopback(address) if mode is None else mode


def _check_bootstrap(name: str, secret: str) -> None:
    if len(secret) < 32 or any(c.isspace() or ord(c) < 33 for c in secret):
        raise ConfigError(f"{name}: the bootstrap key must be at least 32 printable characters, no spaces")


def is_loopback(address: str) -> bool:
    """Whether HOST:PORT names only this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    host = address.rpartition(":")[0].strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TlsSettings:
    cert_file: str = _doc("PEM certificate chain; with key_file the port speaks only TLS.", default="")
    key_file: str = _doc("PEM private key of cert_file.", default="")
    client_ca_file: str = _doc(
        "PEM CA certificates; when given, clients must present a certificate they signed (mTLS).",
        default="",
    )

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file)

    def validate(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            raise ConfigError("tls.cert_file and tls.key_file: give both or neither")
        if self.client_ca_file and not self.cert_file:
            raise ConfigError("tls.client_ca_file: needs tls.cert_file and tls.key_file")
        for name in ("cert_file", "key_file", "client_ca_file"):
            path = getattr(self, name)
            if path and not os.access(Path(path).expanduser(), os.R_OK):
                raise ConfigError(f"tls.{name}: cannot read {path}")


@dataclass(frozen=True)
class RateLimitSettings:
    requests_per_s: float = _doc(
        "Calls per second each API key may make (each client address when auth is off); 0: no limit.",
        default=0.0,
    )
    burst: int = _doc("Calls a key may make at once above its rate; 0: the rate rounded up.", default=0)
    max_streams: int = _doc(
        "Streaming calls (watch, export, import, stream search, re-embed) one key may have open; "
        "0: no limit.",
        default=100,
    )

    def validate(self) -> None:
        if self.requests_per_s < 0 or self.burst < 0 or self.max_streams < 0:
            raise ConfigError("rate_limit.requests_per_s, burst and max_streams must not be negative")


@dataclass(frozen=True)
class QuotaSettings:
    max_memories: int = _doc("Most memories one tenant may hold; 0: no limit.", default=0)
    max_content_bytes: int = _doc("Most UTF-8 bytes of content one tenant may hold; 0: no limit.", default=0)

    def validate(self) -> None:
        if self.max_memories < 0 or self.max_content_bytes < 0:
            raise ConfigError("quota.max_memories and quota.max_content_bytes must not be negative")


@dataclass(frozen=True)
class AuditSettings:
    log_file: str = _doc(
        "Append one JSON line per write, forget and admin call to this file (- for stdout); empty: off.",
        default="",
    )

    def validate(self) -> None:
        if self.log_file and self.log_file != "-":
            parent = Path(self.log_file).expanduser().parent
            if not os.access(parent, os.W_OK):
                raise ConfigError(f"audit.log_file: cannot write in {parent}")


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    embedder: EmbedderSettings = field(default_factory=EmbedderSettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    quota: QuotaSettings = field(default_factory=QuotaSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    http: HttpSettings = field(default_factory=HttpSettings)

    def validate(self) -> Settings:
        for f in fields(self):
            getattr(self, f.name).validate()
        for address in self.addresses():
            if not (
                self.auth.is_on(address) or is_loopback(address) or self.auth.insecure_allow_unauthenticated
            ):
                raise ConfigError(
                    f"auth: refusing to serve {address} without API keys; turn auth on"
                    " (auth.enabled) or pass --auth-insecure-allow-unauthenticated"
                )
        if "*" in self.http.origins and not self.keys_required():
            raise ConfigError(
                "http.cors_allowed_origins: * without API keys would let every web page a user opens "
                "read and change the memories; list the origins or turn auth on"
            )
        return self

    def addresses(self) -> tuple[str, ...]:
        """Every address the server listens on (gRPC, and HTTP when on)."""
        return (self.server.address, self.http.address) if self.http.address else (self.server.address,)

    def keys_required(self) -> bool:
        """Whether calls need an API key: auth on, or auto and some address is not loopback."""
        return any(self.auth.is_on(address) for address in self.addresses())


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{name}: must be positive, got {value}")


_SECTION_TYPES = {
    "server": ServerSettings,
    "store": StoreSettings,
    "embedder": EmbedderSettings,
    "index": IndexSettings,
    "limits": LimitSettings,
    "lifecycle": LifecycleSettings,
    "cache": CacheSettings,
    "metrics": MetricsSettings,
    "tracing": TracingSettings,
    "auth": AuthSettings,
    "tls": TlsSettings,
    "rate_limit": RateLimitSettings,
    "quota": QuotaSettings,
    "audit": AuditSettings,
    "http": HttpSettings,
}


def setting_names() -> list[tuple[str, str, str, str, Any, str]]:
    """(section, field, env var, flag, default, doc) for every setting."""
    out = []
    for section, cls in _SECTION_TYPES.items():
        for f in fields(cls):
            stem = f.name if section == "server" else f"{section}_{f.name}"
            out.append(
                (
                    section,
                    f.name,
                    f"MNEMO_{stem.upper()}",
                    "--" + stem.replace("_", "-"),
                    f.default,
                    f.metadata.get("doc", ""),
                )
            )
    return out


def _retention(name: str, value: Any) -> tuple[RetentionRule, ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError(f"{name}: expected a JSON list of policies") from None
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{name}: expected a list of policies")
    known = {f.name for f in fields(RetentionRule)}
    rules = []
    for i, item in enumerate(value):
        unknown = set(item) - known
        if unknown:
            raise ConfigError(f"{name}[{i}].{sorted(unknown)[0]}: unknown setting")
        try:
            rules.append(
                RetentionRule(
                    **{
                        k: _coerce(f"{name}[{i}].{k}", type(getattr(RetentionRule, k)).__name__, v)
                        for k, v in item.items()
                    }
                )
            )
        except TypeError as exc:
            raise ConfigError(f"{name}[{i}]: {exc}") from None
    return tuple(rules)


def _coerce(name: str, kind: Any, value: Any) -> Any:
    if kind == "tuple[RetentionRule, ...]":
        return _retention(name, value)
    kind = {"bool": bool, "int": int, "float": float, "str": str, "Path": Path}.get(kind, kind)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        if kind is int and isinstance(value, float):
            raise ValueError(value)
        if kind is Path:
            return Path(str(value)).expanduser()
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected {kind.__name__}, got {value!r}") from None


def load_settings(
    *,
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Builds validated Settings. `overrides` maps "section.field" to values
    (from flags); they win over the environment, which wins over the file."""
    env = os.environ if env is None else env
    values: dict[str, dict[str, Any]] = {s: {} for s in _SECTION_TYPES}
    if config_file is not None:
        try:
            data = tomllib.loads(Path(config_file).read_text())
        except OSError as exc:
            raise ConfigError(f"config: cannot read {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config: {config_file} is not valid TOML: {exc}") from None
        for key, value in data.items():
            if isinstance(value, dict) and key in _SECTION_TYPES and key != "server":
                values[key].update(value)
            elif key == "server" and isinstance(value, dict):
                values["server"].update(value)
            else:
                values["server"][key] = value
    known = {(s, f): None for s, f, *_ in setting_names()}
    for section, name, env_name, _flag, _default, _doc_text in setting_names():
        if env_name in env:
            values[section][name] = env[env_name]
    for dotted, value in (overrides or {}).items():
        section, _, name = dotted.partition(".")
        values[section][name] = value
    built: dict[str, Any] = {}
    for section, cls in _SECTION_TYPES.items():
        kinds = {f.name: f.type for f in fields(cls)}
        kwargs = {}
        for name, value in values[section].items():
            if (section, name) not in known:
                where = name if section == "server" else f"{section}.{name}"
                raise ConfigError(f"{where}: unknown setting")
            label = name if section == "server" else f"{section}.{name}"
            kwargs[name] = _coerce(label, kinds[name], value)
        built[section] = cls(**kwargs)
    return Settings(**built).validate()


def replace(settings: Settings, **sections: Mapping[str, Any]) -> Settings:
    """A copy with some fields of some sections changed (for tests)."""
    changed = {
        name: dataclasses.replace(getattr(settings, name), **values) for name, values in sections.items()
    }
    return dataclasses.replace(settings, **changed).validate()
