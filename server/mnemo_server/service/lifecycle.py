"""The lifecycle of memories after they are written: expiry, forgetting,
retention, export and import, re-embedding, and the periodic upkeep.

Every delete here goes through effects.py (`retire`, or `remove` and
`unlink` for a forget), so the index, caches and feed learn of it like of
any other write.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager

from mnemo_server import filters, validation
from mnemo_server.errors import AlreadyExistsError, invalid
from mnemo_server.models import ChangeType, Link, Memory, Principal, Scope
from mnemo_server.pagination import fingerprint
from mnemo_server.service import idempotency
from mnemo_server.service.effects import Effects, publish, remove, retire, unlink
from mnemo_server.service.recovery import Recovery
from mnemo_server.service.types import ForgetResult, ImportReport, MemoryDraft, WriteOp
from mnemo_server.service.writes import Writes, chosen_id_error
from mnemo_server.store.base import StoredOutcome

log = logging.getLogger("mnemo.service")


class Lifecycle(Writes, Recovery):
    """TTL sweeps, forget, retention, import/export, re-embedding, upkeep."""

    # -- expiry ------------------------------------------------------------------

    def sweep_expired(self, *, limit: int = 1000) -> int:
        """Deletes memories whose time has passed, logging EXPIRE changes."""
        now = self.clock()
        expired = self.store.expired(now, limit=limit)
        if not expired:
            return 0
        effects = self._retire_each(expired, ChangeType.EXPIRE, now, still=lambda m: m.is_expired(now))
        return effects.count(ChangeType.EXPIRE)

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
        forget_fingerprint = fingerprint("forget", scope, filter_text)
        effects = Effects()
        ids: list[str] = []
        revision = 0
        with self._write_lock:
            with self.store.write() as txn:
                if request_id:
                    replay = idempotency.replayed(
                        txn.get_idempotent(principal.tenant, request_id),
                        request_id=request_id,
                        fingerprint=forget_fingerprint,
                        now=now,
                        window_us=self._idempotency_window_us,
                    )
                    if replay is not None:
                        return ForgetResult(int(replay[0].similarity), [], replay[0].revision)
                victims = txn.select_for_forget(principal.tenant, scope=scope, filter=expr, limit=2**62)
                for memory in victims:
                    revision = remove(
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
                    # After every victim is gone: links among them need no new versions.
                    unlink(txn, principal.tenant, ids, now, effects, api_key_id=principal.api_key_id)
                if request_id:
                    # The count rides in `similarity`: no content, nothing to forget later.
                    txn.put_idempotent(
                        principal.tenant,
                        request_id,
                        fingerprint=forget_fingerprint,
                        outcomes=[StoredOutcome("forget", similarity=float(len(ids)), revision=revision)],
                        now_us=now,
                    )
            publish(self, effects)
        log.info("forgot %d memories of tenant %s", len(ids), principal.tenant)
        return ForgetResult(len(ids), ids[:1000], max((e.change.revision for e in effects.events), default=0))

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
            forbidden = chosen_id_error(principal, draft.id if chosen else "", "memory.id")
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
        effects = self._retire_each(victims.values(), ChangeType.DELETE, now, still=lambda m: not m.pinned)
        removed = effects.count(ChangeType.DELETE)
        log.info("retention removed %d memories", removed)
        return removed

    def upkeep(self, *, lead: bool = True) -> dict[str, int]:
        """The periodic chores: catching up with other processes' writes
        (which also ends inline cache answers once there are any), retrieval
        times, and when `lead` (the one process of a fleet that runs the
        shared work) expiry, retention, old request ids, and log compaction."""
        self._catch_up(force=True)
        self.flush_retrieved()  # not counted: searches note some nearly every interval
        if not lead:
            return {}
        done = {"expired": self.sweep_expired(), "retention": self.enforce_retention()}
        done["request_ids"] = self.store.purge_idempotency(
            before_us=self.clock() - self._idempotency_window_us
        )
        done["compacted"] = self.compact_feed()
        return done

    def flush_retrieved(self) -> int:
        """Writes the retrieval times searches noted since the last flush, in
        one store write; returns how many memories it touched. Searches only
        note them in memory (no store write on a search's path): upkeep
        flushes every `server.sweep_interval_s` and the App once more at
        shutdown, so a crash loses at most one interval of retrieval times
        (they order retention's least_recently_retrieved eviction only)."""
        with self._retrieved_lock:
            keys, self._retrieved = sorted(self._retrieved), set()
        if keys:
            try:
                self.store.touch_retrieved(keys, self.clock())
            except BaseException:
                with self._retrieved_lock:
                    self._retrieved.update(keys)  # kept for the next flush
                raise
            if self.records is not None:
                # Their decoded copies carry the old retrieval times (recency on
                # last_retrieve_time ranks by them).
                self.records.invalidate(keys)
        return len(keys)

    def _retire_each(
        self, victims: Iterable[Memory], change_type: ChangeType, now: int, *, still: Callable[[Memory], bool]
    ) -> Effects:
        """Deletes each victim that, read again in the transaction, is
        `still` due (and the links to it), then publishes what that means."""
        effects = Effects()
        with self._write_lock:
            with self.store.write() as txn:
                for memory in victims:
                    current = txn.get(memory.tenant, memory.id)
                    if current is not None and still(current):
                        retire(txn, current, change_type, now, effects)
            publish(self, effects)
        return effects
