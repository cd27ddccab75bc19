"""Recency decay and importance / pin boosts (adjust.py) at the service seam,
with real SQLite and FAISS and a clock the test sets: congruent with a
brute-force oracle in every mode, deterministic, confined to tenant, scope
and filter, and refused with stable reasons when malformed."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from mnemo_server.adjust import Adjustments, RecencyBasis
from mnemo_server.app import build_index, build_store
from mnemo_server.config import load_settings
from mnemo_server.embed.base import Embedder
from mnemo_server.errors import InvalidArgumentError
from mnemo_server.models import Memory, Principal, Scope
from mnemo_server.service import MemoryDraft, MemoryService, SearchMode, SearchQuery, WriteOp

DAY_US = 86_400 * 1_000_000
T0 = 1_700_000_000 * 1_000_000
P, OTHER = Principal(tenant="t"), Principal(tenant="u")


class HashEmbedder(Embedder):
    """Deterministic vectors from text (stable across runs: not `hash`)."""

    model_id = "hash"
    dimension = 16

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = [np.random.default_rng(sum(t.encode()) * 7919 + len(t)).normal(size=16) for t in texts]
        out = np.array(rows, dtype=np.float32).reshape(len(texts), 16)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(tmp_path: Path, clock: Clock) -> Iterator[MemoryService]:
    settings = load_settings(env={}, overrides={"server.data_dir": str(tmp_path)})
    store = build_store(settings)
    svc = MemoryService(
        store=store,
        index=build_index(settings, 16),
        embedder=HashEmbedder(),
        settings=settings,
        snapshot_dir=tmp_path / "index",
        clock=clock,
    )
    svc.load()
    yield svc
    store.close()


def write(svc: MemoryService, clock: Clock, day: float, draft: MemoryDraft, p: Principal = P) -> Memory:
    clock.now = T0 + int(day * DAY_US)
    [out] = svc.write(p, [WriteOp("create", draft=draft)])
    assert out.error is None and out.memory is not None
    return out.memory


def flight_facts(svc: MemoryService, clock: Clock) -> list[Memory]:
    """Twelve memories on `flight` over 60 days, of two users, with importances and pins."""
    out = []
    for i in range(12):
        metadata: dict[str, object] = {"importance": [0, 0.2, 0.9, 1.5, -1, "high"][i % 6]}
        if i % 5 == 0:
            metadata = {}
        draft = MemoryDraft(
            scope=Scope(user_id="alice" if i % 3 else "bob"),
            content=f"flight number {i} booked" + " again" * (i % 4),
            tags=("trip",) if i % 2 else (),
            metadata=metadata,
            pinned=i % 4 == 1,
        )
        out.append(write(svc, clock, day=5 * i, draft=draft))
    # A later update: its update time is newer than its create time.
    clock.now = T0 + 70 * DAY_US
    [updated] = svc.write(
        P,
        [
            WriteOp(
                "update",
                draft=MemoryDraft(content="flight number 0 moved"),
                memory_id=out[1].id,
                update_mask=("content",),
            )
        ],
    )
    assert updated.memory is not None
    out[1] = updated.memory
    clock.now = T0 + 80 * DAY_US
    return out


def oracle(
    svc: MemoryService,
    candidates: Sequence[tuple[Memory, float]],
    a: Adjustments,
    *,
    vector_mode: bool,
    top_k: int,
    now_us: int,
) -> list[tuple[str, float]]:
    """The formula of docs/retrieval.md, written out again."""
    scored = []
    for memory, score in candidates:
        s = (1 + score) / 2 if vector_mode else score
        if a.recency_half_life_s is not None:
            basis = a.recency_basis or RecencyBasis.UPDATE_TIME
            t = {
                RecencyBasis.CREATE_TIME: memory.create_time_us,
                RecencyBasis.UPDATE_TIME: memory.update_time_us,
                RecencyBasis.LAST_RETRIEVE_TIME: memory.last_retrieve_time_us or memory.update_time_us,
            }[basis]
            w = 1.0 if a.recency_weight is None else a.recency_weight
            s *= (1 - w) + w * math.pow(2.0, -((now_us - t) / 1e6) / a.recency_half_life_s)
        if a.importance_key:
            v = memory.metadata.get(a.importance_key)
            imp = (
                min(1.0, max(0.0, float(v))) if isinstance(v, int | float) and not isinstance(v, bool) else 0
            )
            s *= 1 + (1.0 if a.importance_weight is None else a.importance_weight) * imp
        if a.pin_boost is not None and memory.pinned:
            s *= 1 + a.pin_boost
        scored.append((memory.id, s))
    scored.sort(key=lambda x: (-x[1], x[0]))
    return scored[:top_k]


def in_scope(svc: MemoryService, user: str, tag: str | None = None) -> list[Memory]:
    memories, _ = svc.list_memories(
        P, scope=Scope(user_id=user), filter_text="", order_by="", page_size=1000, page_token=""
    )
    return [m for m in memories if tag is None or tag in m.tags]


def hits(svc: MemoryService, q: SearchQuery) -> list[tuple[str, float]]:
    [result] = svc.search(P, [q])
    return [(h.memory.id, h.score) for h in result.hits]


def same(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [i for i, _ in got] == [i for i, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], rel=1e-5)


ADJUSTMENTS = [
    Adjustments(recency_half_life_s=10 * 86_400.0),
    Adjustments(recency_half_life_s=3 * 86_400.0, recency_basis=RecencyBasis.CREATE_TIME, recency_weight=0.5),
    Adjustments(importance_key="importance", importance_weight=3.0),
    Adjustments(pin_boost=2.0),
    Adjustments(
        recency_half_life_s=20 * 86_400.0,
        recency_basis=RecencyBasis.LAST_RETRIEVE_TIME,
        importance_key="importance",
        pin_boost=0.5,
    ),
]


@pytest.mark.parametrize("a", ADJUSTMENTS, ids=range(len(ADJUSTMENTS)))
@pytest.mark.parametrize("tag", [None, "trip"])
def test_vector_mode_is_the_brute_force_formula(
    service: MemoryService, clock: Clock, a: Adjustments, tag: str | None
) -> None:
    flight_facts(service, clock)
    # Retrieval times for LAST_RETRIEVE_TIME: one search at day 75, recorded by upkeep.
    clock.now = T0 + 75 * DAY_US
    service.search(P, [SearchQuery(text="flight", scope=Scope(user_id="alice"), top_k=2)])
    service.upkeep()
    clock.now = T0 + 80 * DAY_US
    eligible = in_scope(service, "alice", tag)
    [qv] = HashEmbedder().embed(["flight"])
    cosine = [(m, float(np.dot(qv, HashEmbedder().embed([m.content])[0]))) for m in eligible]
    q = SearchQuery(
        text="flight",
        scope=Scope(user_id="alice"),
        filter='tags:"trip"' if tag else "",
        top_k=4,
        adjustments=a,
    )
    expected = oracle(service, cosine, a, vector_mode=True, top_k=4, now_us=clock.now)
    same(hits(service, q), expected)
    assert all(m.scope.user_id == "alice" for m in eligible)


@pytest.mark.parametrize("mode", [SearchMode.KEYWORD, SearchMode.HYBRID])
@pytest.mark.parametrize("a", ADJUSTMENTS, ids=range(len(ADJUSTMENTS)))
def test_keyword_and_hybrid_modes_adjust_the_unadjusted_ranking(
    service: MemoryService, clock: Clock, mode: SearchMode, a: Adjustments
) -> None:
    """On data smaller than every candidate depth, the pool is every match:
    the adjusted ranking is the formula applied to the whole plain ranking."""
    flight_facts(service, clock)
    scope = Scope(user_id="alice")
    plain = SearchQuery(text="flight again", scope=scope, top_k=50, mode=mode)
    [result] = service.search(P, [plain])
    base = [(h.memory, h.score) for h in result.hits]
    assert len(base) >= 5
    expected = oracle(service, base, a, vector_mode=False, top_k=3, now_us=clock.now)
    got = hits(service, SearchQuery(text="flight again", scope=scope, top_k=3, mode=mode, adjustments=a))
    same(got, expected)


def test_recency_ranks_fresh_memories_first_and_can_reorder(service: MemoryService, clock: Clock) -> None:
    old = write(service, clock, 0, MemoryDraft(scope=Scope(user_id="kim"), content="kim likes green tea"))
    new = write(service, clock, 30, MemoryDraft(scope=Scope(user_id="kim"), content="kim likes tea"))
    clock.now = T0 + 31 * DAY_US
    q = SearchQuery(text="kim likes green tea", scope=Scope(user_id="kim"), mode=SearchMode.KEYWORD)
    assert hits(service, q)[0][0] == old.id  # better BM25 match
    decayed = SearchQuery(
        text=q.text, scope=q.scope, mode=q.mode, adjustments=Adjustments(recency_half_life_s=86_400.0)
    )
    assert [i for i, _ in hits(service, decayed)] == [new.id, old.id]
    # Weight 0 turns the decay off: the plain order (scores are the base).
    off = SearchQuery(
        text=q.text,
        scope=q.scope,
        mode=q.mode,
        adjustments=Adjustments(recency_half_life_s=86_400.0, recency_weight=0.0),
    )
    same(hits(service, off), hits(service, q))


def test_the_pool_reaches_below_top_k(service: MemoryService, clock: Clock) -> None:
    """A memory ranked 30th by meaning rises to the top when it is the only
    important one: adjustments re-rank the pool, not the plain top_k."""
    scope = Scope(user_id="pool")
    for i in range(40):
        write(service, clock, 0, MemoryDraft(scope=scope, content=f"note {i}", metadata={"w": 0}))
    q = SearchQuery(text="note 7", scope=scope, top_k=40)
    ranked = [i for i, _ in hits(service, q)]
    low = ranked[29]
    service.write(
        P,
        [
            WriteOp(
                "update",
                draft=MemoryDraft(metadata={"w": 1}),
                memory_id=low,
                update_mask=("metadata",),
            )
        ],
    )
    boosted = SearchQuery(
        text="note 7",
        scope=scope,
        top_k=1,
        adjustments=Adjustments(importance_key="w", importance_weight=100),
    )
    assert [i for i, _ in hits(service, boosted)] == [low]


def test_adjusted_searches_are_deterministic(service: MemoryService, clock: Clock) -> None:
    flight_facts(service, clock)
    a = ADJUSTMENTS[-1]
    for mode in SearchMode:
        q = SearchQuery(text="flight again", scope=Scope(user_id="alice"), top_k=6, mode=mode, adjustments=a)
        first = hits(service, q)
        for _ in range(3):
            assert hits(service, q) == first
        [batch] = service.search(P, [q])
        assert [(h.memory.id, h.score) for h in batch.hits] == first


def test_explanations_report_every_factor(service: MemoryService, clock: Clock) -> None:
    flight_facts(service, clock)
    a = Adjustments(recency_half_life_s=86_400.0 * 10, importance_key="importance", pin_boost=1.0)
    for mode in SearchMode:
        q = SearchQuery(text="flight", scope=Scope(user_id="alice"), mode=mode, explain=True, adjustments=a)
        [result] = service.search(P, [q])
        assert result.hits
        for h in result.hits:
            e = h.explanation
            assert e is not None and e.base_score is not None
            assert e.recency_factor is not None and e.age_seconds is not None
            assert e.importance is not None and e.importance_factor is not None and e.pin_factor is not None
            assert e.age_seconds == (clock.now - h.memory.update_time_us) / 1e6
            assert e.recency_factor == pytest.approx(0.5 ** (e.age_seconds / (86_400 * 10)))
            assert e.pin_factor == (2.0 if h.memory.pinned else 1.0)
            assert h.score == pytest.approx(
                e.base_score * e.recency_factor * e.importance_factor * e.pin_factor
            )
            if mode is SearchMode.VECTOR:
                assert e.vector_score is not None
                assert e.base_score == pytest.approx((1 + e.vector_score) / 2)
            if mode is SearchMode.HYBRID:
                assert e.fused_score == pytest.approx(e.base_score)
    # Without adjustments an explanation has none of their parts.
    [plain] = service.search(P, [SearchQuery(text="flight", scope=Scope(user_id="alice"), explain=True)])
    assert all(h.explanation is not None and h.explanation.base_score is None for h in plain.hits)


def test_boosts_never_cross_tenants_or_scopes(service: MemoryService, clock: Clock) -> None:
    """A pinned, important, brand-new memory of another user or tenant is never seen."""
    mine = write(service, clock, 0, MemoryDraft(scope=Scope(user_id="me"), content="passport number X1"))
    for p, user in ((P, "you"), (OTHER, "me")):
        write(
            service,
            clock,
            10,
            MemoryDraft(
                scope=Scope(user_id=user), content="passport number X1", pinned=True, metadata={"i": 1}
            ),
            p,
        )
    a = Adjustments(recency_half_life_s=60.0, importance_key="i", importance_weight=100, pin_boost=100)
    for mode in SearchMode:
        q = SearchQuery(text="passport number X1", scope=Scope(user_id="me"), mode=mode, adjustments=a)
        assert [i for i, _ in hits(service, q)] == [mine.id]


BAD = [
    (Adjustments(recency_half_life_s=0.0), "INVALID_RECENCY_DECAY", "recency_half_life_seconds"),
    (Adjustments(recency_half_life_s=-5.0), "INVALID_RECENCY_DECAY", "recency_half_life_seconds"),
    (Adjustments(recency_half_life_s=math.nan), "INVALID_RECENCY_DECAY", "recency_half_life_seconds"),
    (Adjustments(recency_half_life_s=math.inf), "INVALID_RECENCY_DECAY", "recency_half_life_seconds"),
    (Adjustments(recency_half_life_s=1.0, recency_weight=1.5), "INVALID_RECENCY_DECAY", "recency_weight"),
    (Adjustments(recency_half_life_s=1.0, recency_weight=-0.1), "INVALID_RECENCY_DECAY", "recency_weight"),
    (Adjustments(recency_weight=0.5), "INVALID_RECENCY_DECAY", "recency_weight"),
    (Adjustments(recency_basis=RecencyBasis.CREATE_TIME), "INVALID_RECENCY_DECAY", "recency_basis"),
    (Adjustments(importance_weight=2.0), "INVALID_IMPORTANCE_BOOST", "importance_weight"),
    (
        Adjustments(importance_key="k", importance_weight=101.0),
        "INVALID_IMPORTANCE_BOOST",
        "importance_weight",
    ),
    (
        Adjustments(importance_key="k", importance_weight=math.nan),
        "INVALID_IMPORTANCE_BOOST",
        "importance_weight",
    ),
    (Adjustments(importance_key="k" * 129), "INVALID_IMPORTANCE_BOOST", "importance_key"),
    (Adjustments(pin_boost=-1.0), "INVALID_IMPORTANCE_BOOST", "pin_boost"),
    (Adjustments(pin_boost=math.inf), "INVALID_IMPORTANCE_BOOST", "pin_boost"),
]


@pytest.mark.parametrize(("a", "reason", "field"), BAD)
def test_bad_adjustments_are_invalid_argument(
    service: MemoryService, a: Adjustments, reason: str, field: str
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        service.search(P, [SearchQuery(text="x", scope=Scope(user_id="a"), adjustments=a)])
    assert info.value.reason == reason
    assert [v.field for v in info.value.violations] == [field]
