"""The vector index seam.

The index is derived data: the store is the source of truth and the index can
always be rebuilt from it. Vectors are float32, L2-normalized, so inner
product is cosine similarity. Every entry carries its tenant and scope so a
search never leaves its tenant and can be confined to a scope cheaply.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnemo_server.models import Scope, Vector


class IndexKind(enum.IntEnum):
    """Values match mnemo.v1.IndexKind."""

    FLAT = 1
    HNSW = 2
    IVF = 3


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One vector: `key` is the store's row key, unique across tenants."""

    key: int
    tenant: str
    scope: Scope
    vector: Vector


@dataclass(frozen=True, slots=True)
class IndexQuery:
    """Where one query vector may look.

    tenant: required; nothing outside it is ever returned.
    scope: non-empty fields must match exactly.
    keys: when not None, only these keys (the result of a store-side filter,
        already inside tenant and scope) may be returned.
    exclude: keys that must not be returned (for example expired memories
        the sweeper has not purged yet).
    """

    tenant: str
    scope: Scope = Scope()
    keys: frozenset[int] | None = None
    exclude: frozenset[int] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Neighbor:
    key: int
    score: float


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """What GetStats reports about one shard."""

    shard_id: str
    kind: IndexKind
    vector_count: int
    dimension: int
    memory_bytes: int
    snapshot_revision: int
    kind_reason: str


class VectorIndex(ABC):
    """A searchable set of vectors keyed by int, partitioned by tenant.

    Implementations are thread-safe: searches may run concurrently with each
    other and with (serialized) writes.
    """

    @property
    @abstractmethod
    def dimension(self) -> int: ...

    @abstractmethod
    def upsert(self, entries: Sequence[IndexEntry]) -> None:
        """Adds entries, replacing any with the same key (even across tenants)."""

    @abstractmethod
    def remove(self, keys: Iterable[int]) -> None:
        """Removes keys; unknown keys are ignored."""

    @abstractmethod
    def search(self, vectors: np.ndarray, queries: Sequence[IndexQuery], k: int) -> list[list[Neighbor]]:
        """For each row of `vectors` (shape (n, dimension)) with its query, the
        best `k` neighbors, highest score first, ties broken by lower key."""

    @abstractmethod
    def count(self, tenant: str | None = None, scope: Scope = Scope()) -> int:
        """How many vectors the index holds (in a tenant, in a scope)."""

    @abstractmethod
    def keys(self) -> set[int]:
        """Every key held (for consistency checks)."""

    @abstractmethod
    def get_vector(self, key: int) -> Vector | None:
        """The vector held for a key, or None."""

    @abstractmethod
    def shards(self, tenant: str | None = None) -> list[ShardInfo]:
        """What each shard is and why: every shard, or one tenant's only."""

    @abstractmethod
    def save(self, directory: Path, revision: int) -> int:
        """Writes a snapshot consistent with `revision` atomically (a crash
        mid-write leaves the previous snapshot usable); returns bytes written."""

    def close(self) -> None:
        """Stops background work (graph building). Searches and writes still
        work; rows written afterwards stay in their shard's exact tail (up to
        its max_tail). Idempotent. Nothing to stop by default."""
        return None

    @abstractmethod
    def load(self, directory: Path) -> int | None:
        """Replaces the contents with the snapshot in `directory`; returns its
        revision, or None when there is no usable snapshot (missing, corrupt,
        other dimension), in which case the index is left empty."""
