"""Prometheus metrics of one App, on their own HTTP port (`metrics.address`).

Each App has its own CollectorRegistry, never the global one, so several
servers can run in one process. Two kinds of metric:

- instruments updated as things happen: RPCs (telemetry_grpc.py counts each
  call as it ends, streams included), stages (`telemetry.span`) and model
  calls (`MeteredModel`, around the model inside the micro-batcher);
- values read at scrape time by `ServerCollector` from the service: caches,
  index shards, memories per tenant, revisions, watch streams, the batcher's
  queue.

`METRICS` names every family with its type and labels; docs/operations.md
lists them and a test keeps the two in step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from mnemo_server.cache.base import LATENCY_BUCKETS_S, STATE_DEGRADED, STATE_DOWN, STATE_OK, LatencySnapshot
from mnemo_server.config import MetricsSettings
from mnemo_server.embed.base import Embedder
from mnemo_server.rerank.base import KINDS as RERANK_FAILURE_KINDS

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    import numpy as np

    from mnemo_server.embed.batching import MicroBatchingEmbedder
    from mnemo_server.service import MemoryService
    from mnemo_server.store.base import TenantCountRow

log = logging.getLogger("mnemo.metrics")

OTHER = "__other__"
RPC_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
STAGE_BUCKETS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    10,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_RPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")
_CACHE_LABELS = ("cache", "backend")
_STORE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class MetricDoc:
    """One exported family as it appears on /metrics (counters with _total)."""

    name: str
    type: str
    labels: tuple[str, ...]
    help: str


METRICS: tuple[MetricDoc, ...] = (
    MetricDoc("grpc_server_started_total", "counter", _RPC_LABELS, "RPCs started."),
    MetricDoc(
        "grpc_server_handled_total",
        "counter",
        (*_RPC_LABELS, "grpc_code"),
        "RPCs finished, by status code (streams when they end).",
    ),
    MetricDoc(
        "grpc_server_handling_seconds",
        "histogram",
        _RPC_LABELS,
        "Time from the start of an RPC to its status (streams: their whole life).",
    ),
    MetricDoc("grpc_server_msg_received_total", "counter", _RPC_LABELS, "Request messages received."),
    MetricDoc("grpc_server_msg_sent_total", "counter", _RPC_LABELS, "Response messages sent."),
    MetricDoc(
        "mnemo_stage_seconds",
        "histogram",
        ("stage",),
        "Time RPCs spend in each stage: embed, cache.search, cache.records, index.search, keyword.search, "
        "rerank, store.read, store.write, publish.",
    ),
    MetricDoc(
        "mnemo_embed_model_seconds",
        "histogram",
        (),
        "Time of one call to the embedding model (one micro-batch).",
    ),
    MetricDoc("mnemo_embed_batch_size", "histogram", (), "Texts per call to the embedding model."),
    MetricDoc("mnemo_embed_errors_total", "counter", (), "Calls to the embedding model that failed."),
    MetricDoc("mnemo_embed_queue_depth", "gauge", (), "Embedding requests waiting for the next micro-batch."),
    MetricDoc("mnemo_rerank_applied_total", "counter", (), "Searches the reranker reordered."),
    MetricDoc(
        "mnemo_rerank_failures_total",
        "counter",
        ("kind",),
        "Reranker calls that failed (unavailable, timeout, malformed); those searches served the "
        "un-reranked order.",
    ),
    MetricDoc(
        "mnemo_build_info", "gauge", ("version", "embedding_model"), "Always 1; labels describe the server."
    ),
    MetricDoc("mnemo_ready", "gauge", (), "1 once the index is loaded and the server is SERVING, else 0."),
    MetricDoc(
        "mnemo_memories",
        "gauge",
        ("tenant",),
        f"Memories stored per tenant (expired but unswept ones included); small tenants summed as {OTHER}.",
    ),
    MetricDoc(
        "mnemo_memory_content_bytes", "gauge", ("tenant",), "UTF-8 bytes of content stored per tenant."
    ),
    MetricDoc(
        "mnemo_index_vectors",
        "gauge",
        ("shard", "kind"),
        f"Vectors per index shard (kind flat, hnsw or ivf); small shards summed per kind as {OTHER}.",
    ),
    MetricDoc("mnemo_index_memory_bytes", "gauge", ("shard", "kind"), "Memory held by each index shard."),
    MetricDoc("mnemo_store_revision", "gauge", (), "The store's latest revision."),
    MetricDoc("mnemo_index_applied_revision", "gauge", (), "The latest revision the index has applied."),
    MetricDoc(
        "mnemo_index_revision_lag",
        "gauge",
        (),
        "Store revision minus applied revision (writes of other processes not yet in this index).",
    ),
    MetricDoc(
        "mnemo_wal_checkpoint_failures_total",
        "counter",
        (),
        "Background WAL checkpoints that failed (a full disk, mostly); the WAL grows meanwhile.",
    ),
    MetricDoc("mnemo_watch_streams", "gauge", (), "WatchMemories streams open."),
    MetricDoc("mnemo_cache_hits_total", "counter", _CACHE_LABELS, "Cache lookups answered (keys)."),
    MetricDoc("mnemo_cache_misses_total", "counter", _CACHE_LABELS, "Cache lookups not answered (keys)."),
    MetricDoc(
        "mnemo_cache_errors_total",
        "counter",
        _CACHE_LABELS,
        "Cache operations served without the cache (backend failures, calls skipped while it is down).",
    ),
    MetricDoc("mnemo_cache_bytes", "gauge", _CACHE_LABELS, "Bytes the cache backend holds."),
    MetricDoc(
        "mnemo_cache_state",
        "gauge",
        (*_CACHE_LABELS, "state"),
        "1 for the backend's current state (ok, degraded, down), 0 for the others.",
    ),
    MetricDoc("mnemo_cache_lookup_seconds", "histogram", _CACHE_LABELS, "Time of one cache lookup."),
    MetricDoc(
        "mnemo_cache_pending_invalidations",
        "gauge",
        (),
        "Invalidations that failed and wait to be retried (the result cache is bypassed meanwhile).",
    ),
    # prometheus_client's ProcessCollector (Linux): the standard process_* families.
    MetricDoc("process_cpu_seconds_total", "counter", (), "User and system CPU time of the server process."),
    MetricDoc("process_resident_memory_bytes", "gauge", (), "Resident memory of the server process."),
    MetricDoc("process_virtual_memory_bytes", "gauge", (), "Virtual memory of the server process."),
    MetricDoc(
        "process_start_time_seconds", "gauge", (), "Start time of the process, in seconds since the epoch."
    ),
    MetricDoc("process_open_fds", "gauge", (), "Open file descriptors."),
    MetricDoc("process_max_fds", "gauge", (), "The open file descriptor limit."),
)

_HELP = {m.name: m.help for m in METRICS}


def _help(name: str) -> str:
    return _HELP.get(name) or _HELP[name + "_total"]


class MethodMetrics:
    """The instruments of one RPC method, resolved once."""

    __slots__ = ("_handled", "_handled_by_code", "_labels", "received", "seconds", "sent", "started")

    def __init__(self, rpc: RpcMetrics, labels: tuple[str, str, str]) -> None:
        self._labels = labels
        self._handled = rpc.handled
        self._handled_by_code: dict[str, Any] = {}
        self.started = rpc.started.labels(*labels)
        self.seconds = rpc.seconds.labels(*labels)
        self.received = rpc.received.labels(*labels)
        self.sent = rpc.sent.labels(*labels)

    def handled(self, code: str) -> Any:
        child = self._handled_by_code.get(code)
        if child is None:
            child = self._handled_by_code[code] = self._handled.labels(*self._labels, code)
        return child


class RpcMetrics:
    """Per-RPC counts and latencies, by method and status code."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "grpc_server_started", _help("grpc_server_started"), _RPC_LABELS, registry=registry
        )
        self.handled = Counter(
            "grpc_server_handled",
            _help("grpc_server_handled"),
            (*_RPC_LABELS, "grpc_code"),
            registry=registry,
        )
        self.seconds = Histogram(
            "grpc_server_handling_seconds",
            _help("grpc_server_handling_seconds"),
            _RPC_LABELS,
            buckets=RPC_BUCKETS_S,
            registry=registry,
        )
        self.received = Counter(
            "grpc_server_msg_received", _help("grpc_server_msg_received"), _RPC_LABELS, registry=registry
        )
        self.sent = Counter(
            "grpc_server_msg_sent", _help("grpc_server_msg_sent"), _RPC_LABELS, registry=registry
        )
        self._methods: dict[tuple[str, str], MethodMetrics] = {}
        self._lock = threading.Lock()

    def method(self, full_method: str, rpc_type: str) -> MethodMetrics:
        """The instruments of "/package.Service/Method"."""
        key = (full_method, rpc_type)
        found = self._methods.get(key)
        if found is None:
            service, _, name = full_method.lstrip("/").rpartition("/")
            with self._lock:
                found = self._methods.setdefault(key, MethodMetrics(self, (rpc_type, service, name)))
        return found


