"""A miniature memory server for the cache tests.

A real SqliteStore, exact search by brute force, and the caches used the way
MemoryService is meant to use them: look up before reading data, store or
fill after computing, invalidate after every commit. `exact_search` and
`store.get` are the oracles the cached answers must equal.

Run as a script it is a second server process sharing the SQLite file and
the Redis: `python mini_server.py DB URL NAMESPACE JSON-OPERATION`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from mnemo_server.cache import CachedHit, Caches, search_fingerprint
from mnemo_server.models import ChangeType, Memory, Scope, Vector, content_hash, now_us
from mnemo_server.store.base import RecordStore
from mnemo_server.store.sqlite import SqliteStore

#: A vector as the tests give it.
VectorLike: TypeAlias = Sequence[float] | npt.NDArray[np.floating[Any]]
#: (id, score, content, metadata) of each hit: what a client would see.
Hit = tuple[str, float, str, dict[str, Any]]


class MiniServer:
    def __init__(self, store: RecordStore, caches: Caches, *, clock: Callable[[], int] = now_us) -> None:
        self.store = store
        self.caches = caches
        self.clock = clock

    # -- writes: commit, then invalidate, then acknowledge ---------------------------

    def create(
        self,
        tenant: str,
        memory_id: str,
        scope: Scope,
        content: str,
        vector: VectorLike,
        *,
        expire_time_us: int | None = None,
    ) -> Memory:
        now = self.clock()
        with self.store.write() as txn:
            memory = txn.insert(
                Memory(
                    tenant=tenant,
                    id=memory_id,
                    scope=scope,
                    content=content,
                    content_hash=content_hash(content),
                    embedding_model="test",
                    create_time_us=now,
                    update_time_us=now,
                    expire_time_us=expire_time_us,
                    version=1,
                    revision=txn.next_revision(),
                    embedding=_unit(vector),
                )
            )
        self.caches.invalidate(tenant, [(memory.id, memory.scope)])
        return memory

    def update(
        self,
        tenant: str,
        memory_id: str,
        *,
        content: str | None = None,
        vector: VectorLike | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Memory:
        now = self.clock()
        with self.store.write() as txn:
            before = txn.get(tenant, memory_id)
            assert before is not None
            changes: dict[str, Any] = {}
            if content is not None:
                changes.update(content=content, content_hash=content_hash(content))
            if vector is not None:
                changes["embedding"] = _unit(vector)
            if metadata is not None:
                changes["metadata"] = metadata
            after = dataclasses.replace(
                before,
                **changes,
                version=before.version + 1,
                revision=txn.next_revision(),
                update_time_us=now,
            )
            after = txn.update(before, after, sorted(changes))
        self.caches.invalidate(tenant, [(after.id, after.scope)])
        return after

    def delete(self, tenant: str, memory_id: str) -> None:
        with self.store.write() as txn:
            memory = txn.get(tenant, memory_id)
            assert memory is not None
            txn.delete(dataclasses.replace(memory, revision=txn.next_revision()))
        self.caches.invalidate(tenant, [(memory.id, memory.scope)])

    def sweep_expired(self) -> int:
        now = self.clock()
        gone: dict[str, list[tuple[str, Scope]]] = {}
        with self.store.write() as txn:
            for memory in self.store.expired(now, limit=1000):
                txn.delete(
                    dataclasses.replace(memory, revision=txn.next_revision()), change_type=ChangeType.EXPIRE
                )
                gone.setdefault(memory.tenant, []).append((memory.id, memory.scope))
        for tenant, changed in gone.items():
            self.caches.invalidate(tenant, changed)
        return sum(map(len, gone.values()))

    def forget(self, tenant: str, scope: Scope) -> int:
        with self.store.write() as txn:
            victims = txn.select_for_forget(tenant, scope=scope, filter=None, limit=10**6)
            for memory in victims:
                txn.delete(dataclasses.replace(memory, revision=txn.next_revision()))
        self.caches.invalidate(tenant, [(m.id, m.scope) for m in victims])
        return len(victims)

    # -- reads: look up first, compute on a miss, store what was computed ------------------

    def get(self, tenant: str, memory_id: str) -> Memory | None:
        now = self.clock()
        lookup = self.caches.records.lookup(tenant, [memory_id])
        memory = lookup.found.get(memory_id)
        if memory is None:
            memory = self.store.get(tenant, memory_id)
            if memory is not None:
                self.caches.records.fill(lookup, [memory], now_us=now)
        return None if memory is None or memory.is_expired(now) else memory

    def search(self, tenant: str, scope: Scope, vector: VectorLike, *, top_k: int = 3) -> list[Hit]:
        now = self.clock()
        fingerprint = search_fingerprint(model_id="", vector=_unit(vector), top_k=top_k)
        [lookup] = self.caches.search.lookup(tenant, [(scope, fingerprint)])
        if lookup.hits is None:
            found = self._exact(tenant, scope, vector, top_k, now)
            self.caches.search.store(
                [(lookup, [CachedHit(m.id, m.key, s, m.expire_time_us) for m, s in found])], now_us=now
            )
            return [_hit(m, s) for m, s in found]
        records = self.caches.records.lookup(tenant, [h.id for h in lookup.hits])
        memories = dict(records.found)
        if records.missing:
            loaded = self.store.get_by_keys([h.key for h in lookup.hits if h.id in records.missing])
            self.caches.records.fill(records, loaded.values(), now_us=now)
            memories.update({m.id: m for m in loaded.values()})
        return [
            _hit(m, h.score)
            for h in lookup.hits
            if (m := memories.get(h.id)) is not None and m.tenant == tenant and not m.is_expired(now)
        ]

    def exact_search(self, tenant: str, scope: Scope, vector: VectorLike, *, top_k: int = 3) -> list[Hit]:
        return [_hit(m, s) for m, s in self._exact(tenant, scope, vector, top_k, self.clock())]

    def _exact(
        self, tenant: str, scope: Scope, vector: VectorLike, top_k: int, now: int
    ) -> list[tuple[Memory, float]]:
        query = _unit(vector)
        rows = [
            r
            for batch in self.store.iter_vectors()
            for r in batch
            if r.tenant == tenant and scope.contains(r.scope)
        ]
        memories = self.store.get_by_keys([r.key for r in rows])
        scored = [
            (memories[r.key], float(np.dot(query, r.vector)))
            for r in rows
            if r.key in memories and not memories[r.key].is_expired(now)
        ]
        scored.sort(key=lambda ms: (-ms[1], ms[0].id))
        return scored[:top_k]


def _unit(vector: VectorLike) -> Vector:
    v = np.asarray(vector, dtype=np.float32)
    return v / np.float32(np.linalg.norm(v))


def _hit(memory: Memory, score: float) -> Hit:
    return (memory.id, score, memory.content, dict(memory.metadata))


def main(argv: list[str]) -> None:
    from mnemo_server.cache.redis import RedisCache

    db, url, namespace, operation = argv
    op = json.loads(operation)
    caches = Caches.over(RedisCache(url, namespace=namespace, op_timeout_s=1.0, connect_timeout_s=5.0))
    server = MiniServer(SqliteStore(Path(db)), caches)
    kind = op.pop("op")
    if "scope" in op:
        op["scope"] = Scope(*op["scope"])
    if kind == "sweep_expired":
        server.sweep_expired()
    else:
        getattr(server, kind)(op.pop("tenant"), *op.pop("args", []), **op)
    assert caches.pending_invalidations == 0, "the second process could not deliver its invalidations"
    server.store.close()
    caches.close()


if __name__ == "__main__":
    main(sys.argv[1:])
