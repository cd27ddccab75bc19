"""The use-cases of MemoryService and AdminService.

Depends only on the seams (RecordStore, VectorIndex, Embedder) and the
domain; knows nothing of gRPC. Every method is blocking: the API layer calls
it from a worker thread.

Writes: embed outside any lock -> one store transaction (record, history,
revision log) -> index apply, both under the service's write lock so the index
sees changes in revision order -> acknowledge. The store is the source of
truth: a crash between commit and index apply is repaired at start-up by
replaying the revision log over the last index snapshot.
"""

from __future__ import annotations

import contextvars
import dataclasses
import enum
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mnemo_server import filters, fusion, storage, telemetry, validation
from mnemo_server.cache import CachedHit, Caches, SearchLookup, search_fingerprint
from mnemo_server.config import Settings
from mnemo_server.embed.base import Embedder
from mnemo_server.embed.vectors import check_vector
from mnemo_server.errors import (
    AbortedError,
    AlreadyExistsError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    MnemoError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    invalid,
)
from mnemo_server.expiry import ExpiryTracker
from mnemo_server.feed import ChangeFeed, FeedEvent
from mnemo_server.index import snapshot_check
from mnemo_server.index.base import IndexEntry, IndexKind, IndexQuery, VectorIndex
from mnemo_server.models import (
    Change,
    ChangeType,
    Link,
    Memory,
    MemoryKind,
    Principal,
    Scope,
    SearchHit,
    Vector,
    content_hash,
    now_us,
)
from mnemo_server.pagination import decode_token, encode_token, fingerprint
from mnemo_server.store.base import (
    ORDER_FIELDS,
    KeywordHit,
    OrderTerm,
    RecordStore,
    ScopeCountRow,
    StoredOutcome,
    VersionRecord,
    WriteTxn,
)

log = logging.getLogger("mnemo.service")

SERVER_VERSION = "0.1.0"

#: Threads for the keyword halves of searches (see _compute); idle ones cost nothing.
_KEYWORD_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mnemo-keyword")
CLIENT_MODEL = "client"
UPDATABLE = ("content", "kind", "tags", "metadata", "embedding", "expire_time", "links", "pinned")
IMMUTABLE = ("id", "user_id", "agent_id", "run_id")


class DedupMode(enum.Enum):
    NONE = "none"
    EXACT = "exact"
    SEMANTIC = "semantic"


@dataclass(frozen=True, slots=True)
class DedupPolicy:
    mode: DedupMode = DedupMode.NONE
    threshold: float = 0.9
    merge: bool = False


@dataclass(frozen=True, slots=True)
class MemoryDraft:
    """A memory as a client sent it, before validation."""

    id: str = ""
    scope: Scope = Scope()
    content: str = ""
    kind: MemoryKind = MemoryKind.EPISODIC
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    links: tuple[Link, ...] = ()
    pinned: bool = False
    embedding: Sequence[float] | Vector | None = None
    embedding_model: str = ""
    expire_time_us: int | None = None
    ttl_us: int | None = None
    # Set only by import, which keeps an export's original times.
    create_time_us: int | None = None
    update_time_us: int | None = None
    last_retrieve_time_us: int | None = None


@dataclass(frozen=True, slots=True)
class WriteOp:
    """One create, update or delete; `field` is its place in the request."""

    kind: str  # "create" | "update" | "delete"
    draft: MemoryDraft = MemoryDraft()
    memory_id: str = ""
    update_mask: tuple[str, ...] = ()
    etag: str = ""
    request_id: str = ""
    dedup: DedupPolicy = DedupPolicy()
    field: str = ""
    #: The draft's id was assigned by the server, not chosen by the caller.
    id_assigned: bool = False


@dataclass(slots=True)
class WriteOutcome:
    kind: str
    memory: Memory | None = None
    deduplicated: bool = False
    similarity: float = 0.0
    revision: int = 0
    error: MnemoError | None = None


class SearchMode(enum.Enum):
    """How a search finds and ranks memories (docs/retrieval.md)."""

    VECTOR = "vector"
    KEYWORD = "keyword"
    HYBRID = "hybrid"


@dataclass(frozen=True, slots=True)
class SearchQuery:
    text: str = ""
    vector: Sequence[float] | Vector | None = None
    scope: Scope = Scope()
    filter: str = ""
    top_k: int = 0
    min_score: float | None = None
    include_embedding: bool = False
    field: str = ""
    mode: SearchMode = SearchMode.VECTOR
    rrf_k: int | None = None
    #: Give each hit its HitExplanation; never served from or stored in the result cache.
    explain: bool = False


@dataclass(frozen=True, slots=True)
class ForgetResult:
    deleted_count: int
    memory_ids: list[str]
    revision: int


@dataclass(slots=True)
class ImportReport:
    imported: int = 0
    skipped: int = 0
    reembedded: int = 0
    failed: int = 0
    failures: list[tuple[int, str, MnemoError]] = field(default_factory=list)
    #: Ids this import wrote: the only memories whose links it may restore.
    written: set[str] = field(default_factory=set)

    def fail(self, position: int, memory_id: str, error: MnemoError) -> None:
        self.failed += 1
        if len(self.failures) < 1000:
            self.failures.append((position, memory_id, error))

    def merge(self, other: ImportReport) -> None:
        self.imported += other.imported
        self.skipped += other.skipped
        self.reembedded += other.reembedded
        self.failed += other.failed
        self.written |= other.written
        self.failures.extend(other.failures[: max(0, 1000 - len(self.failures))])


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[SearchHit]
    embedding_model: str


@dataclass(frozen=True, slots=True)
class ShardStats:
    shard_id: str
    kind: IndexKind
    vector_count: int
    dimension: int
    memory_bytes: int
    snapshot_revision: int
    kind_reason: str


@dataclass(frozen=True, slots=True)
class TenantStats:
    tenant: str
    memory_count: int
    content_bytes: int
    scopes: list[ScopeCountRow]


@dataclass(frozen=True, slots=True)
class Stats:
    tenants: list[TenantStats]
    shards: list[ShardStats]
    caches: list[dict[str, Any]]
    revision: int
    oldest_revision: int
    embedding_model: str
    dimension: int
    retention: tuple[Any, ...] = ()
    server_version: str = SERVER_VERSION


@dataclass(frozen=True, slots=True)
class Inconsistency:
    kind: str  # "missing", "orphan", "stale"
    memory_id: str
    tenant: str


@dataclass(frozen=True, slots=True)
class ConsistencyReport:
    store_count: int
    index_count: int
    inconsistencies: list[Inconsistency]
    repaired: int


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    revision: int
    time_us: int
    bytes: int
    shard_count: int


class _Rollback(Exception):
    """Raised inside an atomic batch to undo it after recording the failure."""


