"""Memories and stores for the store tests.

IMPLEMENTATIONS lists every RecordStore the contract tests run against; a
PostgresStore is the "postgresql" entry: a database per tmp dir.
Opening the same directory again reopens the same data: SqliteStore's file,
MemoryStore's MemoryData (kept per directory here, as a file would be).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mnemo_server.models import Memory, MemoryKind, Scope, content_hash
from mnemo_server.store.base import RecordStore
from mnemo_server.store.memory import MemoryStore
from mnemo_server.store.memory_state import MemoryData
from mnemo_server.store.sqlite import SqliteStore

DIM = 8
ALICE = Scope("alice")
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds

Opener = Callable[[Path], RecordStore]

_MEMORY_DATA: dict[Path, MemoryData] = {}


def open_memory_store(path: Path) -> MemoryStore:
    return MemoryStore(_MEMORY_DATA.setdefault(path, MemoryData()))


_PG_URLS: dict[Path, str] = {}


def open_postgres_store(path: Path) -> RecordStore:
    """A PostgresStore on the session's PostgreSQL (tests/pg_server.py): a
    fresh database per directory, the same one when the directory is reopened."""
    from mnemo_server.store.pg import PostgresStore

    from ..pg_server import fresh_database_url

    url = _PG_URLS.get(path)
    if url is None:
        url = _PG_URLS[path] = fresh_database_url()
    return PostgresStore(url, pool_size=4)


IMPLEMENTATIONS = [
    pytest.param(lambda path: SqliteStore(path / "mnemo.db"), id="sqlite"),
    pytest.param(open_memory_store, id="memory"),
    pytest.param(open_postgres_store, id="postgresql"),
]


def vector(seed: int, dim: int = DIM) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def memory(
    id: str,
    *,
    tenant: str = "t1",
    scope: Scope = ALICE,
    content: str | None = None,
    kind: MemoryKind = MemoryKind.EPISODIC,
    tags: Iterable[str] = (),
    metadata: Mapping[str, Any] | None = None,
    pinned: bool = False,
    create_time_us: int = T0,
    update_time_us: int | None = None,
    expire_time_us: int | None = None,
    seed: int | None = None,
) -> Memory:
    """A memory ready to insert (revision is set by `create`)."""
    text = content if content is not None else f"content of {id}"
    return Memory(
        tenant=tenant,
        id=id,
        scope=scope,
        content=text,
        kind=kind,
        tags=tuple(tags),
        metadata=dict(metadata or {}),
        pinned=pinned,
        embedding_model="test-model",
        content_hash=content_hash(text),
        create_time_us=create_time_us,
        update_time_us=create_time_us if update_time_us is None else update_time_us,
        expire_time_us=expire_time_us,
        version=1,
        embedding=vector(zlib.crc32(id.encode()) if seed is None else seed),
    )


def create(store: RecordStore, *memories: Memory) -> list[Memory]:
    """Inserts memories in one transaction, each at its own revision."""
    stored = []
    with store.write() as txn:
        for m in memories:
            stored.append(txn.insert(dataclasses.replace(m, revision=txn.next_revision())))
    return stored


def update(store: RecordStore, before: Memory, **changes: Any) -> Memory:
    with store.write() as txn:
        after = dataclasses.replace(
            before, version=before.version + 1, revision=txn.next_revision(), **changes
        )
        return txn.update(before, after, sorted(changes))


def delete(store: RecordStore, memory: Memory) -> None:
    with store.write() as txn:
        txn.delete(dataclasses.replace(memory, revision=txn.next_revision()))
