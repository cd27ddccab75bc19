"""The exact reference index: brute force over every matching entry.

Tests hold the production index to this one, so it favours being obviously
right over being fast: one dict of entries, turned into parallel arrays after
each write; a query is a boolean mask written out field by field, one matrix
product over the matches and one full sort. It shares no search code with the
sharded index (not even its top-k helper), so a bug there cannot hide by
appearing on both sides of a comparison.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mnemo_server.index import snapshot
from mnemo_server.index.base import (
    IndexEntry,
    IndexKind,
    IndexQuery,
    Neighbor,
    ShardInfo,
    VectorIndex,
)
from mnemo_server.models import Scope, Vector

log = logging.getLogger(__name__)
#: Scope() as a default argument, built once (Scope is frozen).
ANY_SCOPE = Scope()

FORMAT = "mnemo.index.numpy-flat/1"
_FIELDS = ("user_id", "agent_id", "run_id")


@dataclass(frozen=True, slots=True)
class _Columns:
    keys: npt.NDArray[np.int64]
    vectors: npt.NDArray[np.float32]
    tenants: npt.NDArray[np.str_]
    user_id: npt.NDArray[np.str_]
    agent_id: npt.NDArray[np.str_]
    run_id: npt.NDArray[np.str_]


def _scope_values(scope: Scope) -> tuple[str, str, str]:
    return scope.user_id, scope.agent_id, scope.run_id


class NumpyFlatIndex(VectorIndex):
    """Exact inner-product search over all entries; every method takes one lock."""

    def __init__(self, dimension: int) -> None:
        self._d = dimension
        self._entries: dict[int, IndexEntry] = {}
        self._lock = threading.RLock()
        self._revision = 0
        self._cache: _Columns | None = None

    @property
    def dimension(self) -> int:
        return self._d

    def upsert(self, entries: Sequence[IndexEntry]) -> None:
        with self._lock:
            for entry in entries:
                vector = np.asarray(entry.vector, dtype=np.float32)
                if vector.shape != (self._d,):
                    raise ValueError(f"vector of shape {vector.shape}, index dimension {self._d}")
                self._entries[entry.key] = IndexEntry(entry.key, entry.tenant, entry.scope, vector.copy())
            self._cache = None

    def remove(self, keys: Iterable[int]) -> None:
        with self._lock:
            for key in keys:
                self._entries.pop(key, None)
            self._cache = None

    def search(self, vectors: np.ndarray, queries: Sequence[IndexQuery], k: int) -> list[list[Neighbor]]:
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(queries), self._d)
        with self._lock:
            return [self._search_one(matrix[i], q, k) for i, q in enumerate(queries)]

    def _search_one(self, vector: Vector, query: IndexQuery, k: int) -> list[Neighbor]:
        columns = self._columns()
        match = columns.tenants == query.tenant
        for name, value in zip(_FIELDS, _scope_values(query.scope), strict=True):
            if value:
                match &= getattr(columns, name) == value
        if query.keys is not None:
            match &= np.isin(columns.keys, np.fromiter(query.keys, np.int64, len(query.keys)))
        if query.exclude:
            match &= ~np.isin(columns.keys, np.fromiter(query.exclude, np.int64, len(query.exclude)))
        if k <= 0 or not match.any():
            return []
        keys = columns.keys[match]
        scores = (columns.vectors @ vector)[match]
        order = np.lexsort((keys, -scores))[:k]
        return [Neighbor(int(keys[i]), float(scores[i])) for i in order]

    def _columns(self) -> _Columns:
        """Every entry as parallel arrays, rebuilt after each write."""
        if self._cache is None:
            entries = list(self._entries.values())
            self._cache = _Columns(
                keys=np.array([e.key for e in entries], dtype=np.int64),
                vectors=(
                    np.stack([e.vector for e in entries]) if entries else np.zeros((0, self._d), np.float32)
                ),
                tenants=np.array([e.tenant for e in entries], dtype=np.str_),
                user_id=np.array([e.scope.user_id for e in entries], dtype=np.str_),
                agent_id=np.array([e.scope.agent_id for e in entries], dtype=np.str_),
                run_id=np.array([e.scope.run_id for e in entries], dtype=np.str_),
            )
        return self._cache

    def count(self, tenant: str | None = None, scope: Scope = ANY_SCOPE) -> int:
        with self._lock:
            return sum(
                1
                for e in self._entries.values()
                if (tenant is None or e.tenant == tenant) and scope.contains(e.scope)
            )

    def keys(self) -> set[int]:
        with self._lock:
            return set(self._entries)

    def get_vector(self, key: int) -> Vector | None:
        with self._lock:
            entry = self._entries.get(key)
            return None if entry is None else entry.vector.copy()

    def shards(self, tenant: str | None = None) -> list[ShardInfo]:
        with self._lock:
            n = sum(1 for e in self._entries.values() if tenant is None or e.tenant == tenant)
            return [
                ShardInfo(
                    shard_id="flat",
                    kind=IndexKind.FLAT,
                    vector_count=n,
                    dimension=self._d,
                    memory_bytes=n * (4 * self._d + 200),
                    snapshot_revision=self._revision,
                    kind_reason="exact reference index",
                )
            ]

    def save(self, directory: Path, revision: int) -> int:
        with self._lock:
            entries = sorted(self._entries.values(), key=lambda e: e.key)

            def fill(tmp: Path) -> dict[str, Any]:
                keys = np.array([e.key for e in entries], dtype=np.int64)
                vectors = (
                    np.stack([e.vector for e in entries])
                    if entries
                    else np.zeros((0, self._d), dtype=np.float32)
                )
                np.savez(tmp / "entries.npz", keys=keys, vectors=vectors)
                return {
                    "format": FORMAT,
                    "revision": revision,
                    "dimension": self._d,
                    "crc32": snapshot.checksum(keys) ^ snapshot.checksum(vectors),
                    "entries": [
                        [e.tenant, e.scope.user_id, e.scope.agent_id, e.scope.run_id] for e in entries
                    ],
                }

            written = snapshot.write(directory, revision, fill)
            self._revision = revision
            return written

    def load(self, directory: Path) -> int | None:
        with self._lock:
            self._entries = {}
            self._cache = None
            try:
                path, manifest = snapshot.read_manifest(directory)
                if manifest.get("format") != FORMAT or manifest.get("dimension") != self._d:
                    raise snapshot.SnapshotError("other format or dimension")
                # Open the file ourselves: np.load leaks its handle when the
                # zip directory is damaged.
                with (
                    open(path / "entries.npz", "rb") as f,
                    np.load(f, allow_pickle=False) as data,
                ):
                    keys, vectors = data["keys"], data["vectors"]
                rows = manifest["entries"]
                if (
                    keys.dtype != np.int64
                    or vectors.dtype != np.float32
                    or vectors.shape != (len(rows), self._d)
                    or keys.shape != (len(rows),)
                    or snapshot.checksum(keys) ^ snapshot.checksum(vectors) != manifest["crc32"]
                ):
                    raise snapshot.SnapshotError("entries do not match the manifest")
                entries = {}
                for key, vector, (tenant, user, agent, run) in zip(keys.tolist(), vectors, rows, strict=True):
                    entries[key] = IndexEntry(key, tenant, Scope(user, agent, run), vector)
                if len(entries) != len(rows):
                    raise snapshot.SnapshotError("duplicate keys")
                revision = int(manifest["revision"])
            except Exception as exc:
                # Any unreadable snapshot means the same thing: rebuild.
                log.warning("index snapshot in %s not usable: %s", directory, exc)
                return None
            self._entries = entries
            self._cache = None
            self._revision = revision
            return revision
