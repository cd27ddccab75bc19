"""The composition root: `App(settings)` is the one place that picks
implementations and wires them together, then runs the gRPC server.

Lifecycle: the port opens at once with health NOT_SERVING (MemoryService
calls answer UNAVAILABLE / SERVER_NOT_READY); the store and index load in a
worker thread; health turns SERVING. On SIGTERM, `drain` first: health
NOT_SERVING while calls are still served for `shutdown_drain_s`. Then stop:
new calls are refused, in-flight calls get `shutdown_grace_s` to finish, the
index is snapshotted, and everything is closed.

The gRPC server's own parts (options, services, TLS, health) are in
api/server.py; the loops a loaded server runs, and their stop order, in
runtime.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1._async import HealthServicer

from mnemo_server.api.admin import AdminServicer
from mnemo_server.api.envelope import Gate
from mnemo_server.api.extraction import ExtractionServicer
from mnemo_server.api.interceptors import build_security
from mnemo_server.api.memory import MemoryServicer
from mnemo_server.api.server import MAX_SEND_BYTES, SERVICES, add_services, bind, build_server, set_health
from mnemo_server.cache import Caches
from mnemo_server.config import Settings
from mnemo_server.embed.base import Embedder
from mnemo_server.fleet import worker_index
from mnemo_server.fleet.counters import KeyGeneration, RevisionSignal, SharedCounters
from mnemo_server.fleet.leader import AlwaysLeader, FileLeaderLock, FleetLock
from mnemo_server.index.base import VectorIndex
from mnemo_server.rerank import Reranker, RerankStage
from mnemo_server.runtime import Runtime, close_components
from mnemo_server.service import SERVER_VERSION, MemoryService
from mnemo_server.storage import DataDirectoryWatch
from mnemo_server.store.base import KeyStore, RecordStore
from mnemo_server.telemetry import ContextExecutor
from mnemo_server.telemetry_grpc import Telemetry

if TYPE_CHECKING:
    from mnemo_server.api.web import WebServer
    from mnemo_server.extraction.job_store import JobStore
    from mnemo_server.fleet.pg_signal import PgRevisionSignal

log = logging.getLogger("mnemo.app")


def build_embedder(
    settings: Settings, *, wrap_model: Callable[[Embedder], Embedder] | None = None
) -> Embedder:
    """The configured model behind micro-batching (the embedding cache is
    added over it once the caches exist); `wrap_model` goes between the two
    (metrics time each model call there)."""
    from mnemo_server.embed.batching import MicroBatchingEmbedder

    cfg = settings.embedder
    inner: Embedder
    if cfg.provider == "http":
        from mnemo_server.embed.http import OpenAIHttpEmbedder

        inner = OpenAIHttpEmbedder(
            base_url=cfg.url,
            model=cfg.model,
            api_key=cfg.api_key or None,
            dimension=cfg.dimension or None,
            timeout_s=cfg.timeout_s,
        )
    else:
        from mnemo_server.embed.local import SentenceTransformerEmbedder

        inner = SentenceTransformerEmbedder(model=cfg.model or None, threads=cfg.torch_threads)
    if wrap_model is not None:
        inner = wrap_model(inner)
    return MicroBatchingEmbedder(inner, max_batch=cfg.batch_size, max_wait_ms=cfg.max_wait_ms)


def build_caches(settings: Settings, store: RecordStore) -> Caches | None:
    """Redis when configured (shared by replicas), else in-process caches."""
    from mnemo_server.cache import Caches, LocalCache

    cfg = settings.cache
    ttls: dict[str, Any] = {
        "embedding_ttl_s": cfg.embedding_ttl_s,
        "search_ttl_s": cfg.search_ttl_s,
        "record_ttl_s": cfg.record_ttl_s,
    }
    if settings.server.redis_url:
        from mnemo_server.cache.redis import RedisCache

        namespace = cfg.namespace or f"mnemo-{_store_id(store)}"
        redis = RedisCache(
            settings.server.redis_url, namespace=namespace, op_timeout_s=cfg.op_timeout_ms / 1000
        )
        return Caches.over(redis, **ttls)
    if not cfg.enabled and not settings.embedder.cache_bytes:
        return None
    embeddings = LocalCache(max_bytes=settings.embedder.cache_bytes or 1)
    return Caches.over(LocalCache(max_bytes=cfg.local_bytes), embedding_cache=embeddings, **ttls)


def _store_id(store: RecordStore) -> str:
    """A random id kept in the store, so two deployments sharing a Redis
    never read each other's entries."""
    found = store.get_meta("store_id")
    if found is None:
        found = uuid.uuid4().hex[:16]
        store.set_meta("store_id", found)
    return found