class MeteredModel(Embedder):
    """Times each call to the model and records its batch size.

    Goes between the micro-batcher and the model, where each call is one batch.
    It owns the model: close() closes it."""

    def __init__(
        self, inner: Embedder, *, seconds: Histogram, batch_size: Histogram, errors: Counter
    ) -> None:
        self._inner = inner
        self._seconds = seconds
        self._batch_size = batch_size
        self._errors = errors

    @property
    def model_id(self) -> str:
        return self._inner.model_id

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        try:
            return self._inner.embed(texts)
        except BaseException:
            self._errors.inc()
            raise
        finally:
            self._seconds.observe(time.perf_counter() - started)
            self._batch_size.observe(len(texts))

    def close(self) -> None:
        self._inner.close()


class Metrics:
    """The registry of one App, its instruments, its collector and its endpoint."""

    def __init__(self, cfg: MetricsSettings, *, executor: Executor, version: str) -> None:
        self.cfg = cfg
        self.registry = CollectorRegistry()
        # process_cpu_seconds_total, process_resident_memory_bytes, open fds ... (Linux /proc).
        ProcessCollector(registry=self.registry)
        self.rpc = RpcMetrics(self.registry)
        self._stage = Histogram(
            "mnemo_stage_seconds",
            _help("mnemo_stage_seconds"),
            ("stage",),
            buckets=STAGE_BUCKETS_S,
            registry=self.registry,
        )
        self._stages: dict[str, Any] = {}
        self.model_seconds = Histogram(
            "mnemo_embed_model_seconds",
            _help("mnemo_embed_model_seconds"),
            buckets=STAGE_BUCKETS_S,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "mnemo_embed_batch_size",
            _help("mnemo_embed_batch_size"),
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.embed_errors = Counter("mnemo_embed_errors", _help("mnemo_embed_errors"), registry=self.registry)
        self.collector = ServerCollector(cfg, executor=executor, version=version)
        self.registry.register(self.collector)
        self.port = 0
        self._httpd: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def observe_stage(self, stage: str, seconds: float) -> None:
        child = self._stages.get(stage)
        if child is None:
            child = self._stages.setdefault(stage, self._stage.labels(stage))
        child.observe(seconds)

    def meter_model(self, model: Embedder) -> Embedder:
        return MeteredModel(
            model, seconds=self.model_seconds, batch_size=self.batch_size, errors=self.embed_errors
        )

    def start(self) -> int:
        """Serves /metrics on `metrics.address`; returns the bound port."""
        host, _, port = self.cfg.address.rpartition(":")
        try:
            self._httpd, self._thread = start_http_server(
                int(port), addr=host.strip("[]"), registry=self.registry
            )
        except OSError as exc:
            raise RuntimeError(f"cannot serve metrics on {self.cfg.address}: {exc.strerror or exc}") from exc
        self.port = int(self._httpd.server_port)
        log.info("metrics on http://%s:%d/metrics", host, self.port)
        return self.port

    def close(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


class ServerCollector(Collector):
    """Reads the service's state at scrape time. Store reads run on the App's
    executor (where the store's per-thread readers live), never on the
    scrape's own short-lived thread."""

    def __init__(self, cfg: MetricsSettings, *, executor: Executor, version: str) -> None:
        self._cfg = cfg
        self._executor = executor
        self._version = version
        self.service: MemoryService | None = None
        self.batcher: MicroBatchingEmbedder | None = None
        self.ready: Callable[[], bool] = lambda: False
        self._tenants: list[TenantCountRow] = []
        self._tenants_at = -float("inf")
        self._tenants_lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        service = self.service
        info = GaugeMetricFamily(
            "mnemo_build_info", _help("mnemo_build_info"), labels=("version", "embedding_model")
        )
        info.add_metric((self._version, service.embedder.model_id if service else ""), 1)
        yield info
        yield GaugeMetricFamily("mnemo_ready", _help("mnemo_ready"), value=1 if self.ready() else 0)
        if self.batcher is not None:
            yield GaugeMetricFamily(
                "mnemo_embed_queue_depth", _help("mnemo_embed_queue_depth"), value=self.batcher.stats().queued
            )
        if service is None:
            return
        yield GaugeMetricFamily(
            "mnemo_watch_streams", _help("mnemo_watch_streams"), value=service.feed.watchers
        )
        yield from self._index(service)
        yield from self._rerank(service)
        if service.caches is not None:
            yield from self._caches(service)
        try:
            yield from self._store(service)
        except Exception:
            # A scrape during shutdown, or a store too busy to answer in time.
            log.warning("metrics: could not read the store", exc_info=True)

    def _store(self, service: MemoryService) -> Iterator[Metric]:
        applied = service.applied_revision
        now = time.monotonic()
        recount = now - self._tenants_at >= self._cfg.tenant_interval_s

        def read() -> tuple[int, list[TenantCountRow] | None]:
            return service.store.current_revision(), service.store.tenant_counts() if recount else None

        revision, rows = self._executor.submit(read).result(_STORE_TIMEOUT_S)
        with self._tenants_lock:
            if rows is not None:
                self._tenants, self._tenants_at = rows, now
            tenants = self._tenants
        yield GaugeMetricFamily("mnemo_store_revision", _help("mnemo_store_revision"), value=revision)
        yield GaugeMetricFamily(
            "mnemo_index_applied_revision", _help("mnemo_index_applied_revision"), value=applied
        )
        yield GaugeMetricFamily(
            "mnemo_index_revision_lag", _help("mnemo_index_revision_lag"), value=max(0, revision - applied)
        )
        yield CounterMetricFamily(
            "mnemo_wal_checkpoint_failures",
            _help("mnemo_wal_checkpoint_failures"),
            value=getattr(service.store, "checkpoint_failures", 0),
        )
        count = GaugeMetricFamily("mnemo_memories", _help("mnemo_memories"), labels=("tenant",))
        size = GaugeMetricFamily(
            "mnemo_memory_content_bytes", _help("mnemo_memory_content_bytes"), labels=("tenant",)
        )
        ranked = sorted(tenants, key=lambda r: (-r.memory_count, r.tenant))
        limit = self._cfg.tenant_limit
        for row in ranked[:limit]:
            count.add_metric((row.tenant,), row.memory_count)
            size.add_metric((row.tenant,), row.content_bytes)
        if len(ranked) > limit:
            rest = ranked[limit:]
            count.add_metric((OTHER,), sum(r.memory_count for r in rest))
            size.add_metric((OTHER,), sum(r.content_bytes for r in rest))
        yield count
        yield size

    def _rerank(self, service: MemoryService) -> Iterator[Metric]:
        """The reranker's counters; zeros on a server without one."""
        stage = service.reranker
        applied = stage.applied if stage else 0
        yield CounterMetricFamily("mnemo_rerank_applied", _help("mnemo_rerank_applied"), value=applied)
        failures = CounterMetricFamily(
            "mnemo_rerank_failures", _help("mnemo_rerank_failures"), labels=("kind",)
        )
        for kind in RERANK_FAILURE_KINDS:
            failures.add_metric((kind,), stage.failures.get(kind, 0) if stage else 0)
        yield failures

    def _index(self, service: MemoryService) -> Iterator[Metric]:
        labels = ("shard", "kind")
        vectors = GaugeMetricFamily("mnemo_index_vectors", _help("mnemo_index_vectors"), labels=labels)
        memory = GaugeMetricFamily(
            "mnemo_index_memory_bytes", _help("mnemo_index_memory_bytes"), labels=labels
        )
        shards = sorted(service.index.shards(), key=lambda s: (-s.vector_count, s.shard_id))
        limit = self._cfg.tenant_limit
        for shard in shards[:limit]:
            kind = shard.kind.name.lower()
            vectors.add_metric((shard.shard_id, kind), shard.vector_count)
            memory.add_metric((shard.shard_id, kind), shard.memory_bytes)
        rest: dict[str, list[int]] = {}
        for shard in shards[limit:]:
            totals = rest.setdefault(shard.kind.name.lower(), [0, 0])
            totals[0] += shard.vector_count
            totals[1] += shard.memory_bytes
        for kind, (n, nbytes) in sorted(rest.items()):
            vectors.add_metric((OTHER, kind), n)
            memory.add_metric((OTHER, kind), nbytes)
        yield vectors
        yield memory

    def _caches(self, service: MemoryService) -> Iterator[Metric]:
        assert service.caches is not None
        layers = service.caches.stats()
        hits = CounterMetricFamily("mnemo_cache_hits", _help("mnemo_cache_hits"), labels=_CACHE_LABELS)
        misses = CounterMetricFamily("mnemo_cache_misses", _help("mnemo_cache_misses"), labels=_CACHE_LABELS)
        errors = CounterMetricFamily("mnemo_cache_errors", _help("mnemo_cache_errors"), labels=_CACHE_LABELS)
        size = GaugeMetricFamily("mnemo_cache_bytes", _help("mnemo_cache_bytes"), labels=_CACHE_LABELS)
        state = GaugeMetricFamily(
            "mnemo_cache_state", _help("mnemo_cache_state"), labels=(*_CACHE_LABELS, "state")
        )
        latency = HistogramMetricFamily(
            "mnemo_cache_lookup_seconds", _help("mnemo_cache_lookup_seconds"), labels=_CACHE_LABELS
        )
        for layer in layers:
            key = (layer.name, layer.backend)
            hits.add_metric(key, layer.hits)
            misses.add_metric(key, layer.misses)
            errors.add_metric(key, layer.errors)
            size.add_metric(key, layer.bytes)
            for name in (STATE_OK, STATE_DEGRADED, STATE_DOWN):
                state.add_metric((*key, name), 1 if layer.state == name else 0)
            latency.add_metric(key, buckets=_buckets(layer.latency), sum_value=layer.latency.sum_s)
        yield from (hits, misses, errors, size, state, latency)
        yield GaugeMetricFamily(
            "mnemo_cache_pending_invalidations",
            _help("mnemo_cache_pending_invalidations"),
            value=service.caches.pending_invalidations,
        )


def _buckets(snapshot: LatencySnapshot) -> list[tuple[str, float]]:
    """Cumulative (le, count) pairs, +Inf last, from a fixed-bucket snapshot."""
    out = []
    seen = 0
    for bound, n in zip((*LATENCY_BUCKETS_S, float("inf")), snapshot.counts, strict=True):
        seen += n
        out.append(("+Inf" if bound == float("inf") else str(bound), float(seen)))
    return out
