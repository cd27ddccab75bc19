"""The data of one size: seeded vectors, users and scopes, exact answers, and
the requests built from them before any clock starts."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mnemo.v1 import memory_pb2, memory_service_pb2

from .settings import BATCH_WRITE, BIG_MAX, DIM, SMALL, K

Matrix = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]


def unit_rows(x: Matrix) -> Matrix:
    out: Matrix = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def make_vectors(rng: np.random.Generator, n: int, kind: str) -> Matrix:
    """n unit vectors; "lowrank" clusters them near a 32-d subspace (same
    generator as bench/index_bench.py), like sentence embeddings."""
    if kind == "uniform":
        return unit_rows(rng.standard_normal((n, DIM), dtype=np.float32))
    rank = 32
    basis = np.random.default_rng(99).standard_normal((rank, DIM)).astype(np.float32)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(n, start + 100_000) - start
        x = rng.standard_normal((m, rank), dtype=np.float32) @ basis
        x += 0.3 * np.sqrt(rank / DIM) * rng.standard_normal((m, DIM), dtype=np.float32)
        out[start : start + m] = unit_rows(x)
    return out


@dataclass
class Dataset:
    vectors: Matrix
    users: list[str]  # user of memory i, whose id is f"m{i}"
    scopes: dict[str, Rows]  # "small", "big", "all" -> memory numbers
    queries: Matrix  # with exact answers: plan.queries singles, then batch rows
    fresh: Matrix  # without: for closed-loop rows, each used once


class FreshQueries:
    """Hands out each fresh query vector once, across threads: the server
    caches search results, and a repeated query would measure the cache."""

    def __init__(self, vectors: Matrix) -> None:
        self.vectors = vectors
        self.next = 0
        self.wrapped = False
        self.lock = threading.Lock()

    def take(self, count: int) -> Matrix:
        with self.lock:
            if self.next + count > len(self.vectors):
                self.next, self.wrapped = 0, True
            start = self.next
            self.next += count
        return self.vectors[start : start + count]


def make_dataset(n: int, kind: str, seed: int, queries: int, fresh: int) -> Dataset:
    if n < 2 * SMALL:
        raise SystemExit(f"size {n} is too small: at least {2 * SMALL}")
    rng = np.random.default_rng(seed)
    vectors = make_vectors(rng, n, kind)
    big = min(n - SMALL, BIG_MAX)
    labels = np.empty(n, dtype=object)
    labels[:SMALL] = "small"
    labels[SMALL : SMALL + big] = "big"
    rest = n - SMALL - big
    labels[SMALL + big :] = [f"u{j // SMALL}" for j in range(rest)]
    labels = labels[rng.permutation(n)]
    users = labels.tolist()
    scopes = {
        "small": np.flatnonzero(labels == "small"),
        "big": np.flatnonzero(labels == "big"),
        "all": np.arange(n),
    }
    return Dataset(vectors, users, scopes, make_vectors(rng, queries, kind), make_vectors(rng, fresh, kind))


def exact_top(vectors: Matrix, rows: Rows, queries: Matrix, k: int = K) -> list[set[int]]:
    """Exact top-k memory numbers of each query among `rows` (NumPy, chunked)."""
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.empty((len(queries), 0), dtype=np.int64)
    for lo in range(0, len(rows), 200_000):
        part = rows[lo : lo + 200_000]
        scores = queries @ vectors[part].T
        top = np.argpartition(-scores, min(k, len(part) - 1), axis=1)[:, :k]
        best_s = np.concatenate([best_s, np.take_along_axis(scores, top, axis=1)], axis=1)
        best_i = np.concatenate([best_i, part[top]], axis=1)
        keep = np.argsort(-best_s, axis=1)[:, :k]
        best_s = np.take_along_axis(best_s, keep, axis=1)
        best_i = np.take_along_axis(best_i, keep, axis=1)
    return [set(r.tolist()) for r in best_i]


def recall(found: dict[int, list[int]], truth: list[set[int]]) -> float:
    hits = sum(len(set(ids) & truth[q]) for q, ids in found.items())
    return hits / (K * len(found)) if found else 0.0


def numbers(response: memory_service_pb2.SearchMemoriesResponse) -> list[int]:
    return [int(hit.memory.id[1:]) for hit in response.hits]


def build_write_batches(data: Dataset) -> list[bytes]:
    """Serialized BatchWriteMemories requests, built before the clock starts."""
    out = []
    n = len(data.users)
    for lo in range(0, n, BATCH_WRITE):
        request = memory_service_pb2.BatchWriteMemoriesRequest()
        for i in range(lo, min(n, lo + BATCH_WRITE)):
            memory = request.operations.add().create.memory
            memory.id = f"m{i}"
            memory.user_id = data.users[i]
            memory.content = f"memory {i}: the user mentioned topic {i % 997} in passing"
            memory.embedding.extend(data.vectors[i].tolist())
        out.append(request.SerializeToString())
    return out


def search_request(vector: Matrix, user: str | None) -> memory_service_pb2.SearchMemoriesRequest:
    scope = memory_pb2.Scope(user_id=user) if user else None
    return memory_service_pb2.SearchMemoriesRequest(vector=vector.tolist(), scope=scope, top_k=K)


def user_of(scope: str) -> str | None:
    return None if scope == "all" else scope


def disk_usage(path: Path) -> tuple[int, int]:
    """(store bytes, index snapshot bytes) under a data dir."""
    store = index = 0
    for file in path.rglob("*"):
        if file.is_file():
            if "index" in file.relative_to(path).parts[:1]:
                index += file.stat().st_size
            else:
                store += file.stat().st_size
    return store, index
