"""Recovery: bringing the index up to date with the store, and keeping it so.

The store is the source of truth and the index derived data. At start-up
`load` takes the last index snapshot and replays the revision log after it
(or rebuilds the index when there is no usable snapshot); `catch_up` applies
what other processes sharing the store committed since; `snapshot` writes
the index down so the next start replays less; `check_consistency` compares
the two and repairs the index.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from mnemo_server import storage
from mnemo_server.errors import OutOfRangeError
from mnemo_server.index import snapshot_check
from mnemo_server.index.base import IndexEntry
from mnemo_server.service.state import ServiceState
from mnemo_server.service.types import ConsistencyReport, Inconsistency, SnapshotInfo

log = logging.getLogger("mnemo.service")


class Recovery(ServiceState):
    """Load, replay, catch-up, snapshots and the consistency check."""

    def load(self) -> None:
        """Brings the index up to date with the store: the last snapshot plus
        a replay of the revision log, or a rebuild when there is no usable
        snapshot. Also loads expiry deadlines."""
        started = time.monotonic()
        self._check_model()
        # Read before anything is loaded: everything up to it is in the index
        # once the replay or rebuild below ends, and what other processes
        # commit meanwhile is caught up later (reading it after the replay
        # would mark a commit that landed in between applied, never indexed).
        applied = self.store.current_revision()
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
        self._applied_revision = applied
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
        if self.records is not None:
            self.records.clear()
        if self.caches is not None:
            self.caches.invalidate_tenants(t.tenant for t in self.store.tenant_counts())
        if done and self.leads():
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
            if self.records is not None:
                self.records.invalidate(c.key for c in changes)
            if self.caches is not None:
                # Another process (or a crash) wrote these without this
                # process's caches seeing them.
                self.caches.invalidate_changes(changes)
            replayed += len(changes)
            revision = changes[-1].revision

    def _catch_up(self, *, force: bool = False) -> bool:
        """Applies changes other processes sharing the store committed, so a
        search never misses a write another replica acknowledged; True when
        there were any. One read of the store's revision when there are none;
        in a fleet of workers one memory read of the revision they announce
        (`force`: ask the store anyway, as upkeep does)."""
        signal = self.revision_signal
        if signal is not None and not force and signal.latest() <= self._applied_revision:
            return False
        if self.store.current_revision() <= self._applied_revision:
            return False
        with self._write_lock:
            target = self.store.current_revision()
            if target <= self._applied_revision:
                return False
            changes = self._replay(self._applied_revision)
            self._applied_revision = max(self._applied_revision, target)
            if signal is None or target > signal.latest():
                # A writer that announces nothing: from now on no search is
                # answered before this check (search.py).
                self._shared_store = True
            log.debug("caught up %d changes from other processes", changes)
            return True

    def catch_up_to(self, min_revision: int) -> int:
        """Brings the index to at least `min_revision` (a read's consistency
        token) and returns the revision it has applied. Refuses a revision
        the store has not committed (OUT_OF_RANGE, REVISION_AHEAD): no
        catch-up could reach it. Blocks while another thread catches up or
        writes (the write lock); the caller bounds its own wait
        (api/consistency.py) and is woken by the applied revision's advance."""
        if min_revision <= self._applied_revision:
            return self._applied_revision
        current = self.store.current_revision()
        if min_revision > current:
            raise OutOfRangeError(
                f"revision {min_revision} is ahead of the store, which is at revision {current}",
                reason="REVISION_AHEAD",
                metadata={"current_revision": str(current)},
            )
        self._catch_up(force=True)
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

    # -- consistency -------------------------------------------------------------

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
                if repaired and self.records is not None:
                    self.records.clear()
                if repaired and self.caches is not None:
                    self.caches.invalidate_tenants(t.tenant for t in self.store.tenant_counts())
            return ConsistencyReport(len(store_keys), len(index_keys), found, repaired)