class MemoryService:
    """Use-cases over one store, one index and one embedder."""

    def __init__(
        self,
        *,
        store: RecordStore,
        index: VectorIndex,
        embedder: Embedder,
        settings: Settings,
        snapshot_dir: Path,
        clock: Callable[[], int] = now_us,
        caches: Caches | None = None,
        inline_cache_hits: bool = False,
        storage_guard: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self.limits = settings.limits
        self.snapshot_dir = snapshot_dir
        self.clock = clock
        self.caches = caches
        self.storage_guard = storage_guard
        # True when the caches live in this process: a hit costs microseconds,
        # less than handing the call to a worker thread.
        self.inline_cache_hits = inline_cache_hits and caches is not None
        self._applied_revision = 0
        self._write_lock = threading.RLock()
        self._expiry = ExpiryTracker()
        self._snapshot_revision = 0
        self._listeners: list[Callable[[list[FeedEvent]], None]] = []
        self._idempotency_window_us = int(settings.lifecycle.idempotency_window_s * 1e6)
        self.feed = ChangeFeed(capacity=settings.lifecycle.watch_buffer)
        self._retrieved: set[int] = set()
        self._retrieved_lock = threading.Lock()

    # -- start-up ----------------------------------------------------------------

    def load(self) -> None:
        """Brings the index up to date with the store: the last snapshot plus
        a replay of the revision log, or a rebuild when there is no usable
        snapshot. Also loads expiry deadlines."""
        started = time.monotonic()
        self._check_model()
        revision = self.index.load(self.snapshot_dir)
        if revision is not None:
            problem = snapshot_check.revision_problem(revision, self.store)
            if problem is None:
                replayed = self._replay(revision)
                problem = snapshot_check.content_problem(revision, self.index, self.store)
            if problem is not None:
                log.warning("index snapshot in %s not usable: %s", self.snapshot_dir, problem)
                self.index.remove(self.index.keys())
                revision = None
        if revision is None:
            log.info("no usable index snapshot in %s; rebuilding from the store", self.snapshot_dir)
            self._rebuild_index()
        else:
            log.info("index snapshot at revision %d loaded; replayed %d changes", revision, replayed)
            self._snapshot_revision = revision
        self.feed.set_latest(self.store.current_revision())
        self._applied_revision = self.store.current_revision()
        for memory in self.store.expired(2**62, limit=10**9):
            if memory.expire_time_us is not None:
                self._expiry.set(memory.key, memory.expire_time_us)
        log.info(
            "ready: %d memories, revision %d, %.2f s",
            self.index.count(),
            self.store.current_revision(),
            time.monotonic() - started,
        )

    def _check_model(self) -> None:
        stored = self.store.get_meta("dimension")
        if stored is not None and int(stored) != self.embedder.dimension and self.store.count() > 0:
            raise RuntimeError(
                f"the store holds {stored}-dimension embeddings but model "
                f"{self.embedder.model_id!r} makes {self.embedder.dimension}; "
                "use the original model or a new data dir"
            )
        # Written only when they change: a start on a full disk must not need to write.
        for name, value in (
            ("dimension", str(self.embedder.dimension)),
            ("embedding_model", self.embedder.model_id),
        ):
            if self.store.get_meta(name) != value:
                self.store.set_meta(name, value)

    def _rebuild_index(self) -> None:
        total = self.store.count()
        done = 0
        last_log = time.monotonic()
        revision = self.store.current_revision()
        for rows in self.store.iter_vectors():
            self.index.upsert([IndexEntry(r.key, r.tenant, r.scope, r.vector) for r in rows])
            done += len(rows)
            if time.monotonic() - last_log > 2:
                log.info("rebuilding index: %d of %d memories", done, total)
                last_log = time.monotonic()
        log.info("index rebuilt: %d memories", done)
        if self.caches is not None:
            self.caches.invalidate_tenants(t.tenant for t in self.store.tenant_counts())
        if done:
            try:
                self.snapshot_at(revision)
            except Exception as exc:
                # Derived data: serving does not need it, and a full disk must not stop a start.
                log.warning("could not write the rebuilt index's snapshot (%s); serving without it", exc)

    def _replay(self, revision: int) -> int:
        replayed = 0
        while True:
            changes = self.store.changes_since(revision, limit=10000)
            if not changes:
                return replayed
            keys = sorted({c.key for c in changes})
            rows = self.store.vectors_by_keys(keys)
            present = {r.key for r in rows}
            self.index.remove([k for k in keys if k not in present])
            self.index.upsert([IndexEntry(r.key, r.tenant, r.scope, r.vector) for r in rows])
            if self.caches is not None:
                # Another process (or a crash) wrote these without this
                # process's caches seeing them.
                self.caches.invalidate_changes(changes)
            replayed += len(changes)
            revision = changes[-1].revision

    @property
    def applied_revision(self) -> int:
        """The latest revision the index has applied (the store's may be ahead:
        writes of other processes not yet caught up)."""
        return self._applied_revision

    # -- snapshots ---------------------------------------------------------------

    def snapshot(self) -> SnapshotInfo:
        self._catch_up()
        with self._write_lock:
            # What this index holds, which may trail writes of other processes.
            return self.snapshot_at(self._applied_revision)

    def snapshot_at(self, revision: int) -> SnapshotInfo:
        if self.storage_guard is not None:
            self.storage_guard()  # not into a data directory that is gone
        with storage.disk_full_as_error("the index snapshot"):
            written = self.index.save(self.snapshot_dir, revision)
        self._snapshot_revision = revision
        return SnapshotInfo(revision, self.clock(), written, len(self.index.shards()))

    # -- reads -------------------------------------------------------------------

    def confine(self, principal: Principal, scope: Scope) -> None:
        """Refuses a call over `scope` when the caller's key is restricted to
        users or agents the scope does not name (SCOPE_FORBIDDEN). Calls by id
        answer MEMORY_NOT_FOUND instead, so they do not reveal what exists."""
        if principal.restricted and not principal.allows(scope):
            raise PermissionDeniedError(
                "this key may only reach its own users and agents: name one of them in the scope",
                reason="SCOPE_FORBIDDEN",
            )

    def get(self, principal: Principal, memory_id: str, *, with_embedding: bool = False) -> Memory:
        validation.check_id(memory_id, "id")
        now = self.clock()
        memory: Memory | None
        if self.caches is None:
            memory = self.store.get(principal.tenant, memory_id, with_embedding=with_embedding)
        else:
            lookup = self.caches.records.lookup(principal.tenant, [memory_id], with_embedding=with_embedding)
            memory = lookup.found.get(memory_id)
            if memory is None:
                memory = self.store.get(principal.tenant, memory_id, with_embedding=with_embedding)
                if memory is not None:
                    self.caches.records.fill(lookup, [memory], now_us=now)
        if memory is None or memory.is_expired(now) or not principal.allows(memory.scope):
            raise NotFoundError(f"memory {memory_id!r} not found", metadata={"id": memory_id})
        return memory

    def list_memories(
        self,
        principal: Principal,
        *,
        scope: Scope,
        filter_text: str,
        order_by: str,
        page_size: int,
        page_token: str,
        with_embedding: bool = False,
    ) -> tuple[list[Memory], str]:
        self.confine(principal, scope)
        expr = filters.parse_filter(filter_text)
        order = parse_order_by(order_by)
        size = validation.check_page_size(page_size, "page_size", self.limits)
        query = fingerprint(
            "list",
            principal.tenant,
            scope,
            filters.format_filter(expr) if expr else "",
            [(t.field, t.descending) for t in order],
        )
        cursor = decode_token(page_token, query, [*(_SORT_TYPES[t.field] for t in order), str])
        rows = self.store.list(
            principal.tenant,
            scope=scope,
            filter=expr,
            order=order,
            after=tuple(cursor) if cursor is not None else None,
            limit=size + 1,
            now_us=self.clock(),
            with_embedding=with_embedding,
        )
        next_token = ""
        if len(rows) > size:
            rows = rows[:size]
            next_token = encode_token(query, _sort_key(rows[-1], order))
        return rows, next_token

    def history(
        self, principal: Principal, memory_id: str, *, page_size: int, page_token: str
    ) -> tuple[list[VersionRecord], str]:
        validation.check_id(memory_id, "id")
        size = validation.check_page_size(page_size, "page_size", self.limits)
        query = fingerprint("history", principal.tenant, memory_id)
        cursor = decode_token(page_token, query, [int])
        before = int(cursor[0]) if cursor else None
        records = self.store.history(principal.tenant, memory_id, before_version=before, limit=size + 1)
        shown = (records[0].after or records[0].before) if records else None
        if (not records and before is None) or (
            principal.restricted and (shown is None or not principal.allows(shown.scope))
        ):
            raise NotFoundError(f"memory {memory_id!r} not found", metadata={"id": memory_id})
        next_token = ""
        if len(records) > size:
            records = records[:size]
            next_token = encode_token(query, [records[-1].version])
        return records, next_token

    # -- search ------------------------------------------------------------------

    def search(
        self,
        principal: Principal,
        queries: Sequence[SearchQuery],
        *,
        lookups_done: Sequence[SearchLookup] | None = None,
    ) -> list[SearchResult]:
        """Runs queries with one result-cache lookup, one embedding call for
        the texts that missed, one index call and one hydration.
        `lookups_done` are result-cache misses `cached_lookup` already took."""
        for q in queries:
            self.confine(principal, q.scope)
        now = self.clock()
        checked = [self._check_query(q) for q in queries]
        self._catch_up()
        results: list[SearchResult | None] = [None] * len(queries)
        lookups: list[SearchLookup | None] = [None] * len(queries)
        if self.caches is not None:
            # Before any data read: a write that lands after this lookup bumps
            # the generation the result would be stored under.
            # Explained searches are always computed (the cache keeps no explanations).
            cacheable = [i for i, q in enumerate(queries) if not q.explain]
            with telemetry.span("cache.search"):
                found = (
                    list(lookups_done)
                    if lookups_done is not None
                    else self.caches.search.lookup(
                        principal.tenant, [(checked[i].scope, checked[i].fingerprint) for i in cacheable]
                    )
                )
            for i, lookup in zip(cacheable, found, strict=True):
                lookups[i] = lookup
                if lookup.hits is not None:
                    results[i] = self._from_cache(principal, queries[i], lookup, now)
        misses = [i for i, r in enumerate(results) if r is None]
        if misses:
            computed = self._compute(
                principal, [queries[i] for i in misses], [checked[i] for i in misses], now
            )
            stores = []
            for i, result in zip(misses, computed, strict=True):
                results[i] = result
                pending = lookups[i]
                if pending is not None:
                    stores.append(
                        (
                            pending,
                            [
                                CachedHit(h.memory.id, h.memory.key, h.score, h.memory.expire_time_us)
                                for h in result.hits
                            ],
                        )
                    )
            if stores and self.caches is not None:
                self.caches.search.store(stores, now_us=now)
        final = [r for r in results if r is not None]
        for result in final:
            self.note_retrieved([h.memory.key for h in result.hits])
        return final

    def cached_lookup(self, principal: Principal, q: SearchQuery) -> SearchLookup | None:
        """A result-cache hit found on the caller's thread, or None (then call
        `search`). Only worth it when the caches are in-process."""
        if not self.inline_cache_hits or self.caches is None or q.explain:
            return None
        self.confine(principal, q.scope)
        checked = self._check_query(q)
        if self.store.current_revision() > self._applied_revision:
            return None  # another process wrote: search() catches up first
        lookup = self.caches.search.lookup(principal.tenant, [(checked.scope, checked.fingerprint)])[0]
        # A miss is handed to search() (it must not look up, and count, twice).
        return lookup if lookup.stamp is not None else None

    def cached_search(self, principal: Principal, q: SearchQuery, lookup: SearchLookup) -> SearchResult:
        """The result of a hit from `cached_lookup`."""
        result = self._from_cache(principal, q, lookup, self.clock())
        self.note_retrieved([h.memory.key for h in result.hits])
        return result

    def _from_cache(
        self, principal: Principal, q: SearchQuery, lookup: SearchLookup, now: int
    ) -> SearchResult:
        assert self.caches is not None and lookup.hits is not None
        ids = [h.id for h in lookup.hits]
        with telemetry.span("cache.records"):
            records = self.caches.records.lookup(principal.tenant, ids, with_embedding=q.include_embedding)
        memories = dict(records.found)
        if records.missing:
            wanted = {h.id: h.key for h in lookup.hits}
            with telemetry.span("store.read"):
                loaded = self.store.get_by_keys(
                    [wanted[i] for i in records.missing], with_embedding=q.include_embedding
                )
            self.caches.records.fill(records, loaded.values(), now_us=now)
            memories.update((m.id, m) for m in loaded.values())
        hits = [
            SearchHit(memories[h.id], h.score)
            for h in lookup.hits
            if h.id in memories
            and memories[h.id].tenant == principal.tenant
            and not memories[h.id].is_expired(now)
        ]
        return SearchResult(hits, self._model_of(q))

    def _model_of(self, q: SearchQuery) -> str:
        """The model that embedded the query's text ("" when none did)."""
        embedded = q.vector is None and q.mode is not SearchMode.KEYWORD
        return self.embedder.model_id if embedded else ""

    def _compute(
        self, principal: Principal, queries: Sequence[SearchQuery], checked: Sequence[_Checked], now: int
    ) -> list[SearchResult]:
        # The keyword halves run on their own threads while the query is
        # embedded and the vector index searched (SQLite and FAISS both
        # release the GIL), so a hybrid search costs about the slower half.
        pending: dict[int, Future[list[KeywordHit]]] = {}
        for i, c in enumerate(checked):
            if c.mode is not SearchMode.VECTOR and not c.matches_nothing:
                pending[i] = _KEYWORD_POOL.submit(
                    contextvars.copy_context().run,
                    self._keyword_search,
                    principal.tenant,
                    queries[i].text,
                    c,
                    now,
                )
        semantic = [i for i, c in enumerate(checked) if c.mode is not SearchMode.KEYWORD]
        texts = [queries[i].text for i in semantic if checked[i].vector is None]
        text_vectors = None
        if texts:
            with telemetry.span("embed", texts=len(texts)):
                text_vectors = self.embedder.embed(texts)
        vectors = np.empty((len(queries), self.index.dimension), dtype=np.float32)
        t = 0
        for i in semantic:
            c = checked[i]
            if c.vector is None:
                assert text_vectors is not None
                vectors[i] = text_vectors[t]
                t += 1
            else:
                vectors[i] = c.vector
        plans = {i: self._locate(principal, checked[i], now) for i in semantic}
        live = [i for i in semantic if plans[i] is not None]
        neighbors: dict[int, list[Any]] = {i: [] for i in range(len(queries))}
        k = max((checked[i].depth for i in live), default=0)
        if live:
            with telemetry.span("index.search", queries=len(live)):
                found = self.index.search(vectors[live], [plans[i] for i in live], k)  # type: ignore[misc]
            for i, result in zip(live, found, strict=True):
                neighbors[i] = result[: checked[i].depth]
        worded = {i: future.result() for i, future in pending.items()}
        want_embeddings = any(q.include_embedding for q in queries)
        keys = sorted(
            {n.key for result in neighbors.values() for n in result}
            | {h.key for result in worded.values() for h in result}
        )
        memories = {}
        if keys:
            with telemetry.span("store.read"):
                memories = self.store.get_by_keys(keys, with_embedding=want_embeddings)

        def usable(key: int) -> Memory | None:
            memory = memories.get(key)
            # Defence in depth: the index is derived data.
            if memory is None or memory.tenant != principal.tenant or memory.is_expired(now):
                return None
            return memory

        results = []
        for i, q in enumerate(queries):
            c = checked[i]
            by_vector = []
            for n in neighbors[i]:
                memory = usable(n.key)
                score = float(min(1.0, max(-1.0, n.score)))
                if memory is not None and (q.min_score is None or score >= q.min_score):
                    by_vector.append(SearchHit(memory, score))
            by_words = []
            for h in worded.get(i, ()):
                memory = usable(h.key)
                if memory is not None:
                    by_words.append(SearchHit(memory, h.score))
            vector_ranking = None if c.mode is SearchMode.KEYWORD else fusion.ranked(by_vector)
            keyword_ranking = None if c.mode is SearchMode.VECTOR else fusion.ranked(by_words)
            if c.mode is SearchMode.HYBRID:
                assert vector_ranking is not None and keyword_ranking is not None
                hits = fusion.fuse([vector_ranking, keyword_ranking], k=c.rrf_k, top_k=c.top_k)
            else:
                ranking = keyword_ranking if c.mode is SearchMode.KEYWORD else vector_ranking
                assert ranking is not None
                hits = ranking[: c.top_k]
            if q.explain:
                hits = fusion.explain(
                    hits,
                    vector=vector_ranking,
                    keyword=keyword_ranking,
                    fused=c.mode is SearchMode.HYBRID,
                )
            results.append(SearchResult(hits, self._model_of(q)))
        return results

    def _keyword_search(self, tenant: str, text: str, c: _Checked, now: int) -> list[KeywordHit]:
        with telemetry.span("keyword.search"):
            return self.store.keyword_search(
                tenant, text, scope=c.scope, filter=c.expr, now_us=now, limit=c.depth
            )

    def _check_query(self, q: SearchQuery) -> _Checked:
        """Validates a query; works out its scope, filter and cache fingerprint."""
        path = q.field
        if (q.vector is None) == (not q.text):
            raise invalid(
                "QUERY_REQUIRED", validation.join(path, "query"), "give exactly one of query and vector"
            )
        if q.mode is not SearchMode.VECTOR and q.vector is not None:
            raise invalid(
                "QUERY_REQUIRED",
                validation.join(path, "query"),
                f"{q.mode.value} search needs query text, not a vector",
            )
        if q.mode is SearchMode.KEYWORD and q.min_score is not None:
            raise invalid(
                "INVALID_ARGUMENT",
                validation.join(path, "min_score"),
                "applies to cosine similarity; keyword search has none",
            )
        if q.rrf_k is not None and not 1 <= q.rrf_k <= fusion.MAX_RRF_K:
            raise invalid(
                "INVALID_ARGUMENT", validation.join(path, "rrf_k"), f"must lie in [1, {fusion.MAX_RRF_K}]"
            )
        vector = None
        if q.vector is not None:
            vector = check_vector(q.vector, self.index.dimension, validation.join(path, "vector"))
        else:
            validation.check_content(q.text, validation.join(path, "query"), self.limits)
        if not 0 <= q.top_k <= self.limits.max_top_k:
            raise invalid(
                "INVALID_TOP_K", validation.join(path, "top_k"), f"must lie in [0, {self.limits.max_top_k}]"
            )
        if q.min_score is not None and not -1.0 <= q.min_score <= 1.0:
            raise invalid("INVALID_ARGUMENT", validation.join(path, "min_score"), "must lie in [-1, 1]")
        try:
            expr = filters.parse_filter(q.filter)
        except InvalidArgumentError as exc:
            raise (exc.with_field_prefix(path) if path else exc) from None
        scope: Scope | None = q.scope
        if expr is not None:
            only_scope = filters.scope_of(expr)
            if only_scope is not None:
                scope, expr = _merge_scopes(q.scope, only_scope), None
        top_k = q.top_k or 10
        rrf_k = fusion.DEFAULT_RRF_K if q.rrf_k is None else q.rrf_k
        fp = search_fingerprint(
            model_id=self.embedder.model_id,
            text=q.text,
            vector=vector,
            filter=filters.format_filter(expr) if expr is not None else "",
            top_k=top_k,
            min_score=q.min_score,
            mode=q.mode.value,
            rrf_k=rrf_k if q.mode is SearchMode.HYBRID else 0,
            explain=q.explain,
        )
        depth = fusion.candidate_depth(top_k) if q.mode is SearchMode.HYBRID else top_k
        return _Checked(vector, scope or q.scope, expr, scope is None, top_k, fp, q.mode, rrf_k, depth)

    def _locate(self, principal: Principal, c: _Checked, now: int) -> IndexQuery | None:
        """Where the index may look; None when scope and filter match nothing."""
        if c.matches_nothing:
            return None
        keys = None
        if c.expr is not None:
            keys = frozenset(
                self.store.match_keys(principal.tenant, scope=c.scope, filter=c.expr, now_us=now)
            )
            if not keys:
                return None
        return IndexQuery(principal.tenant, c.scope, keys, self._expiry.expired(now))

    def _catch_up(self) -> None:
        """Applies changes other processes sharing the store committed, so a
        search never misses a write another replica acknowledged."""
        if self.store.current_revision() <= self._applied_revision:
            return
        with self._write_lock:
            target = self.store.current_revision()
            if target <= self._applied_revision:
                return
            changes = self._replay(self._applied_revision)
            self._applied_revision = max(self._applied_revision, target)
            log.debug("caught up %d changes from other processes", changes)

    # -- writes ------------------------------------------------------------------

    def write(
        self, principal: Principal, ops: Sequence[WriteOp], *, atomic: bool = False, request_id: str = ""
    ) -> list[WriteOutcome]:
        """Applies ops in order. Non-atomic: each op succeeds or fails alone
        (its error is in its outcome). Atomic: all or nothing. `request_id`
        makes the whole call idempotent; each op's own request_id is honoured
        too."""
        outcomes = [WriteOutcome(op.kind) for op in ops]
        prepared: list[Any] = [None] * len(ops)
        now = self.clock()
        if request_id:
            validation.check_request_id(request_id, "request_id")
            batch_fingerprint = _fingerprint(ops, atomic)
            replay = self._replay_request(principal, request_id, batch_fingerprint, now)
            if replay is not None:
                return replay
        # Validate and embed outside the lock: the model is the slow part.
        to_embed: list[tuple[int, str]] = []
        for i, op in enumerate(ops):
            try:
                prepared[i] = self._prepare(op, now)
                if op.kind == "create":
                    self.confine(principal, op.draft.scope)
                    self._check_chosen_id(principal, op)
                if prepared[i].needs_embedding:
                    to_embed.append((i, prepared[i].content))
            except MnemoError as exc:
                outcomes[i].error = exc
        if atomic and any(o.error for o in outcomes):
            return _abort_rest(outcomes)
        if to_embed:
            with telemetry.span("embed", texts=len(to_embed)):
                vectors = self.embedder.embed([text for _, text in to_embed])
            for (i, _), vector in zip(to_embed, vectors, strict=True):
                prepared[i].vector = vector
                prepared[i].model = self.embedder.model_id
        effects = _Effects()
        with self._write_lock:
            try:
                with telemetry.span("store.write"), self.store.write() as txn:
                    for i, op in enumerate(ops):
                        if outcomes[i].error is not None:
                            continue
                        op_effects = _Effects()
                        # One microsecond apart: a batch lists in the order it was written.
                        op_now = now + i
                        try:
                            with txn.savepoint():
                                self._apply_once(
                                    principal, txn, op, prepared[i], outcomes[i], op_now, op_effects
                                )
                        except MnemoError as exc:
                            outcomes[i] = WriteOutcome(op.kind, error=exc)
                            if atomic:
                                raise _Rollback() from exc
                        else:
                            effects.extend(op_effects)
                    if request_id:
                        txn.put_idempotent(
                            principal.tenant,
                            request_id,
                            fingerprint=batch_fingerprint,
                            outcomes=[_stored(o) for o in outcomes],
                            now_us=now,
                        )
            except _Rollback:
                return _abort_rest(outcomes)
            with telemetry.span("publish"):
                self._publish(effects)
        return outcomes

    @staticmethod
    def _check_chosen_id(principal: Principal, op: WriteOp) -> None:
        chosen = "" if op.id_assigned else op.draft.id
        error = _chosen_id_error(principal, chosen, validation.join(op.field, "memory.id"))
        if error is not None:
            raise error

    def _replay_request(
        self, principal: Principal, request_id: str, fingerprint: str, now: int
    ) -> list[WriteOutcome] | None:
        """The original outcomes of a call retried with the same request id."""
        record = self.store.get_idempotent(principal.tenant, request_id)
        if record is None or record.create_time_us < now - self._idempotency_window_us:
            return None
        if record.fingerprint != fingerprint:
            raise FailedPreconditionError(
                f"request_id {request_id!r} was already used for a different request",
                reason="REQUEST_ID_REUSED",
                metadata={"request_id": request_id},
            )
        return [_restored(o) for o in record.outcomes]

    def _apply_once(
        self,
        principal: Principal,
        txn: WriteTxn,
        op: WriteOp,
        prep: _Prepared,
        outcome: WriteOutcome,
        now: int,
        effects: _Effects,
    ) -> None:
        """Applies one op, or replays its stored outcome when its request id
        was seen within the idempotency window."""
        if op.request_id:
            fingerprint = _fingerprint([op], False)
            record = txn.get_idempotent(principal.tenant, op.request_id)
            if record is not None and record.create_time_us >= now - self._idempotency_window_us:
                if record.fingerprint != fingerprint:
                    raise FailedPreconditionError(
                        f"request_id {op.request_id!r} was already used for a different request",
                        reason="REQUEST_ID_REUSED",
                        metadata={"request_id": op.request_id},
                    )
                restored = _restored(record.outcomes[0])
                outcome.memory, outcome.revision = restored.memory, restored.revision
                outcome.deduplicated, outcome.similarity = restored.deduplicated, restored.similarity
                return
        self._apply(principal, txn, op, prep, outcome, now, effects)
        if op.request_id:
            txn.put_idempotent(
                principal.tenant,
                op.request_id,
                fingerprint=_fingerprint([op], False),
                outcomes=[_stored(outcome)],
                now_us=now,
            )

    def _publish(self, effects: _Effects) -> None:
        """After a commit, under the write lock: index, expiry, listeners, feed."""
        if effects.removals:
            self.index.remove(sorted(effects.removals))
            for key in effects.removals:
                self._expiry.discard(key)
        if effects.upserts:
            self.index.upsert(
                [IndexEntry(m.key, m.tenant, m.scope, m.embedding) for m in effects.upserts.values()]  # type: ignore[arg-type]
            )
        for memory in effects.expiry.values():
            self._expiry.set(memory.key, memory.expire_time_us)
        if effects.events:
            self._applied_revision = max(self._applied_revision, effects.events[-1].change.revision)
        if self.caches is not None and effects.events:
            # After the index sees the change and before the write is acknowledged.
            self.caches.invalidate_changes(e.change for e in effects.events)
        for listener in self._listeners:
            try:
                listener(effects.events)
            except Exception:
                log.exception("a change listener failed")
        self.feed.publish(effects.events)

    def add_listener(self, listener: Callable[[list[FeedEvent]], None]) -> None:
        """Calls `listener` with the events of every commit, in revision order
        (for cache invalidation)."""
        self._listeners.append(listener)

    def _remove(
        self,
        txn: WriteTxn,
        memory: Memory,
        change_type: ChangeType,
        now: int,
        effects: _Effects,
        *,
        api_key_id: str = "",
    ) -> int:
        """Deletes one memory at a new revision (logged as DELETE or EXPIRE)
        and records what that means for the index, caches and feed."""
        revision = txn.next_revision()
        gone = dataclasses.replace(memory, revision=revision)
        txn.delete(gone, change_type=change_type, api_key_id=api_key_id)
        effects.gone(gone, change_type, now)
        return revision

    def _unlink(
        self, principal: Principal, txn: WriteTxn, target_ids: Sequence[str], now: int, effects: _Effects
    ) -> None:
        """Removes links to deleted memories: each linking memory gets a new version."""
        gone = set(target_ids)
        for memory in txn.linking_to(principal.tenant, list(gone)):
            if memory.id in gone:
                continue
            revision = txn.next_revision()
            after = dataclasses.replace(
                memory,
                links=tuple(link for link in memory.links if link.target_id not in gone),
                version=memory.version + 1,
                revision=revision,
                update_time_us=now,
            )
            after = txn.update(memory, after, ["links"], api_key_id=principal.api_key_id)
            effects.put(after, ChangeType.UPDATE, now, reindex=False)

    def _prepare(self, op: WriteOp, now: int) -> _Prepared:
        path = op.field
        validation.check_request_id(op.request_id, validation.join(path, "request_id"))
        if op.kind == "delete":
            validation.check_id(op.memory_id, validation.join(path, "id"))
            return _Prepared()
        mpath = validation.join(path, "memory")
        draft = op.draft
        if op.kind == "create":
            mask = set(UPDATABLE)
            if draft.id:
                validation.check_id(draft.id, f"{mpath}.id")
            if draft.scope.is_empty():
                raise invalid(
                    "SCOPE_REQUIRED", f"{mpath}.user_id", "give at least one of user_id, agent_id and run_id"
                )
            for name in ("user_id", "agent_id", "run_id"):
                validation.check_scope_value(getattr(draft.scope, name), f"{mpath}.{name}")
        else:
            validation.check_id(op.memory_id, f"{mpath}.id")
            mask = _update_mask(op.update_mask, validation.join(path, "update_mask"))
        prepared = _Prepared(mask=mask)
        if "content" in mask:
            validation.check_content(draft.content, f"{mpath}.content", self.limits)
        if "tags" in mask:
            prepared.tags = validation.check_tags(draft.tags, f"{mpath}.tags", self.limits)
        if "metadata" in mask:
            validation.check_metadata(draft.metadata, f"{mpath}.metadata", self.limits)
        if "links" in mask:
            validation.check_links(draft.links, f"{mpath}.links", self.limits)
        prepared.expire_us = _expiry(draft, op, mask, now, path)
        if draft.embedding is not None and ("embedding" in mask):
            prepared.vector = check_vector(draft.embedding, self.index.dimension, f"{mpath}.embedding")
            prepared.model = draft.embedding_model or CLIENT_MODEL
        elif "content" in mask:
            prepared.needs_embedding = True
            prepared.content = draft.content
        elif op.kind == "update" and "embedding" in mask:
            raise invalid(
                "INVALID_ARGUMENT", f"{mpath}.embedding", "the update mask names embedding but none was given"
            )
        return prepared

    def _apply(
        self,
        principal: Principal,
        txn: WriteTxn,
        op: WriteOp,
        prep: _Prepared,
        outcome: WriteOutcome,
        now: int,
        effects: _Effects,
    ) -> None:
        tenant = principal.tenant
        if op.kind == "delete":
            memory = txn.get(tenant, op.memory_id)
            if memory is None or memory.is_expired(now) or not principal.allows(memory.scope):
                raise NotFoundError(f"memory {op.memory_id!r} not found", metadata={"id": op.memory_id})
            _check_etag(memory, op.etag)
            revision = self._remove(
                txn, memory, ChangeType.DELETE, now, effects, api_key_id=principal.api_key_id
            )
            self._unlink(principal, txn, [memory.id], now, effects)
            outcome.revision = revision
            return
        draft = op.draft
        if "links" in prep.mask:
            for i, link in enumerate(draft.links):
                target = txn.get(tenant, link.target_id)
                if target is None or target.is_expired(now) or not principal.allows(target.scope):
                    raise FailedPreconditionError(
                        f"link target {link.target_id!r} not found",
                        reason="LINK_TARGET_NOT_FOUND",
                        metadata={"target_id": link.target_id, "index": str(i)},
                    )
        if op.kind == "create":
            self._create(principal, txn, op, prep, outcome, now, effects)
            return
        before = txn.get(tenant, op.memory_id)
        if before is None or before.is_expired(now) or not principal.allows(before.scope):
            raise NotFoundError(f"memory {op.memory_id!r} not found", metadata={"id": op.memory_id})
        _check_etag(before, op.etag)
        changes: dict[str, Any] = {}
        if "content" in prep.mask:
            changes["content"] = draft.content
            changes["content_hash"] = content_hash(draft.content)
        if "kind" in prep.mask:
            changes["kind"] = draft.kind
        if "tags" in prep.mask:
            changes["tags"] = prep.tags
        if "metadata" in prep.mask:
            changes["metadata"] = dict(draft.metadata)
        if "links" in prep.mask:
            changes["links"] = draft.links
        if "pinned" in prep.mask:
            changes["pinned"] = draft.pinned
        if "expire_time" in prep.mask:
            changes["expire_time_us"] = prep.expire_us
        if prep.vector is not None:
            changes["embedding"] = prep.vector
            changes["embedding_model"] = prep.model
        changed = [name for name in UPDATABLE if name in prep.mask and _field_changed(before, changes, name)]
        revision = txn.next_revision()
        after = dataclasses.replace(
            before, **changes, version=before.version + 1, revision=revision, update_time_us=now
        )
        after = txn.update(before, after, changed, api_key_id=principal.api_key_id)
        outcome.memory = after
        outcome.revision = revision
        effects.put(after, ChangeType.UPDATE, now, reindex=prep.vector is not None)

    def _create(
        self,
        principal: Principal,
        txn: WriteTxn,
        op: WriteOp,
        prep: _Prepared,
        outcome: WriteOutcome,
        now: int,
        effects: _Effects,
    ) -> None:
        draft = op.draft
        tenant = principal.tenant
        digest = content_hash(draft.content)
        existing = None
        if op.dedup.mode is DedupMode.EXACT:
            existing = txn.find_by_content_hash(tenant, draft.scope, digest)
            outcome.similarity = 1.0 if existing else 0.0
        elif op.dedup.mode is DedupMode.SEMANTIC:
            existing, outcome.similarity = self._nearest_in_scope(
                tenant, draft.scope, prep.vector, op.dedup.threshold, now
            )
            if existing is not None:
                existing = txn.get(tenant, existing.id)
        if existing is not None and not existing.is_expired(now):
            outcome.deduplicated = True
            outcome.memory = existing
            if op.dedup.merge:
                merged_tags = tuple(dict.fromkeys(existing.tags + prep.tags))
                merged_meta = {**existing.metadata, **draft.metadata}
                if merged_tags != existing.tags or merged_meta != dict(existing.metadata):
                    revision = txn.next_revision()
                    after = dataclasses.replace(
                        existing,
                        tags=merged_tags,
                        metadata=merged_meta,
                        version=existing.version + 1,
                        revision=revision,
                        update_time_us=now,
                    )
                    changed = [
                        n
                        for n, same in (
                            ("tags", merged_tags == existing.tags),
                            ("metadata", merged_meta == dict(existing.metadata)),
                        )
                        if not same
                    ]
                    outcome.memory = txn.update(existing, after, changed, api_key_id=principal.api_key_id)
                    outcome.revision = revision
                    effects.put(outcome.memory, ChangeType.UPDATE, now, reindex=False)
            return
        if draft.id:
            taken = txn.get(tenant, draft.id)
            if taken is not None and taken.is_expired(now):
                # Expired but not yet swept: gone for every read, so gone for a create too.
                self._remove(txn, taken, ChangeType.EXPIRE, now, effects)
                self._unlink(Principal(tenant=tenant), txn, [taken.id], now, effects)
        self._check_quota(txn, tenant, draft.content)
        revision = txn.next_revision()
        memory = Memory(
            tenant=tenant,
            id=draft.id or uuid.uuid4().hex,
            scope=draft.scope,
            content=draft.content,
            kind=draft.kind,
            tags=prep.tags,
            metadata=dict(draft.metadata),
            links=draft.links,
            pinned=draft.pinned,
            embedding_model=prep.model,
            content_hash=digest,
            create_time_us=draft.create_time_us or now,
            update_time_us=draft.update_time_us or now,
            last_retrieve_time_us=draft.last_retrieve_time_us,
            expire_time_us=prep.expire_us,
            version=1,
            revision=revision,
            embedding=prep.vector,
        )
        outcome.memory = txn.insert(memory, api_key_id=principal.api_key_id)
        outcome.revision = revision
        effects.put(outcome.memory, ChangeType.CREATE, now)

    def _check_quota(self, txn: WriteTxn, tenant: str, content: str) -> None:
        """Refuses a create that would take the tenant past its quota (one
        row read, in the write transaction: exact across processes)."""
        quota = self.settings.quota
        if not (quota.max_memories or quota.max_content_bytes):
            return
        count, size = txn.usage(tenant)
        if quota.max_memories and count >= quota.max_memories:
            raise ResourceExhaustedError(
                f"the tenant holds {count} memories, its quota of {quota.max_memories}",
                reason="QUOTA_EXCEEDED",
                metadata={"quota": "max_memories", "limit": str(quota.max_memories)},
            )
        adding = len(content.encode("utf-8"))
        if quota.max_content_bytes and size + adding > quota.max_content_bytes:
            raise ResourceExhaustedError(
                f"the tenant holds {size} bytes of content; {adding} more would pass its quota "
                f"of {quota.max_content_bytes}",
                reason="QUOTA_EXCEEDED",
                metadata={"quota": "max_content_bytes", "limit": str(quota.max_content_bytes)},
            )

    def _nearest_in_scope(
        self, tenant: str, scope: Scope, vector: Vector | None, threshold: float, now: int
    ) -> tuple[Memory | None, float]:
        if vector is None:
            return None, 0.0
        query = IndexQuery(tenant, scope, None, self._expiry.expired(now))
        found = self.index.search(vector.reshape(1, -1), [query], 1)[0]
        if not found or found[0].score < threshold:
            return None, float(found[0].score) if found else 0.0
        memory = self.store.get_by_keys([found[0].key]).get(found[0].key)
        # Semantic dedup matches the exact scope, not memories of sub-scopes.
        if memory is None or memory.scope != scope:
            return None, 0.0
        return memory, float(found[0].score)

    # -- expiry ------------------------------------------------------------------

    def sweep_expired(self, *, limit: int = 1000) -> int:
        """Deletes memories whose time has passed, logging EXPIRE changes."""
        now = self.clock()
        expired = self.store.expired(now, limit=limit)
        if not expired:
            return 0
        effects = _Effects()
        with self._write_lock:
            with self.store.write() as txn:
                for memory in expired:
                    current = txn.get(memory.tenant, memory.id)
                    if current is None or not current.is_expired(now):
                        continue
                    self._remove(txn, current, ChangeType.EXPIRE, now, effects)
                    self._unlink(Principal(tenant=current.tenant), txn, [current.id], now, effects)
            self._publish(effects)
        return sum(1 for e in effects.events if e.change.change_type is ChangeType.EXPIRE)

    # -- forgetting -------------------------------------------------------------

    def forget(
        self, principal: Principal, *, scope: Scope, filter_text: str, dry_run: bool, request_id: str = ""
    ) -> ForgetResult:
        """Deletes every memory of a scope or filter with its history, index,
        cache and idempotency entries. Forgetting a whole scope (no filter)
        also erases the history of its memories deleted or expired earlier,
        so no RPC and no feed replay shows any content of the scope again; a
        filter reaches the live memories it matches. The revision log keeps
        only ids and scopes, so watchers learn of the deletes without seeing
        content."""
        expr = filters.parse_filter(filter_text)
        if scope.is_empty() and expr is None:
            raise invalid(
                "SCOPE_REQUIRED", "scope", "give a scope or a filter; forgetting everything needs a filter"
            )
        self.confine(principal, scope)
        validation.check_request_id(request_id, "request_id")
        now = self.clock()
        if dry_run:
            with self.store.write() as txn:
                victims = txn.select_for_forget(principal.tenant, scope=scope, filter=expr, limit=2**62)
            return ForgetResult(len(victims), [m.id for m in victims[:1000]], 0)
        fingerprint_ = fingerprint("forget", scope, filter_text)
        effects = _Effects()
        ids: list[str] = []
        revision = 0
        with self._write_lock:
            with self.store.write() as txn:
                if request_id:
                    record = txn.get_idempotent(principal.tenant, request_id)
                    if record is not None and record.create_time_us >= now - self._idempotency_window_us:
                        if record.fingerprint != fingerprint_:
                            raise FailedPreconditionError(
                                f"request_id {request_id!r} was already used for a different request",
                                reason="REQUEST_ID_REUSED",
                                metadata={"request_id": request_id},
                            )
                        stored = record.outcomes[0]
                        return ForgetResult(int(stored.similarity), [], stored.revision)
                victims = txn.select_for_forget(principal.tenant, scope=scope, filter=expr, limit=2**62)
                for memory in victims:
                    revision = self._remove(
                        txn, memory, ChangeType.DELETE, now, effects, api_key_id=principal.api_key_id
                    )
                    ids.append(memory.id)
                past: list[str] = []
                if expr is None:
                    # A whole scope: its earlier deletes and expiries too.
                    past = txn.purge_scope_history(principal.tenant, scope)
                elif victims:
                    txn.purge_history(principal.tenant, victims)
                if ids or past:
                    txn.purge_idempotency_for(principal.tenant, sorted({*ids, *past}))
                if ids:
                    self._unlink(principal, txn, ids, now, effects)
                if request_id:
                    # The count rides in `similarity`: no content, nothing to forget later.
                    txn.put_idempotent(
                        principal.tenant,
                        request_id,
                        fingerprint=fingerprint_,
                        outcomes=[StoredOutcome("forget", similarity=float(len(ids)), revision=revision)],
                        now_us=now,
                    )
            self._publish(effects)
        log.info("forgot %d memories of tenant %s", len(ids), principal.tenant)
        return ForgetResult(len(ids), ids[:1000], max((e.change.revision for e in effects.events), default=0))

    # -- change feed ------------------------------------------------------------

    def feed_batch(
        self, principal: Principal, *, after: int, scope: Scope, limit: int = 1000
    ) -> list[FeedEvent]:
        """Logged changes after `after` (for watch replay)."""
        self.confine(principal, scope)
        compacted = self.store.compacted_revision()
        if after < compacted:
            raise OutOfRangeError(
                f"revision {after} is compacted; the log starts after revision {compacted}",
                reason="REVISION_COMPACTED",
                metadata={"oldest_revision": str(compacted)},
            )
        current = self.store.current_revision()
        if after > current:
            # Accepted, such a watch would wait for revisions this store may never reach.
            raise OutOfRangeError(
                f"revision {after} is ahead of the store, which is at revision {current}",
                reason="REVISION_AHEAD",
                metadata={"current_revision": str(current)},
            )
        entries = self.store.feed_since(after, tenant=principal.tenant, scope=scope, limit=limit)
        return [FeedEvent(e.change, e.memory) for e in entries]

    def compact_feed(self) -> int:
        """Drops log entries older than the feed retention, never past the
        last index snapshot (restarts replay from there)."""
        cutoff = self.clock() - int(self.settings.lifecycle.feed_retention_s * 1e6)
        return self.store.compact_log(before_us=cutoff, max_revision=self._snapshot_revision)

    # -- export and import ------------------------------------------------------

    def export(
        self, principal: Principal, *, scope: Scope, filter_text: str, with_embeddings: bool
    ) -> AbstractContextManager[tuple[int, Iterator[list[Memory]]]]:
        self.confine(principal, scope)
        expr = filters.parse_filter(filter_text)
        return self.store.export_snapshot(
            principal.tenant, scope=scope, filter=expr, now_us=self.clock(), with_embedding=with_embeddings
        )

    def import_batch(
        self,
        principal: Principal,
        items: Sequence[tuple[int, MemoryDraft, bool]],
        *,
        source_model: str,
        on_conflict: str,
        force_reembed: bool,
    ) -> ImportReport:
        """Stores exported memories, given as (position in the stream, draft,
        whether the caller chose the draft's id or the server assigned it).
        Embeddings are reused when their model is the server's and
        re-embedded otherwise. Links are left out here and restored by
        `import_links` once every memory of the import exists."""
        report = ImportReport()
        now = self.clock()
        ops: list[WriteOp] = []
        positions: list[int] = []
        reembed: set[int] = set()
        ids = [draft.id for _, draft, _ in items if draft.id]
        existing = (
            {
                m.id
                for m in self.store.get_many(principal.tenant, ids)
                if principal.allows(m.scope) and not m.is_expired(now)
            }
            if ids
            else set()
        )
        for position, draft, chosen in items:
            forbidden = _chosen_id_error(principal, draft.id if chosen else "", "memory.id")
            if forbidden is not None:
                report.fail(position, draft.id, forbidden)
                continue
            model = draft.embedding_model or source_model
            reuse = (
                not force_reembed
                and draft.embedding is not None
                and model == self.embedder.model_id
                and len(draft.embedding) == self.index.dimension
            )
            if not reuse:
                reembed.add(position)
                draft = dataclasses.replace(draft, embedding=None, embedding_model="")
            if draft.expire_time_us is not None and draft.expire_time_us <= now:
                report.fail(
                    position,
                    draft.id,
                    invalid("INVALID_TTL", "memory.expire_time", "the memory has already expired"),
                )
                continue
            if draft.id in existing:
                if on_conflict == "fail":
                    report.fail(
                        position,
                        draft.id,
                        AlreadyExistsError(f"memory {draft.id!r} already exists", metadata={"id": draft.id}),
                    )
                    continue
                if on_conflict != "overwrite":
                    report.skipped += 1
                    continue
                ops.append(WriteOp("delete", memory_id=draft.id))
                positions.append(-1)
            ops.append(WriteOp("create", draft=dataclasses.replace(draft, links=()), id_assigned=not chosen))
            positions.append(position)
        for outcome, position, op in zip(self.write(principal, ops), positions, ops, strict=True):
            if position < 0:
                continue
            if outcome.error is not None:
                report.fail(position, op.draft.id, outcome.error)
            else:
                report.imported += 1
                report.reembedded += position in reembed
                report.written.add(outcome.memory.id if outcome.memory is not None else op.draft.id)
        return report

    def import_links(self, principal: Principal, links: dict[str, tuple[Link, ...]]) -> None:
        """Restores the links of imported memories, keeping those whose
        target exists now (a new version of each linking memory)."""
        if not links:
            return
        targets = {link.target_id for ls in links.values() for link in ls}
        alive = {m.id for m in self.store.get_many(principal.tenant, sorted(targets))}
        ops = [
            WriteOp(
                "update",
                memory_id=memory_id,
                draft=MemoryDraft(links=tuple(link for link in ls if link.target_id in alive)),
                update_mask=("links",),
            )
            for memory_id, ls in links.items()
            if any(link.target_id in alive for link in ls)
        ]
        for start in range(0, len(ops), 500):
            self.write(principal, ops[start : start + 500])

    # -- re-embedding -------------------------------------------------------------

    def reembed_candidates(
        self, principal: Principal, *, scope: Scope, filter_text: str, force: bool
    ) -> list[str]:
        """Ids of live memories not embedded by the current model (all with `force`)."""
        model = self.embedder.model_id
        ids: list[str] = []
        with self.export(principal, scope=scope, filter_text=filter_text, with_embeddings=False) as (
            _,
            batches,
        ):
            for batch in batches:
                ids.extend(m.id for m in batch if force or m.embedding_model != model)
        return ids

    def reembed(self, principal: Principal, memory_ids: Sequence[str]) -> int:
        """Re-embeds these memories with the current model, each only if it did
        not change meanwhile (a concurrent update embeds with the current
        model anyway). Returns how many were re-embedded."""
        memories = [
            m for m in self.store.get_many(principal.tenant, memory_ids) if not m.is_expired(self.clock())
        ]
        if not memories:
            return 0
        vectors = self.embedder.embed([m.content for m in memories])
        ops = [
            WriteOp(
                "update",
                memory_id=memory.id,
                etag=memory.etag,
                update_mask=("embedding",),
                draft=MemoryDraft(embedding=vector.tolist(), embedding_model=self.embedder.model_id),
            )
            for memory, vector in zip(memories, vectors, strict=True)
        ]
        return sum(o.error is None for o in self.write(principal, ops))

    # -- retention and upkeep ---------------------------------------------------

    def enforce_retention(self, *, limit: int = 1000) -> int:
        """Applies the configured retention policies; pinned memories are exempt."""
        rules = self.settings.lifecycle.retention
        if not rules:
            return 0
        now = self.clock()
        victims: dict[tuple[str, str], Memory] = {}
        for rule in rules:
            found = self.store.retention_victims(
                tenant=None if rule.tenant == "*" else rule.tenant,
                scope=Scope(rule.user_id, rule.agent_id, rule.run_id),
                created_before_us=now - int(rule.max_age_s * 1e6) if rule.max_age_s else None,
                max_count=rule.max_count,
                by_last_retrieval=rule.eviction == "least_recently_retrieved",
                limit=limit,
            )
            for memory in found:
                victims[(memory.tenant, memory.id)] = memory
        if not victims:
            return 0
        effects = _Effects()
        with self._write_lock:
            with self.store.write() as txn:
                for memory in victims.values():
                    current = txn.get(memory.tenant, memory.id)
                    if current is None or current.pinned:
                        continue
                    self._remove(txn, current, ChangeType.DELETE, now, effects)
                    self._unlink(Principal(tenant=current.tenant), txn, [current.id], now, effects)
            self._publish(effects)
        removed = sum(1 for e in effects.events if e.change.change_type is ChangeType.DELETE)
        log.info("retention removed %d memories", removed)
        return removed

    def note_retrieved(self, keys: Sequence[int]) -> None:
        """Remembers which memories searches returned (flushed by upkeep)."""
        with self._retrieved_lock:
            self._retrieved.update(keys)

    def upkeep(self) -> dict[str, int]:
        """The periodic chores: expiry, retention, retrieval times, old
        request ids, and log compaction."""
        done = {"expired": self.sweep_expired(), "retention": self.enforce_retention()}
        with self._retrieved_lock:
            keys, self._retrieved = sorted(self._retrieved), set()
        if keys:
            self.store.touch_retrieved(keys, self.clock())
        done["request_ids"] = self.store.purge_idempotency(
            before_us=self.clock() - self._idempotency_window_us
        )
        done["compacted"] = self.compact_feed()
        return done

    # -- admin -------------------------------------------------------------------

    def stats(self, principal: Principal, *, scope: Scope, scope_limit: int, all_tenants: bool) -> Stats:
        if not 0 <= scope_limit <= 1000:
            raise invalid("INVALID_ARGUMENT", "scope_limit", "must lie in [0, 1000]")
        tenants = []
        for row in self.store.tenant_counts():
            if not all_tenants and row.tenant != principal.tenant:
                continue
            scopes = self.store.scope_counts(row.tenant, scope=scope, limit=scope_limit or 100)
            tenants.append(TenantStats(row.tenant, row.memory_count, row.content_bytes, scopes))
        shards = [
            ShardStats(
                s.shard_id,
                s.kind,
                s.vector_count,
                s.dimension,
                s.memory_bytes,
                s.snapshot_revision,
                s.kind_reason,
            )
            # A tenant's admin sees its own shards only (shard ids name tenants).
            for s in self.index.shards(None if all_tenants else principal.tenant)
        ]
        retention = tuple(
            rule
            for rule in self.settings.lifecycle.retention
            if all_tenants or rule.tenant in ("*", principal.tenant)
        )
        return Stats(
            tenants=tenants,
            shards=shards,
            caches=self.caches.proto_stats() if self.caches is not None else [],
            revision=self.store.current_revision(),
            oldest_revision=self.store.compacted_revision(),
            embedding_model=self.embedder.model_id,
            dimension=self.embedder.dimension,
            retention=retention,
        )

    def check_consistency(self, *, repair: bool) -> ConsistencyReport:
        with self._write_lock:
            found: list[Inconsistency] = []
            index_keys = self.index.keys()
            store_keys: set[int] = set()
            fixes: list[IndexEntry] = []
            by_key: dict[int, tuple[str, str]] = {}
            for rows in self.store.iter_vectors():
                memories = self.store.get_by_keys([r.key for r in rows])
                for r in rows:
                    store_keys.add(r.key)
                    m = memories.get(r.key)
                    memory_id = m.id if m else str(r.key)
                    by_key[r.key] = (r.tenant, memory_id)
                    held = self.index.get_vector(r.key)
                    if held is None:
                        found.append(Inconsistency("missing", memory_id, r.tenant))
                        fixes.append(IndexEntry(r.key, r.tenant, r.scope, r.vector))
                    elif not np.allclose(held, r.vector, atol=1e-6):
                        found.append(Inconsistency("stale", memory_id, r.tenant))
                        fixes.append(IndexEntry(r.key, r.tenant, r.scope, r.vector))
            orphans = sorted(index_keys - store_keys)
            found.extend(Inconsistency("orphan", str(k), "") for k in orphans)
            repaired = 0
            if repair:
                if fixes:
                    self.index.upsert(fixes)
                if orphans:
                    self.index.remove(orphans)
                repaired = len(fixes) + len(orphans)
                if repaired and self.caches is not None:
                    self.caches.invalidate_tenants(t.tenant for t in self.store.tenant_counts())
            return ConsistencyReport(len(store_keys), len(index_keys), found, repaired)


@dataclass(slots=True)
class _Effects:
    """What committed changes mean for the index, the expiry tracker, the
    caches and the change feed; applied after the commit."""

    events: list[FeedEvent] = field(default_factory=list)
    upserts: dict[int, Memory] = field(default_factory=dict)
    removals: set[int] = field(default_factory=set)
    expiry: dict[int, Memory] = field(default_factory=dict)

    def put(self, memory: Memory, change_type: ChangeType, now: int, *, reindex: bool = True) -> None:
        self.events.append(FeedEvent(_change(memory, change_type, now), memory))
        if reindex:
            self.upserts[memory.key] = memory
            self.removals.discard(memory.key)
        self.expiry[memory.key] = memory

    def gone(self, memory: Memory, change_type: ChangeType, now: int) -> None:
        self.events.append(FeedEvent(_change(memory, change_type, now), memory))
        self.upserts.pop(memory.key, None)
        self.expiry.pop(memory.key, None)
        self.removals.add(memory.key)

    def extend(self, other: _Effects) -> None:
        self.events.extend(other.events)
        for key in other.removals:
            self.upserts.pop(key, None)
            self.expiry.pop(key, None)
        self.removals |= other.removals
        for key, memory in other.upserts.items():
            self.upserts[key] = memory
            self.removals.discard(key)
        self.expiry.update(other.expiry)


def _change(memory: Memory, change_type: ChangeType, now: int) -> Change:
    return Change(memory.revision, memory.tenant, memory.id, memory.key, change_type, memory.scope, now)


def _fingerprint(ops: Sequence[WriteOp], atomic: bool) -> str:
    """What a request id is bound to: the request, without ids and places."""
    payload = [dataclasses.asdict(dataclasses.replace(op, request_id="", field="")) for op in ops]
    return fingerprint(atomic, json.dumps(payload, sort_keys=True, default=_exact))


def _exact(value: Any) -> Any:
    """JSON for what json.dumps cannot encode, exactly (str() would
    abbreviate a long array, so two vectors could share a fingerprint)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _stored(outcome: WriteOutcome) -> StoredOutcome:
    error = None
    if outcome.error is not None:
        error = (
            outcome.error.code,
            outcome.error.reason,
            outcome.error.message,
            dict(outcome.error.metadata),
        )
    memory = None if outcome.memory is None else dataclasses.replace(outcome.memory, embedding=None)
    return StoredOutcome(
        outcome.kind, memory, outcome.deduplicated, outcome.similarity, outcome.revision, error
    )


def _restored(stored: StoredOutcome) -> WriteOutcome:
    error = None
    if stored.error is not None:
        code, reason, message, metadata = stored.error
        error = _ERROR_BY_CODE.get(code, MnemoError)(message, reason=reason, metadata=metadata)
    return WriteOutcome(
        stored.kind, stored.memory, stored.deduplicated, stored.similarity, stored.revision, error
    )


_ERROR_BY_CODE: dict[str, type[MnemoError]] = {cls.code: cls for cls in MnemoError.__subclasses__()}


@dataclass(frozen=True, slots=True)
class _Checked:
    """A validated search query."""

    vector: Vector | None
    scope: Scope
    expr: filters.Expr | None
    matches_nothing: bool
    top_k: int
    fingerprint: bytes
    mode: SearchMode
    rrf_k: int
    depth: int  # candidates to rank: top_k, more for each half of a hybrid search


@dataclass(slots=True)
class _Prepared:
    """What validation worked out for one write, before the transaction."""

    mask: set[str] = field(default_factory=set)
    tags: tuple[str, ...] = ()
    expire_us: int | None = None
    vector: Vector | None = None
    model: str = ""
    needs_embedding: bool = False
    content: str = ""


def _abort_rest(outcomes: list[WriteOutcome]) -> list[WriteOutcome]:
    """Atomic batch failed: keep the real errors, abort everything else."""
    return [
        o
        if o.error is not None
        else WriteOutcome(
            o.kind, error=AbortedError("not applied: another operation of the atomic batch failed")
        )
        for o in outcomes
    ]


def _check_etag(memory: Memory, etag: str) -> None:
    if etag and etag != memory.etag:
        raise FailedPreconditionError(
            f"memory {memory.id!r} changed since etag {etag!r}",
            reason="ETAG_MISMATCH",
            metadata={"current_etag": memory.etag},
        )


def _chosen_id_error(principal: Principal, memory_id: str, field: str) -> MnemoError | None:
    """Keys restricted to users or agents get server-assigned ids: were they
    to choose, an id held by another user's memory would answer
    ALREADY_EXISTS where every read of it answers MEMORY_NOT_FOUND."""
    if not (memory_id and principal.restricted):
        return None
    return PermissionDeniedError(
        "a key restricted to users or agents cannot choose memory ids: leave id empty",
        reason="MEMORY_ID_FORBIDDEN",
        violations=[FieldViolation(field, "must be empty for this key")],
    )


def _update_mask(paths: tuple[str, ...], field: str) -> set[str]:
    if not paths:
        raise invalid("INVALID_FIELD_MASK", field, "is required: name the fields to change")
    mask: set[str] = set()
    for path in paths:
        if path == "*":
            mask.update(UPDATABLE)
        elif path in UPDATABLE:
            mask.add(path)
        elif path in IMMUTABLE:
            raise invalid("FIELD_IMMUTABLE", field, f"{path} cannot change after create")
        else:
            raise invalid("INVALID_FIELD_MASK", field, f"{path} is not a field an update can change")
    return mask


def _expiry(draft: MemoryDraft, op: WriteOp, mask: set[str], now: int, path: str) -> int | None:
    field_name = validation.join(path, "ttl")
    if draft.ttl_us is not None:
        if op.kind == "create" and draft.expire_time_us is not None:
            raise invalid("INVALID_TTL", field_name, "give ttl or memory.expire_time, not both")
        if draft.ttl_us <= 0:
            raise invalid("INVALID_TTL", field_name, "must be positive")
        mask.add("expire_time")
        return validation.check_expiry_us(now, draft.ttl_us, field_name)
    if draft.expire_time_us is not None and "expire_time" in mask:
        if draft.expire_time_us <= now:
            raise invalid("INVALID_TTL", validation.join(path, "memory.expire_time"), "must be in the future")
        return draft.expire_time_us
    return None


def _field_changed(before: Memory, changes: dict[str, Any], name: str) -> bool:
    attr = {"expire_time": "expire_time_us"}.get(name, name)
    if name == "embedding":
        return "embedding" in changes
    return attr in changes and changes[attr] != getattr(before, attr)


def _merge_scopes(a: Scope, b: Scope) -> Scope | None:
    merged = []
    for name in ("user_id", "agent_id", "run_id"):
        x, y = getattr(a, name), getattr(b, name)
        if x and y and x != y:
            return None
        merged.append(x or y)
    return Scope(*merged)


def parse_order_by(text: str) -> list[OrderTerm]:
    if not text.strip():
        return [OrderTerm("create_time", descending=True)]
    terms = []
    for part in text.split(","):
        words = part.split()
        if (
            not words
            or len(words) > 2
            or words[0] not in ORDER_FIELDS
            or (len(words) == 2 and words[1].lower() not in ("asc", "desc"))
        ):
            raise invalid(
                "INVALID_ORDER_BY",
                "order_by",
                f"expected fields of {', '.join(ORDER_FIELDS)} each optionally followed by"
                f" asc or desc, got {part.strip()!r}",
            )
        terms.append(OrderTerm(words[0], len(words) == 2 and words[1].lower() == "desc"))
    if len({t.field for t in terms}) != len(terms):
        raise invalid("INVALID_ORDER_BY", "order_by", "names a field twice")
    return terms


#: The type of each sort field's value in a list cursor.
_SORT_TYPES: dict[str, type] = {"create_time": int, "update_time": int, "id": str}


def _sort_key(memory: Memory, order: Sequence[OrderTerm]) -> list[Any]:
    values: dict[str, Any] = {
        "create_time": memory.create_time_us,
        "update_time": memory.update_time_us,
        "id": memory.id,
    }
    return [values[t.field] for t in order] + [memory.id]
