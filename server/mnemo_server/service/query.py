"""A search query prepared once: validated, its filter parsed, its cache key computed.

`prepare_query` does no I/O (no store, no index, no cache), so the API layer
may call it on the event loop. The `PreparedQuery` it returns travels with
the search from there on: the result-cache lookup and the record-cache
lookup taken for it are kept on it, so no step is done, or counted, twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mnemo_server import adjust, filters, fusion, validation
from mnemo_server.cache import RecordLookup, SearchLookup, search_fingerprint
from mnemo_server.config import LimitSettings
from mnemo_server.embed.vectors import check_vector
from mnemo_server.errors import FailedPreconditionError, InvalidArgumentError, invalid
from mnemo_server.models import Principal, Scope, Vector
from mnemo_server.rerank import RerankStage
from mnemo_server.service.types import SearchMode, SearchQuery


@dataclass(slots=True)
class PreparedQuery:
    """A validated search query, and the cache lookups taken for it so far."""

    query: SearchQuery
    vector: Vector | None
    scope: Scope
    expr: filters.Expr | None
    matches_nothing: bool
    top_k: int
    fingerprint: bytes
    mode: SearchMode
    rrf_k: int
    depth: int  # candidates to rank: top_k, more for each half of a hybrid search
    #: Whether the server's reranker runs over the top candidates.
    rerank: bool = False
    #: The result-cache lookup, once taken (never for an explained search).
    lookup: SearchLookup | None = None
    #: The record-cache lookup of a result-cache hit's memories, once taken.
    records: RecordLookup | None = None

    @property
    def cacheable(self) -> bool:
        """Explained searches are always computed (the cache keeps no
        explanations), and so are recency-decayed ones (their scores change
        with the clock, not only with writes)."""
        return not self.query.explain and not self.query.adjustments.time_dependent and not self.rerank


@dataclass(slots=True)
class PreparedSearch:
    """The queries of one call, prepared for one principal."""

    principal: Principal
    queries: list[PreparedQuery] = field(default_factory=list)
    #: Whether the result cache was consulted for every cacheable query.
    looked_up: bool = False

    def forget_lookups(self) -> None:
        """Drops lookups taken before a catch-up changed what they would find."""
        self.looked_up = False
        for p in self.queries:
            p.lookup = p.records = None


def prepare_query(
    q: SearchQuery,
    *,
    dimension: int,
    limits: LimitSettings,
    model_id: str,
    reranker: RerankStage | None = None,
) -> PreparedQuery:
    """Validates a query; works out its scope, filter and cache fingerprint."""
    path = q.field
    rerank = _rerank(q, reranker)
    if (q.vector is None) == (not q.text):
        raise invalid(
            "QUERY_REQUIRED", validation.join(path, "query"), "give exactly one of query and vector"
        )
    if q.mode is not SearchMode.VECTOR and q.vector is not None:
        raise invalid(
            "QUERY_REQUIRED",
            validation.join(path, "query"),
            f"{q.mode.value} search needs query text, not a vector",
        )
    if q.mode is SearchMode.KEYWORD and q.min_score is not None:
        raise invalid(
            "INVALID_ARGUMENT",
            validation.join(path, "min_score"),
            "applies to cosine similarity; keyword search has none",
        )
    if q.rrf_k is not None and not 1 <= q.rrf_k <= fusion.MAX_RRF_K:
        raise invalid(
            "INVALID_ARGUMENT", validation.join(path, "rrf_k"), f"must lie in [1, {fusion.MAX_RRF_K}]"
        )
    adjust.check(q.adjustments, lambda name: validation.join(path, name))
    vector = None
    if q.vector is not None:
        vector = check_vector(q.vector, dimension, validation.join(path, "vector"))
    else:
        validation.check_content(q.text, validation.join(path, "query"), limits)
    if not 0 <= q.top_k <= limits.max_top_k:
        raise invalid("INVALID_TOP_K", validation.join(path, "top_k"), f"must lie in [0, {limits.max_top_k}]")
    if q.min_score is not None and not -1.0 <= q.min_score <= 1.0:
        raise invalid("INVALID_ARGUMENT", validation.join(path, "min_score"), "must lie in [-1, 1]")
    try:
        expr = filters.parse_filter(q.filter)
    except InvalidArgumentError as exc:
        raise (exc.with_field_prefix(path) if path else exc) from None
    scope: Scope | None = q.scope
    if expr is not None:
        only_scope = filters.scope_of(expr)
        if only_scope is not None:
            scope, expr = _merge_scopes(q.scope, only_scope), None
    top_k = q.top_k or 10
    rrf_k = fusion.DEFAULT_RRF_K if q.rrf_k is None else q.rrf_k
    fp = search_fingerprint(
        model_id=model_id,
        text=q.text,
        vector=vector,
        filter=filters.format_filter(expr) if expr is not None else "",
        top_k=top_k,
        min_score=q.min_score,
        mode=q.mode.value,
        rrf_k=rrf_k if q.mode is SearchMode.HYBRID else 0,
        explain=q.explain,
        adjustments=_canonical(q.adjustments),
    )
    depth = fusion.candidate_depth(top_k) if q.mode is SearchMode.HYBRID else top_k
    if q.adjustments.active:
        depth = max(depth, adjust.pool_depth(top_k))
    if rerank:
        assert reranker is not None
        depth = max(depth, reranker.top_n, top_k)
    return PreparedQuery(
        q, vector, scope or q.scope, expr, scope is None, top_k, fp, q.mode, rrf_k, depth, rerank
    )


def _rerank(q: SearchQuery, reranker: RerankStage | None) -> bool:
    """Whether to rerank: as asked, else the server's default; asking a
    server without a reranker is FAILED_PRECONDITION."""
    if q.rerank is None:
        return reranker is not None and reranker.by_default and q.vector is None
    if q.rerank and reranker is None:
        raise FailedPreconditionError(
            "this server has no reranker (rerank.url or rerank.model_path)", reason="RERANKER_NOT_CONFIGURED"
        )
    if q.rerank and q.vector is not None:
        raise invalid("QUERY_REQUIRED", validation.join(q.field, "query"), "reranking needs query text")
    return q.rerank


def _merge_scopes(a: Scope, b: Scope) -> Scope | None:
    merged = []
    for name in ("user_id", "agent_id", "run_id"):
        x, y = getattr(a, name), getattr(b, name)
        if x and y and x != y:
            return None
        merged.append(x or y)
    return Scope(*merged)


def _canonical(a: adjust.Adjustments) -> str:
    """The adjustments as the result cache keys them; "" for none. Only the
    cacheable ones matter (recency-decayed searches are never cached)."""
    if not a.active:
        return ""
    weight = 1.0 if a.importance_weight is None else a.importance_weight
    parts = [a.importance_key, repr(weight if a.importance_key else 0.0), repr(a.pin_boost)]
    if a.recency_half_life_s is not None:
        parts += [repr(a.recency_half_life_s), str(a.recency_basis), repr(a.recency_weight)]
    return "\0".join(parts)
