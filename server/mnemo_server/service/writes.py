"""Writes: creates, updates and deletes, alone or as a (possibly atomic) batch.

Validate and embed outside any lock (the model is the slow part) -> one
store transaction (record, history, revision log, request ids) -> publish
the effects (index, expiry, caches, feed) under the write lock, so the index
sees changes in revision order -> acknowledge. The store is the source of
truth: a crash between commit and index apply is repaired at start-up by
replaying the revision log over the last index snapshot (recovery.py).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mnemo_server import telemetry, validation
from mnemo_server.embed.vectors import check_vector
from mnemo_server.errors import (
    AbortedError,
    FailedPreconditionError,
    FieldViolation,
    MnemoError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    invalid,
)
from mnemo_server.index.base import IndexQuery
from mnemo_server.models import ChangeType, Memory, Principal, Scope, Vector, content_hash
from mnemo_server.service import idempotency
from mnemo_server.service.effects import Effects, publish, retire
from mnemo_server.service.state import ServiceState
from mnemo_server.service.types import (
    CLIENT_MODEL,
    IMMUTABLE,
    UPDATABLE,
    DedupMode,
    MemoryDraft,
    WriteOp,
    WriteOutcome,
)
from mnemo_server.store.base import WriteTxn


class _Rollback(Exception):
    """Raised inside an atomic batch to undo it after recording the failure."""


class Writes(ServiceState):
    """CreateMemory, UpdateMemory, DeleteMemory and BatchWriteMemories."""

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
            batch_fingerprint = idempotency.ops_fingerprint(ops, atomic)
            replay = idempotency.replayed(
                self.store.get_idempotent(principal.tenant, request_id),
                request_id=request_id,
                fingerprint=batch_fingerprint,
                now=now,
                window_us=self._idempotency_window_us,
            )
            if replay is not None:
                return [idempotency.restored(o) for o in replay]
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
        effects = Effects()
        with self._write_lock:
            try:
                with telemetry.span("store.write"), self.store.write() as txn:
                    for i, op in enumerate(ops):
                        if outcomes[i].error is not None:
                            continue
                        op_effects = Effects()
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
                            outcomes=[idempotency.stored(o) for o in outcomes],
                            now_us=now,
                        )
            except _Rollback:
                return _abort_rest(outcomes)
            with telemetry.span("publish"):
                publish(self, effects)
        return outcomes

    @staticmethod
    def _check_chosen_id(principal: Principal, op: WriteOp) -> None:
        chosen = "" if op.id_assigned else op.draft.id
        error = chosen_id_error(principal, chosen, validation.join(op.field, "memory.id"))
        if error is not None:
            raise error

    def _apply_once(
        self,
        principal: Principal,
        txn: WriteTxn,
        op: WriteOp,
        prep: _Prepared,
        outcome: WriteOutcome,
        now: int,
        effects: Effects,
    ) -> None:
        """Applies one op, or replays its stored outcome when its request id
        was seen within the idempotency window."""
        if not op.request_id:
            self._apply(principal, txn, op, prep, outcome, now, effects)
            return
        op_fingerprint = idempotency.ops_fingerprint([op], False)
        replay = idempotency.replayed(
            txn.get_idempotent(principal.tenant, op.request_id),
            request_id=op.request_id,
            fingerprint=op_fingerprint,
            now=now,
            window_us=self._idempotency_window_us,
        )
        if replay is not None:
            restored = idempotency.restored(replay[0])
            outcome.memory, outcome.revision = restored.memory, restored.revision
            outcome.deduplicated, outcome.similarity = restored.deduplicated, restored.similarity
            return
        self._apply(principal, txn, op, prep, outcome, now, effects)
        txn.put_idempotent(
            principal.tenant,
            op.request_id,
            fingerprint=op_fingerprint,
            outcomes=[idempotency.stored(outcome)],
            now_us=now,
        )

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
        effects: Effects,
    ) -> None:
        tenant = principal.tenant
        if op.kind == "delete":
            memory = txn.get(tenant, op.memory_id)
            if memory is None or memory.is_expired(now) or not principal.allows(memory.scope):
                raise NotFoundError(f"memory {op.memory_id!r} not found", metadata={"id": op.memory_id})
            _check_etag(memory, op.etag)
            outcome.revision = retire(
                txn, memory, ChangeType.DELETE, now, effects, api_key_id=principal.api_key_id
            )
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
        effects: Effects,
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
                retire(txn, taken, ChangeType.EXPIRE, now, effects)
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


def chosen_id_error(principal: Principal, memory_id: str, field: str) -> MnemoError | None:
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