def build_store(settings: Settings, *, guard: Callable[[], None] | None = None) -> RecordStore:
    """PostgreSQL when store.url is set, else the SQLite file in data_dir."""
    if settings.store.url:
        from mnemo_server.store.pg import PostgresStore

        return PostgresStore(settings.store.url, pool_size=settings.store.pool_size)
    from mnemo_server.store.sqlite import SqliteStore

    return SqliteStore(
        settings.server.data_dir / "mnemo.db", synchronous=settings.store.synchronous.upper(), guard=guard
    )


def build_key_store(settings: Settings, *, guard: Callable[[], None] | None = None) -> KeyStore:
    """API keys, in the store's file (open the store first); `guard` as for
    build_store."""
    if settings.store.url:
        from mnemo_server.store.pg_keys import PgKeyStore

        return PgKeyStore(settings.store.url)
    from mnemo_server.store.sqlite_keys import SqliteKeyStore

    return SqliteKeyStore(settings.server.data_dir / "mnemo.db", guard=guard)


def build_index(settings: Settings, dimension: int) -> VectorIndex:
    from mnemo_server.index.graph_builder import GraphBuilder
    from mnemo_server.index.sharded import ShardedFaissIndex

    cfg = settings.index
    return ShardedFaissIndex(
        dimension,
        shard_capacity=cfg.shard_capacity,
        ann_threshold=cfg.ann_threshold,
        exact_threshold=cfg.exact_threshold,
        ef_search=cfg.ef_search,
        # Graphs are built behind the writes; new rows are searched exactly
        # until they are in (a write is searchable once acknowledged).
        builder=GraphBuilder(),
    )


def build_reranker(settings: Settings) -> RerankStage | None:
    """The rerank stage of `rerank.url` or `rerank.model_path`; None when neither is set."""
    cfg = settings.rerank
    reranker: Reranker
    if cfg.url:
        from mnemo_server.rerank.http import HttpReranker

        reranker = HttpReranker(cfg.url, timeout_s=cfg.timeout_s, api_key=cfg.api_key())
    elif cfg.model_path:
        from mnemo_server.rerank.local import LocalReranker

        reranker = LocalReranker(cfg.model_path)
    else:
        return None
    log.info(
        "rerank: %s, top %d candidates, %s",
        reranker.name,
        cfg.top_n,
        "on by default" if cfg.by_default else "on request",
    )
    return RerankStage(
        reranker, top_n=cfg.top_n, by_default=cfg.by_default, log_interval_s=cfg.log_interval_s
    )


def _worker_init() -> None:
    # OpenMP's thread count is per OS thread: small searches in many workers
    # must not each spawn a team of threads on a 2-core machine.
    import faiss

    faiss.omp_set_num_threads(1)


