"""Domain values shared by every layer. Plain frozen dataclasses; no protobuf here.

Times are integer microseconds since the Unix epoch (UTC): exact, cheap to
compare, and safe to use in page tokens and SQL ordering.
"""

from __future__ import annotations

import enum
import hashlib
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]

#: The tenant of every request until authentication lands.
DEFAULT_TENANT = "default"


def now_us() -> int:
    """The current time in microseconds since the epoch."""
    return time.time_ns() // 1000


class MemoryKind(enum.IntEnum):
    """The kind of a memory; values match mnemo.v1.MemoryKind."""

    EPISODIC = 1
    SEMANTIC = 2
    PROCEDURAL = 3


class ChangeType(enum.IntEnum):
    """What a change did; values match mnemo.v1.ChangeType."""

    CREATE = 1
    UPDATE = 2
    DELETE = 3
    EXPIRE = 4


@dataclass(frozen=True, slots=True)
class Scope:
    """user/agent/run; empty fields are unset (on a query: match anything)."""

    user_id: str = ""
    agent_id: str = ""
    run_id: str = ""

    def is_empty(self) -> bool:
        return not (self.user_id or self.agent_id or self.run_id)

    def contains(self, other: Scope) -> bool:
        """Whether `other` (a memory's scope) lies inside this query scope."""
        return (
            (not self.user_id or self.user_id == other.user_id)
            and (not self.agent_id or self.agent_id == other.agent_id)
            and (not self.run_id or self.run_id == other.run_id)
        )


@dataclass(frozen=True, slots=True)
class Link:
    """A directed link to another memory of the same tenant."""

    target_id: str
    relation: str
    weight: float = 0.0


def normalize_content(content: str) -> str:
    """The form of content that exact deduplication compares."""
    return " ".join(unicodedata.normalize("NFC", content).split())


def content_hash(content: str) -> str:
    """Lowercase hex SHA-256 of the normalized content."""
    return hashlib.sha256(normalize_content(content).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Memory:
    """One stored memory. `key` is the store's integer row key, also the
    memory's id in the vector index; it is never shown to clients."""

    tenant: str
    id: str
    scope: Scope
    content: str
    kind: MemoryKind = MemoryKind.EPISODIC
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    links: tuple[Link, ...] = ()
    pinned: bool = False
    embedding_model: str = ""
    content_hash: str = ""
    create_time_us: int = 0
    update_time_us: int = 0
    expire_time_us: int | None = None
    last_retrieve_time_us: int | None = None
    version: int = 0
    revision: int = 0
    key: int = 0
    embedding: Vector | None = field(default=None, compare=False, repr=False)

    @property
    def etag(self) -> str:
        """Opaque; changes with every change because revisions never repeat."""
        digest = hashlib.blake2b(f"{self.tenant}\0{self.id}\0{self.revision}".encode(), digest_size=8)
        return digest.hexdigest()

    def is_expired(self, at_us: int) -> bool:
        return self.expire_time_us is not None and self.expire_time_us <= at_us


@dataclass(frozen=True, slots=True)
class HitExplanation:
    """How a hit was ranked (fusion.explain): each half's score and rank
    (from 1), None where that half did not find the hit or did not run, and
    the fused score in hybrid mode."""

    vector_score: float | None = None
    vector_rank: int | None = None
    keyword_score: float | None = None
    keyword_rank: int | None = None
    fused_score: float | None = None
    #: The score adjustments (adjust.py) started from, and the factors used.
    base_score: float | None = None
    recency_factor: float | None = None
    age_seconds: float | None = None
    importance: float | None = None
    importance_factor: float | None = None
    pin_factor: float | None = None
    #: Whether the reranker ordered the hit (None: no rerank was asked), and its score.
    reranked: bool | None = None
    rerank_score: float | None = None


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A memory and how well it matches the query: cosine similarity,
    BM25 or RRF score by search mode (fusion.py)."""

    memory: Memory
    score: float
    explanation: HitExplanation | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the tenant every read and write is confined to and,
    for a restricted API key, the only users and agents it may reach."""

    tenant: str = DEFAULT_TENANT
    api_key_id: str = ""
    user_ids: tuple[str, ...] = ()
    agent_ids: tuple[str, ...] = ()

    @property
    def restricted(self) -> bool:
        return bool(self.user_ids or self.agent_ids)

    def allows(self, scope: Scope) -> bool:
        """Whether a memory of `scope`, or a query confined to `scope`, lies
        within the key's users and agents (an empty field is not a user)."""
        return (not self.user_ids or scope.user_id in self.user_ids) and (
            not self.agent_ids or scope.agent_id in self.agent_ids
        )


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the revision log."""

    revision: int
    tenant: str
    memory_id: str
    key: int
    change_type: ChangeType
    scope: Scope
    time_us: int


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One entry of a memory's history."""

    memory_id: str
    version: int
    revision: int
    change_type: ChangeType
    time_us: int
    api_key_id: str
    before: Memory | None
    after: Memory | None
    changed_fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key as stored: never its secret, only a salted hash of it.
    Times are microseconds since the epoch; `role` is reader, writer or admin."""

    id: str
    tenant: str
    role: str
    user_ids: tuple[str, ...]
    agent_ids: tuple[str, ...]
    display_name: str
    create_time_us: int
    salt: bytes
    secret_hash: bytes
    expire_time_us: int | None = None
    revoke_time_us: int | None = None
    last_use_time_us: int | None = None
