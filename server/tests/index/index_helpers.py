"""Shared helpers for the index tests: embedding-like vectors, a random
workload applied to several indexes at once, and the congruence check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from mnemo_server.index.base import IndexEntry, IndexQuery, Neighbor, VectorIndex
from mnemo_server.models import Scope

Matrix = npt.NDArray[np.float32]


def embedding_like(rng: np.random.Generator, n: int, d: int, rank: int = 16) -> Matrix:
    """Unit vectors near a `rank`-dimensional subspace, like real sentence
    embeddings (whose neighbours are meaningful). Uniform random unit vectors
    in many dimensions are all nearly equidistant, which no ANN index, and no
    user, cares about."""
    basis = np.random.default_rng(1234).standard_normal((rank, d)).astype(np.float32)
    x = rng.standard_normal((n, rank), dtype=np.float32) @ basis
    x += 0.3 * np.sqrt(rank / d) * rng.standard_normal((n, d), dtype=np.float32)
    unit: Matrix = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return unit


@dataclass
class Workload:
    """Random entries over a few tenants, users, agents and runs, with
    interleaved updates, tenant moves and deletes, applied to every index."""

    d: int
    indexes: Sequence[VectorIndex]
    rng: np.random.Generator
    tenants: tuple[str, ...] = ("acme", "globex", "initech")
    users: tuple[str, ...] = ("alice", "bob", "carol", "dave", "erin")
    agents: tuple[str, ...] = ("planner", "coder", "")
    runs: tuple[str, ...] = ("r1", "r2", "r3", "r4", "")
    live: dict[int, IndexEntry] = field(default_factory=dict)
    next_key: int = 0

    def random_scope(self) -> Scope:
        r = self.rng
        return Scope(str(r.choice(self.users)), str(r.choice(self.agents)), str(r.choice(self.runs)))

    def add(self, n: int, *, tenant: str | None = None, scope: Scope | None = None) -> list[int]:
        vectors = embedding_like(self.rng, n, self.d)
        entries = []
        for i in range(n):
            t = tenant or str(self.rng.choice(self.tenants))
            entries.append(IndexEntry(self.next_key, t, scope or self.random_scope(), vectors[i]))
            self.next_key += 1
        self._apply(entries)
        return [e.key for e in entries]

    def update(self, n: int, *, move_tenant: bool = False) -> None:
        keys = self.rng.choice(sorted(self.live), size=min(n, len(self.live)), replace=False)
        vectors = embedding_like(self.rng, len(keys), self.d)
        entries = []
        for key, vector in zip(keys.tolist(), vectors, strict=True):
            old = self.live[key]
            tenant = str(self.rng.choice(self.tenants)) if move_tenant else old.tenant
            entries.append(IndexEntry(key, tenant, self.random_scope(), vector))
        self._apply(entries)

    def delete(self, n: int) -> None:
        keys = self.rng.choice(sorted(self.live), size=min(n, len(self.live)), replace=False)
        keys_list = [*keys.tolist(), 10**9 + 7]  # unknown keys are ignored
        for index in self.indexes:
            index.remove(keys_list)
        for key in keys.tolist():
            del self.live[key]

    def _apply(self, entries: list[IndexEntry]) -> None:
        for start in range(0, len(entries), 1000):
            for index in self.indexes:
                index.upsert(entries[start : start + 1000])
        for e in entries:
            self.live[e.key] = e

    def queries(self, n: int, *, tenant: str | None = None) -> list[IndexQuery]:
        """A mix: whole tenant, each scope field, combinations, keys, exclude."""
        out = []
        rng = self.rng
        live = sorted(self.live)
        for i in range(n):
            t = tenant or str(rng.choice(self.tenants))
            kind = i % 6
            if kind == 0:
                out.append(IndexQuery(t))
            elif kind == 1:
                out.append(IndexQuery(t, Scope(user_id=str(rng.choice(self.users)))))
            elif kind == 2:
                out.append(
                    IndexQuery(t, Scope(str(rng.choice(self.users)), str(rng.choice(self.agents[:2]))))
                )
            elif kind == 3:
                out.append(IndexQuery(t, Scope(run_id=str(rng.choice(self.runs[:4])))))
            elif kind == 4:
                # Keys from every tenant and some unknown ones: the index must
                # still confine them to the query's tenant and scope.
                picked = rng.choice(live, size=min(len(live), int(rng.integers(1, 400))), replace=False)
                keys = frozenset(picked.tolist()) | {10**9 + 1}
                scope = Scope(agent_id="planner") if rng.random() < 0.5 else Scope()
                out.append(IndexQuery(t, scope, keys=keys))
            else:
                excl = frozenset(rng.choice(live, size=min(len(live), 200), replace=False).tolist())
                out.append(IndexQuery(t, Scope(user_id=str(rng.choice(self.users))), exclude=excl))
        return out


def assert_same_ranking(
    got: list[Neighbor], want: list[Neighbor], allowed: dict[int, float], *, tol: float = 1e-6
) -> None:
    """`got` equals the oracle's `want` except that neighbours whose oracle
    scores differ by less than `tol` may trade places (float rounding of
    different but equivalent matrix products). `allowed` maps every key the
    query may return to its oracle score."""
    assert len(got) == len(want), (got, want)
    assert len({n.key for n in got}) == len(got), "duplicate keys"
    for rank, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.key in allowed, f"rank {rank}: key {g.key} is outside the query"
        assert abs(allowed[g.key] - w.score) < tol, f"rank {rank}: got {g}, want {w}"
        assert abs(g.score - allowed[g.key]) < 1e-5, f"rank {rank}: score {g.score} is off"