class App:
    """A running Mnemo server."""

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> None:
        self.settings = settings
        self._given_embedder = embedder
        self._extra_interceptors = tuple(interceptors)
        self.gate = Gate()
        self.health = HealthServicer()
        # ContextExecutor: the service's stage spans find their RPC's span.
        self.executor = ContextExecutor(
            max_workers=settings.server.threads, thread_name_prefix="mnemo-worker", initializer=_worker_init
        )
        self.telemetry = Telemetry(settings, executor=self.executor, version=SERVER_VERSION)
        self.security = build_security(settings, self.executor)
        self.server: grpc.aio.Server | None = None
        self.service: MemoryService | None = None
        self.port = 0
        #: The HTTP side (http.address), and its port once started.
        self.web: WebServer | None = None
        self.http_port = 0
        self._tasks: list[asyncio.Task[Any]] = []
        self._loaded = asyncio.Event()
        self._components: list[Any] = []
        self._servicers: list[MemoryServicer | AdminServicer] = []
        self.storage: DataDirectoryWatch | None = None
        #: The background loops, once the service has loaded.
        self.runtime: Runtime | None = None
        self.extraction = ExtractionServicer(self.executor, self.gate, settings)
        #: This process's number when it is one worker of a fleet (--workers N).
        self.worker = worker_index()
        self._counters: SharedCounters | None = None
        self.lock: FleetLock = AlwaysLeader()

    async def start(self) -> int:
        """Opens the port (health NOT_SERVING) and starts loading; returns the
        bound port. Await `ready()` for SERVING."""
        cfg = self.settings.server
        os.makedirs(cfg.data_dir, exist_ok=True)
        if self.worker is not None:
            fleet_dir = cfg.data_dir / "fleet"
            self._counters = SharedCounters(fleet_dir / "counters")
            self.lock = FileLeaderLock(fleet_dir / "leader.lock")
            self.security.keys.generation = KeyGeneration(self._counters)
        if self.settings.store.url:
            from mnemo_server.fleet.pg_leader import PgAdvisoryLeaderLock  # psycopg: an extra

            # Replicas on other hosts share the database, not the data directory.
            self.lock = PgAdvisoryLeaderLock(self.settings.store.url)
        self.telemetry.start()
        self.server = build_server(
            self.settings,
            # Telemetry first: it sees every call as the client does.
            (*self.telemetry.interceptors, *self._extra_interceptors, self.security),
            reuse_port=self.worker is not None,
        )
        await set_health(self.health, serving=False)
        # Servicers must exist before the server starts; they get the service
        # once it has loaded, and until then the gate answers SERVER_NOT_READY.
        memory = MemoryServicer(None, self.executor, self.gate)
        admin = AdminServicer(None, self.executor, self.gate)
        admin.api_keys = self.security.keys
        self._servicers = [memory, admin]
        add_services(self.server, memory, admin, self.extraction, self.health)
        self.port = bind(self.server, self.settings)
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {cfg.address}")
        if self.settings.http.address:
            from mnemo_server.api.web import WebServer  # uvicorn and connectrpc only when on

            self.web = WebServer(
                self.settings,
                reuse_port=self.worker is not None,
                secret=self.security.forward_secret,
                healthy=lambda: self.gate.ready and not self.gate.draining,
                version=SERVER_VERSION,
                metrics_registry=self.telemetry.metrics.registry if self.telemetry.metrics else None,
            )
            self.web.attach(self.server)
        await self.server.start()
        if self.web is not None:
            self.http_port = await self.web.start(services=list(SERVICES), max_send_bytes=MAX_SEND_BYTES)
        log.info("listening on %s (port %d); loading", cfg.address, self.port)
        self._tasks.append(asyncio.create_task(self._load()))
        return self.port

    async def _load(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            service = await loop.run_in_executor(self.executor, self._build_service)
        except Exception:
            log.exception("start-up failed")
            raise
        assert self.server is not None
        self.service = service
        for servicer in self._servicers:
            servicer.service = service
        await self._start_extraction(service)
        self.gate.ready = True
        await set_health(self.health, serving=True)
        self.runtime = Runtime(
            self.settings,
            self.executor,
            service,
            self.storage,
            on_storage_lost=self._storage_lost,
            lock=self.lock,
            on_lead=self._on_lead if self.worker is not None else None,
        )
        self.runtime.start()
        self._loaded.set()
        log.info("serving")

    async def _on_lead(self) -> None:
        """This worker now leads the fleet: it resumes the unfinished extraction jobs."""
        if self.extraction.runner is not None:
            await self.extraction.runner.resume()

    async def _start_extraction(self, service: MemoryService) -> None:
        """Opens the job table, and runs jobs when an LLM is configured (docs/extraction.md)."""
        from mnemo_server.extraction.runner import build_runner

        loop = asyncio.get_running_loop()
        jobs = await loop.run_in_executor(self.executor, self._open_jobs)
        self._components.append(jobs)
        self.extraction.service, self.extraction.jobs = service, jobs
        if self.settings.extraction.enabled:
            runner = await loop.run_in_executor(
                self.executor,
                lambda: build_runner(
                    self.settings.extraction, service=service, jobs=jobs, executor=self.executor
                ),
            )
            self.extraction.runner = runner
            await runner.start(resume=self.worker is None)  # in a fleet the leader resumes (_on_lead)

    def _open_jobs(self) -> JobStore:
        """The job table: the PostgreSQL store's (shared by every server on
        it) when store.url is set, else the store's SQLite file."""
        if self.settings.store.url:
            from mnemo_server.extraction.pg_jobs import PgJobStore

            return PgJobStore(self.settings.store.url)
        from mnemo_server.extraction.jobs import SqliteJobStore

        return SqliteJobStore(
            self.settings.server.data_dir / "mnemo.db",
            guard=self.storage.check if self.storage is not None else None,
            synchronous=self.settings.store.synchronous.upper(),
        )

    def _build_service(self) -> MemoryService:
        from mnemo_server.embed.cached import CachingEmbedder

        base = self._given_embedder or build_embedder(self.settings, wrap_model=self.telemetry.wrap_model)
        watch = DataDirectoryWatch(self.settings.server.data_dir)
        store = build_store(self.settings, guard=watch.check)
        if not self.settings.store.url:
            watch.track(self.settings.server.data_dir / "mnemo.db")
        self.storage = watch
        self._open_security(store, guard=watch.check)
        caches = build_caches(self.settings, store)
        embedder = base
        if caches is not None and (self.settings.embedder.cache_bytes or self.settings.server.redis_url):
            embedder = CachingEmbedder(base, caches.embeddings)
        index = build_index(self.settings, embedder.dimension)
        reranker = build_reranker(self.settings)
        # A given embedder belongs to the caller, who closes it.
        # The index first: its graph builder stops before the store closes.
        self._components = [index, store] if self._given_embedder else [index, base, store]
        if caches is not None:
            self._components.append(caches)
        if reranker is not None:
            self._components.append(reranker)
        service = MemoryService(
            store=store,
            index=index,
            embedder=embedder,
            settings=self.settings,
            snapshot_dir=self.settings.server.data_dir / "index",
            caches=caches if self.settings.cache.enabled or self.settings.server.redis_url else None,
            inline_cache_hits=not self.settings.server.redis_url,
            storage_guard=watch.check,
            revision_signal=self._revision_signal(store),
            reranker=reranker,
        )
        service.leads = self.lock.try_lead
        service.load()
        self.telemetry.attach(
            service,
            embedder=base,
            ready=lambda: self.gate.ready and not self.gate.draining and watch.lost is None,
        )
        return service

    def _revision_signal(self, store: RecordStore) -> RevisionSignal | PgRevisionSignal | None:
        """How this process learns of other processes' commits: PostgreSQL
        notifications for a PostgreSQL store (replicas anywhere), the shared
        counter file for workers on one data directory, else nothing."""
        if self.settings.store.url:
            from mnemo_server.fleet.pg_signal import PgKeyGeneration, PgRevisionSignal  # psycopg: an extra

            signal = PgRevisionSignal(self.settings.store.url, fallback=store.current_revision).start()
            self._components.append(signal)
            # A revocation through any replica empties every replica's key cache.
            self.security.keys.generation = PgKeyGeneration(signal)
            return signal
        return RevisionSignal(self._counters) if self._counters is not None else None

    def _open_security(self, store: RecordStore, *, guard: Callable[[], None]) -> None:
        """Opens the key store and shares rate limits through Redis when configured."""
        self.security.keys.store = build_key_store(self.settings, guard=guard)
        if self.settings.server.redis_url:
            self.security.limiter.use_redis(
                self.settings.server.redis_url,
                namespace=self.settings.cache.namespace or f"mnemo-{_store_id(store)}",
                timeout_s=max(self.settings.cache.op_timeout_ms / 1000, 0.05),
            )
        tls = self.settings.tls
        mode = "mTLS" if tls.client_ca_file else "TLS" if tls.enabled else "plaintext"
        if self.security.keys.enabled:
            log.info("%s; API keys required (system tenant %r)", mode, self.settings.auth.system_tenant)
        else:
            log.warning("%s; authentication is OFF: every caller is an admin of tenant 'default'", mode)

    async def ready(self, timeout: float | None = None) -> None:
        loader = self._tasks[0]
        done, _ = await asyncio.wait(
            {loader, asyncio.create_task(self._loaded.wait())},
            timeout=timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if loader in done and loader.exception() is not None:
            raise loader.exception()  # type: ignore[misc]
        if not self._loaded.is_set():
            raise TimeoutError("server did not become ready")

    async def _storage_lost(self) -> None:
        """Health NOT_SERVING for good: the data directory is gone."""
        await set_health(self.health, serving=False)

    async def drain(self, seconds: float, cut_short: asyncio.Event) -> None:
        """Turns health NOT_SERVING but keeps serving for `seconds` (or until
        `cut_short` is set), so probes and load balancers see it before `stop`."""
        log.info("draining: health NOT_SERVING, still serving for %.1f s", seconds)
        await self.health.enter_graceful_shutdown()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(cut_short.wait(), seconds)

    async def stop(self, grace: float | None = None) -> None:
        """Drains and shuts down; safe to call once."""
        grace = self.settings.server.shutdown_grace_s if grace is None else grace
        self.gate.draining = True
        await self.health.enter_graceful_shutdown()
        if self.service is not None:
            # Ends watch streams now so they do not hold the grace period.
            self.service.feed.close()
        if self.server is not None:
            # The HTTP side's open calls run on the gRPC server: both drain at once.
            web = self.web.stop() if self.web is not None else asyncio.sleep(0)
            await asyncio.gather(self.server.stop(grace), web)
        if self.extraction.runner is not None:
            await self.extraction.runner.stop()  # unfinished jobs run again at the next start
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        if self.runtime is not None:
            await self.runtime.stop_loops()
            await self.runtime.final_flush()
            await self.runtime.final_snapshot()
        await close_components(self.executor, self._components)
        self.lock.release()
        if self._counters is not None:
            self._counters.close()
        with contextlib.suppress(Exception):
            await self.security.aclose()
        self.telemetry.close()
        self.executor.shutdown(wait=True, cancel_futures=True)
        log.info("stopped")
