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

import dataclasses
import enum
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mnemo_server import filters, validation
from mnemo_server.config import Settings
from mnemo_server.embed.base import Embedder
from mnemo_server.embed.vectors import check_vector
from mnemo_server.errors import (
    AbortedError,
    FailedPreconditionError,
    InvalidArgumentError,
    MnemoError,
    NotFoundError,
    invalid,
)
from mnemo_server.expiry import ExpiryTracker
from mnemo_server.index.base import IndexEntry, IndexKind, IndexQuery, VectorIndex
from mnemo_server.models import (
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
    OrderTerm,
    RecordStore,
    ScopeCountRow,
    VersionRecord,
    WriteTxn,
)

log = logging.getLogger("mnemo.service")

SERVER_VERSION = "0.1.0"
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
    embedding: list[float] | None = None
    embedding_model: str = ""
    expire_time_us: int | None = None
    ttl_us: int | None = None


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


@dataclass(slots=True)
class WriteOutcome:
    kind: str
    memory: Memory | None = None
    deduplicated: bool = False
    similarity: float = 0.0
    revision: int = 0
    error: MnemoError | None = None


@dataclass(frozen=True, slots=True)
class SearchQuery:
    text: str = ""
    vector: list[float] | None = None
    scope: Scope = Scope()
    filter: str = ""
    top_k: int = 0
    min_score: float | None = None
    include_embedding: bool = False
    field: str = ""


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
        cache_stats: Callable[[], list[dict[str, Any]]] = list,
    ) -> None:
        self.store = store
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self.limits = settings.limits
        self.snapshot_dir = snapshot_dir
        self.clock = clock
        self._cache_stats = cache_stats
        self._write_lock = threading.RLock()
        self._expiry = ExpiryTracker()
        self._snapshot_revision = 0

    # -- start-up ----------------------------------------------------------------

    def load(self) -> None:
        """Brings the index up to date with the store: the last snapshot plus
        a replay of the revision log, or a rebuild when there is no usable
        snapshot. Also loads expiry deadlines."""
        started = time.monotonic()
        self._check_model()
        revision = self.index.load(self.snapshot_dir)
        if revision is None:
            log.info("no usable index snapshot in %s; rebuilding from the store", self.snapshot_dir)
            self._rebuild_index()
        else:
            replayed = self._replay(revision)
            log.info("index snapshot at revision %d loaded; replayed %d changes", revision, replayed)
            self._snapshot_revision = revision
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
        self.store.set_meta("dimension", str(self.embedder.dimension))
        self.store.set_meta("embedding_model", self.embedder.model_id)

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
        if done:
            self.snapshot_at(revision)

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
            replayed += len(changes)
            revision = changes[-1].revision

    # -- snapshots ---------------------------------------------------------------

    def snapshot(self) -> SnapshotInfo:
        with self._write_lock:
            return self.snapshot_at(self.store.current_revision())

    def snapshot_at(self, revision: int) -> SnapshotInfo:
        written = self.index.save(self.snapshot_dir, revision)
        self._snapshot_revision = revision
        return SnapshotInfo(revision, self.clock(), written, len(self.index.shards()))

    # -- reads -------------------------------------------------------------------

    def get(self, principal: Principal, memory_id: str, *, with_embedding: bool = False) -> Memory:
        validation.check_id(memory_id, "id")
        memory = self.store.get(principal.tenant, memory_id, with_embedding=with_embedding)
        if memory is None or memory.is_expired(self.clock()):
            raise NotFoundError(f"memory {memory_id!r} not found", metadata={"id": memory_id})
        return memory

    def list(
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
        expr = filters.parse_filter(filter_text)
        order = parse_order_by(order_by)
        size = validation.check_page_size(page_size, "page_size", self.limits)
        query = fingerprint("list", principal.tenant, scope, filters.format_filter(expr) if expr else "",
                            [(t.field, t.descending) for t in order])
        cursor = decode_token(page_token, query)
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
        cursor = decode_token(page_token, query)
        before = int(cursor[0]) if cursor else None
        records = self.store.history(principal.tenant, memory_id, before_version=before, limit=size + 1)
        if not records and before is None:
            raise NotFoundError(f"memory {memory_id!r} not found", metadata={"id": memory_id})
        next_token = ""
        if len(records) > size:
            records = records[:size]
            next_token = encode_token(query, [records[-1].version])
        return records, next_token

    # -- search ------------------------------------------------------------------

    def search(self, principal: Principal, queries: Sequence[SearchQuery]) -> list[SearchResult]:
        """Runs queries with one embedding call and one index call."""
        now = self.clock()
        plans = [self._plan(principal, q, now) for q in queries]
        texts = [q.text for q in queries if q.vector is None]
        text_vectors = self.embedder.embed(texts) if texts else np.zeros((0, self.index.dimension))
        vectors = np.empty((len(queries), self.index.dimension), dtype=np.float32)
        t = 0
        for i, q in enumerate(queries):
            if q.vector is None:
                vectors[i] = text_vectors[t]
                t += 1
            else:
                vectors[i] = plans[i][1]  # type: ignore[assignment]
        live = [i for i, p in enumerate(plans) if p[0] is not None]
        neighbors: dict[int, list[Any]] = {i: [] for i in range(len(queries))}
        k = max((self._top_k(q) for q in queries), default=0)
        if live:
            found = self.index.search(vectors[live], [plans[i][0] for i in live], k)  # type: ignore[misc]
            for i, result in zip(live, found, strict=True):
                neighbors[i] = result[: self._top_k(queries[i])]
        want_embeddings = any(q.include_embedding for q in queries)
        keys = sorted({n.key for result in neighbors.values() for n in result})
        memories = self.store.get_by_keys(keys, with_embedding=want_embeddings) if keys else {}
        results = []
        for i, q in enumerate(queries):
            hits = []
            for n in neighbors[i]:
                memory = memories.get(n.key)
                # Defence in depth: the index is derived data.
                if memory is None or memory.tenant != principal.tenant or memory.is_expired(now):
                    continue
                score = float(min(1.0, max(-1.0, n.score)))
                if q.min_score is None or score >= q.min_score:
                    hits.append(SearchHit(memory, score))
            hits.sort(key=lambda h: (-h.score, h.memory.id))
            results.append(SearchResult(hits, self.embedder.model_id if q.vector is None else ""))
        return results

    def _top_k(self, query: SearchQuery) -> int:
        return query.top_k or 10

    def _plan(
        self, principal: Principal, q: SearchQuery, now: int
    ) -> tuple[IndexQuery | None, Vector | None]:
        """Validates a query and decides where the index may look; None when
        the scope and filter can match nothing."""
        path = q.field
        if (q.vector is None) == (not q.text):
            raise invalid("QUERY_REQUIRED", validation.join(path, "query"), "give exactly one of query and vector")
        vector = None
        if q.vector is not None:
            vector = check_vector(q.vector, self.index.dimension, validation.join(path, "vector"))
        else:
            validation.check_content(q.text, validation.join(path, "query"), self.limits)
        if not 0 <= q.top_k <= self.limits.max_top_k:
            raise invalid("INVALID_TOP_K", validation.join(path, "top_k"), f"must lie in [0, {self.limits.max_top_k}]")
        if q.min_score is not None and not -1.0 <= q.min_score <= 1.0:
            raise invalid("INVALID_ARGUMENT", validation.join(path, "min_score"), "must lie in [-1, 1]")
        try:
            expr = filters.parse_filter(q.filter)
        except InvalidArgumentError as exc:
            raise exc.with_field_prefix(path) if path else exc
        scope = q.scope
        if expr is not None:
            only_scope = filters.scope_of(expr)
            if only_scope is not None:
                merged = _merge_scopes(scope, only_scope)
                if merged is None:
                    return None, vector
                scope, expr = merged, None
        keys = None
        if expr is not None:
            keys = frozenset(self.store.match_keys(principal.tenant, scope=scope, filter=expr, now_us=now))
            if not keys:
                return None, vector
        return IndexQuery(principal.tenant, scope, keys, self._expiry.expired(now)), vector

    # -- writes ------------------------------------------------------------------

    def write(self, principal: Principal, ops: Sequence[WriteOp], *, atomic: bool = False) -> list[WriteOutcome]:
        """Applies ops in order. Non-atomic: each op succeeds or fails alone
        (its error is in its outcome). Atomic: all or nothing."""
        outcomes = [WriteOutcome(op.kind) for op in ops]
        prepared: list[Any] = [None] * len(ops)
        now = self.clock()
        # Validate and embed outside the lock: the model is the slow part.
        to_embed: list[tuple[int, str]] = []
        for i, op in enumerate(ops):
            try:
                prepared[i] = self._prepare(op, now)
                if prepared[i].needs_embedding:
                    to_embed.append((i, prepared[i].content))
            except MnemoError as exc:
                outcomes[i].error = exc
        if atomic and any(o.error for o in outcomes):
            return _abort_rest(outcomes)
        if to_embed:
            vectors = self.embedder.embed([text for _, text in to_embed])
            for (i, _), vector in zip(to_embed, vectors, strict=True):
                prepared[i].vector = vector
                prepared[i].model = self.embedder.model_id
        index_ops: list[tuple[str, Memory]] = []
        with self._write_lock:
            try:
                with self.store.write() as txn:
                    for i, op in enumerate(ops):
                        if outcomes[i].error is not None:
                            continue
                        try:
                            with txn.savepoint():
                                self._apply(principal, txn, op, prepared[i], outcomes[i], now, index_ops)
                        except MnemoError as exc:
                            outcomes[i] = WriteOutcome(op.kind, error=exc)
                            if atomic:
                                raise _Rollback() from exc
            except _Rollback:
                return _abort_rest(outcomes)
            self._apply_index(index_ops)
        return outcomes

    def _apply_index(self, index_ops: list[tuple[str, Memory]]) -> None:
        upserts: dict[int, Memory] = {}
        removals: set[int] = set()
        for action, memory in index_ops:
            if action == "upsert":
                upserts[memory.key] = memory
                removals.discard(memory.key)
            else:
                upserts.pop(memory.key, None)
                removals.add(memory.key)
        if removals:
            self.index.remove(sorted(removals))
            for key in removals:
                self._expiry.discard(key)
        if upserts:
            self.index.upsert(
                [IndexEntry(m.key, m.tenant, m.scope, m.embedding) for m in upserts.values()]  # type: ignore[arg-type]
            )
            for m in upserts.values():
                self._expiry.set(m.key, m.expire_time_us)

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
                raise invalid("SCOPE_REQUIRED", f"{mpath}.user_id", "give at least one of user_id, agent_id and run_id")
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
            raise invalid("INVALID_ARGUMENT", f"{mpath}.embedding", "the update mask names embedding but none was given")
        return prepared

    def _apply(
        self,
        principal: Principal,
        txn: WriteTxn,
        op: WriteOp,
        prep: _Prepared,
        outcome: WriteOutcome,
        now: int,
        index_ops: list[tuple[str, Memory]],
    ) -> None:
        tenant = principal.tenant
        if op.kind == "delete":
            memory = txn.get(tenant, op.memory_id)
            if memory is None or memory.is_expired(now):
                raise NotFoundError(f"memory {op.memory_id!r} not found", metadata={"id": op.memory_id})
            _check_etag(memory, op.etag)
            revision = txn.next_revision()
            txn.delete(dataclasses.replace(memory, revision=revision), api_key_id=principal.api_key_id)
            index_ops.append(("remove", memory))
            outcome.revision = revision
            return
        draft = op.draft
        if "links" in prep.mask:
            for i, link in enumerate(draft.links):
                target = txn.get(tenant, link.target_id)
                if target is None or target.is_expired(now):
                    raise FailedPreconditionError(
                        f"link target {link.target_id!r} not found",
                        reason="LINK_TARGET_NOT_FOUND",
                        metadata={"target_id": link.target_id, "index": str(i)},
                    )
        if op.kind == "create":
            self._create(principal, txn, op, prep, outcome, now, index_ops)
            return
        before = txn.get(tenant, op.memory_id)
        if before is None or before.is_expired(now):
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
        changed = [
            name for name in UPDATABLE
            if name in prep.mask and _field_changed(before, changes, name)
        ]
        revision = txn.next_revision()
        after = dataclasses.replace(
            before, **changes, version=before.version + 1, revision=revision, update_time_us=now
        )
        after = txn.update(before, after, changed, api_key_id=principal.api_key_id)
        outcome.memory = after
        outcome.revision = revision
        index_ops.append(("upsert", after))

    def _create(
        self,
        principal: Principal,
        txn: WriteTxn,
        op: WriteOp,
        prep: _Prepared,
        outcome: WriteOutcome,
        now: int,
        index_ops: list[tuple[str, Memory]],
    ) -> None:
        draft = op.draft
        tenant = principal.tenant
        digest = content_hash(draft.content)
        existing = None
        if op.dedup.mode is DedupMode.EXACT:
            existing = txn.find_by_content_hash(tenant, draft.scope, digest)
            outcome.similarity = 1.0 if existing else 0.0
        elif op.dedup.mode is DedupMode.SEMANTIC:
            existing, outcome.similarity = self._nearest_in_scope(tenant, draft.scope, prep.vector, op.dedup.threshold, now)
        if existing is not None and not existing.is_expired(now):
            outcome.deduplicated = True
            outcome.memory = existing
            if op.dedup.merge:
                merged_tags = tuple(dict.fromkeys(existing.tags + prep.tags))
                merged_meta = {**existing.metadata, **draft.metadata}
                if merged_tags != existing.tags or merged_meta != dict(existing.metadata):
                    revision = txn.next_revision()
                    after = dataclasses.replace(
                        existing, tags=merged_tags, metadata=merged_meta,
                        version=existing.version + 1, revision=revision, update_time_us=now,
                    )
                    changed = [n for n, same in (("tags", merged_tags == existing.tags),
                                                 ("metadata", merged_meta == dict(existing.metadata))) if not same]
                    outcome.memory = txn.update(existing, after, changed, api_key_id=principal.api_key_id)
                    outcome.revision = revision
                    index_ops.append(("upsert", outcome.memory))
            return
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
            create_time_us=now,
            update_time_us=now,
            expire_time_us=prep.expire_us,
            version=1,
            revision=revision,
            embedding=prep.vector,
        )
        outcome.memory = txn.insert(memory, api_key_id=principal.api_key_id)
        outcome.revision = revision
        index_ops.append(("upsert", outcome.memory))

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
        with self._write_lock:
            removed: list[Memory] = []
            with self.store.write() as txn:
                for memory in expired:
                    current = txn.get(memory.tenant, memory.id)
                    if current is None or not current.is_expired(now):
                        continue
                    revision = txn.next_revision()
                    txn.delete(dataclasses.replace(current, revision=revision), change_type=ChangeType.EXPIRE)
                    removed.append(current)
            self._apply_index([("remove", m) for m in removed])
        return len(removed)

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
            ShardStats(s.shard_id, s.kind, s.vector_count, s.dimension, s.memory_bytes,
                       s.snapshot_revision, s.kind_reason)
            for s in self.index.shards()
        ]
        return Stats(
            tenants=tenants,
            shards=shards,
            caches=self._cache_stats(),
            revision=self.store.current_revision(),
            oldest_revision=self.store.oldest_revision(),
            embedding_model=self.embedder.model_id,
            dimension=self.embedder.dimension,
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
            return ConsistencyReport(len(store_keys), len(index_keys), found, repaired)


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
        o if o.error is not None
        else WriteOutcome(o.kind, error=AbortedError("not applied: another operation of the atomic batch failed"))
        for o in outcomes
    ]


def _check_etag(memory: Memory, etag: str) -> None:
    if etag and etag != memory.etag:
        raise FailedPreconditionError(
            f"memory {memory.id!r} changed since etag {etag!r}",
            reason="ETAG_MISMATCH",
            metadata={"current_etag": memory.etag},
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
        return now + draft.ttl_us
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
        if not words or len(words) > 2 or words[0] not in ORDER_FIELDS or (
            len(words) == 2 and words[1].lower() not in ("asc", "desc")
        ):
            raise invalid(
                "INVALID_ORDER_BY", "order_by",
                f"expected fields of {', '.join(ORDER_FIELDS)} each optionally followed by asc or desc, got {part.strip()!r}",
            )
        terms.append(OrderTerm(words[0], len(words) == 2 and words[1].lower() == "desc"))
    if len({t.field for t in terms}) != len(terms):
        raise invalid("INVALID_ORDER_BY", "order_by", "names a field twice")
    return terms


def _sort_key(memory: Memory, order: Sequence[OrderTerm]) -> list[Any]:
    values: dict[str, Any] = {
        "create_time": memory.create_time_us,
        "update_time": memory.update_time_us,
        "id": memory.id,
    }
    return [values[t.field] for t in order] + [memory.id]
