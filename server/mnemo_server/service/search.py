"""Search: one path from a prepared query to hydrated hits.

1. `prepare`: validate, parse the filter, fingerprint; no I/O (query.py).
2. `answer_inline` (on the event loop, optional): only when the caches live
   in this process and every cache involved hits (the result cache, then the
   record cache for each hit's memory), with no store, index or model call.
   Anything else returns None, keeping the lookups it took on the prepared
   search for step 3.
3. `search` (in a worker thread): catch up with other processes' writes,
   look up what is not looked up yet, hydrate the hits, compute the misses
   (embed, one index call, keyword halves beside it, one hydration: the
   record table, then one store read for what it lacks), and store them
   under the stamps the lookups took before any data was read.

Inline answers are given only while no other process has been seen writing
the store (`_shared_store`, set by a catch-up that found foreign changes; the
upkeep loop catches up too). After that every search catches up first.
Workers of one fleet announce their writes (`revision_signal`): there an
inline answer is given while this index has applied every announced
revision, and a catch-up is needed only when it has not.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from mnemo_server import adjust, fusion, telemetry
from mnemo_server.cache import CachedHit, SearchLookup
from mnemo_server.index.base import IndexQuery
from mnemo_server.models import Memory, Principal, SearchHit
from mnemo_server.service.query import PreparedQuery, PreparedSearch, prepare_query
from mnemo_server.service.recovery import Recovery
from mnemo_server.service.types import SearchMode, SearchQuery, SearchResult
from mnemo_server.store.base import KeywordHit

#: Threads for the keyword halves of searches (see _compute); idle ones cost nothing.
_KEYWORD_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mnemo-keyword")


class Search(Recovery):
    """SearchMemories, BatchSearchMemories and StreamSearchMemories."""

    def prepare(self, principal: Principal, queries: Sequence[SearchQuery]) -> PreparedSearch:
        """Confines and validates every query once; no I/O."""
        for q in queries:
            self.confine(principal, q.scope)
        dimension, model_id = self.index.dimension, self.embedder.model_id
        return PreparedSearch(
            principal,
            [
                prepare_query(
                    q, dimension=dimension, limits=self.limits, model_id=model_id, reranker=self.reranker
                )
                for q in queries
            ],
        )

    # -- inline: in-process caches only -------------------------------------------

    def look_up_inline(self, prepared: PreparedSearch) -> list[SearchLookup] | None:
        """The result-cache hits of every query, found without leaving this
        process, or None (then call `search`, which reuses the lookups)."""
        caches = self.caches
        if not self.inline_cache_hits or caches is None or self._shared_store or self._behind():
            return None
        if not all(p.cacheable for p in prepared.queries):
            return None
        self._look_up(prepared)
        lookups = [p.lookup for p in prepared.queries]
        if not all(lookup is not None and lookup.hits is not None for lookup in lookups):
            return None
        return lookups  # type: ignore[return-value]

    def answer_inline(self, prepared: PreparedSearch) -> list[SearchResult] | None:
        """The results of `look_up_inline`'s hits hydrated from the record
        cache alone, or None when a record is not cached (then call `search`,
        which reads only the missing records from the store)."""
        if self.look_up_inline(prepared) is None:
            return None
        assert self.caches is not None
        principal = prepared.principal
        for p in prepared.queries:
            if p.records is None:
                assert p.lookup is not None and p.lookup.hits is not None
                with telemetry.span("cache.records"):
                    p.records = self.caches.records.lookup(
                        principal.tenant,
                        [h.id for h in p.lookup.hits],
                        with_embedding=p.query.include_embedding,
                    )
        if any(p.records is not None and p.records.missing for p in prepared.queries):
            return None
        now = self.clock()
        results = [self._from_cache(principal, p, now) for p in prepared.queries]
        for result in results:
            self.note_retrieved([h.memory.key for h in result.hits])
        return results

    # -- the full path, in a worker thread ----------------------------------------

    def search(
        self, principal: Principal, queries: Sequence[SearchQuery] | PreparedSearch
    ) -> list[SearchResult]:
        """Runs queries with one result-cache lookup, one embedding call for
        the texts that missed, one index call and one hydration. Takes the
        queries, or what `prepare` (and perhaps `answer_inline`) made of them."""
        prepared = queries if isinstance(queries, PreparedSearch) else self.prepare(principal, queries)
        assert prepared.principal == principal
        now = self.clock()
        if self._catch_up():
            prepared.forget_lookups()  # taken before the replay invalidated what changed
        results: list[SearchResult | None] = [None] * len(prepared.queries)
        if self.caches is not None:
            self._look_up(prepared)
            for i, p in enumerate(prepared.queries):
                if p.lookup is not None and p.lookup.hits is not None:
                    results[i] = self._from_cache(principal, p, now)
        misses = [i for i, r in enumerate(results) if r is None]
        if misses:
            computed = self._compute(principal, [prepared.queries[i] for i in misses], now)
            stores = []
            for i, result in zip(misses, computed, strict=True):
                results[i] = result
                pending = prepared.queries[i].lookup
                if pending is not None:
                    hits = [
                        CachedHit(h.memory.id, h.memory.key, h.score, h.memory.expire_time_us)
                        for h in result.hits
                    ]
                    stores.append((pending, hits))
            if stores and self.caches is not None:
                self.caches.search.store(stores, now_us=now)
        final = [r for r in results if r is not None]
        for result in final:
            self.note_retrieved([h.memory.key for h in result.hits])
        return final

    def _look_up(self, prepared: PreparedSearch) -> None:
        """One result-cache lookup for the cacheable queries, once per search.
        Before any data read: a write that lands after it bumps the
        generation the result would be stored under."""
        if prepared.looked_up or self.caches is None:
            return
        cacheable = [p for p in prepared.queries if p.cacheable]
        with telemetry.span("cache.search"):
            found = self.caches.search.lookup(
                prepared.principal.tenant, [(p.scope, p.fingerprint) for p in cacheable]
            )
        for p, lookup in zip(cacheable, found, strict=True):
            p.lookup = lookup
        prepared.looked_up = True

    def _from_cache(self, principal: Principal, p: PreparedQuery, now: int) -> SearchResult:
        """A result-cache hit's result: its memories from the record cache,
        the ones it misses from the store (never on the event loop:
        `answer_inline` gives up before that)."""
        assert self.caches is not None and p.lookup is not None and p.lookup.hits is not None
        hits_found = p.lookup.hits
        records = p.records
        if records is None:
            with telemetry.span("cache.records"):
                records = self.caches.records.lookup(
                    principal.tenant, [h.id for h in hits_found], with_embedding=p.query.include_embedding
                )
        memories = dict(records.found)
        if records.missing:
            wanted = {h.id: h.key for h in hits_found}
            loaded = self._hydrate(
                [wanted[i] for i in records.missing], with_embedding=p.query.include_embedding
            )
            self.caches.records.fill(records, loaded.values(), now_us=now)
            memories.update((m.id, m) for m in loaded.values())
        hits = [
            SearchHit(memories[h.id], h.score)
            for h in hits_found
            if h.id in memories
            and memories[h.id].tenant == principal.tenant
            and not memories[h.id].is_expired(now)
        ]
        return SearchResult(hits, self._model_of(p.query))

    def _model_of(self, q: SearchQuery) -> str:
        """The model that embedded the query's text ("" when none did)."""
        embedded = q.vector is None and q.mode is not SearchMode.KEYWORD
        return self.embedder.model_id if embedded else ""

    def _compute(
        self, principal: Principal, prepared: Sequence[PreparedQuery], now: int
    ) -> list[SearchResult]:
        # The keyword halves run on their own threads while the query is
        # embedded and the vector index searched (SQLite and FAISS both
        # release the GIL), so a hybrid search costs about the slower half.
        pending: dict[int, Future[list[KeywordHit]]] = {}
        for i, p in enumerate(prepared):
            if p.mode is not SearchMode.VECTOR and not p.matches_nothing:
                pending[i] = _KEYWORD_POOL.submit(
                    contextvars.copy_context().run, self._keyword_search, principal.tenant, p, now
                )
        semantic = [i for i, p in enumerate(prepared) if p.mode is not SearchMode.KEYWORD]
        texts = [prepared[i].query.text for i in semantic if prepared[i].vector is None]
        text_vectors = None
        if texts:
            with telemetry.span("embed", texts=len(texts)):
                text_vectors = self.embedder.embed(texts)
        vectors = np.empty((len(prepared), self.index.dimension), dtype=np.float32)
        t = 0
        for i in semantic:
            vector = prepared[i].vector
            if vector is None:
                assert text_vectors is not None
                vectors[i] = text_vectors[t]
                t += 1
            else:
                vectors[i] = vector
        plans = {i: self._locate(principal, prepared[i], now) for i in semantic}
        live = [i for i in semantic if plans[i] is not None]
        neighbors: dict[int, list[Any]] = {i: [] for i in range(len(prepared))}
        k = max((prepared[i].depth for i in live), default=0)
        if live:
            with telemetry.span("index.search", queries=len(live)):
                found = self.index.search(vectors[live], [plans[i] for i in live], k)  # type: ignore[misc]
            for i, result in zip(live, found, strict=True):
                neighbors[i] = result[: prepared[i].depth]
        worded = {i: future.result() for i, future in pending.items()}
        want_embeddings = any(p.query.include_embedding for p in prepared)
        keys = sorted(
            {n.key for result in neighbors.values() for n in result}
            | {h.key for result in worded.values() for h in result}
        )
        memories = self._hydrate(keys, with_embedding=want_embeddings)

        def usable(key: int) -> Memory | None:
            memory = memories.get(key)
            # Defence in depth: the index is derived data.
            if memory is None or memory.tenant != principal.tenant or memory.is_expired(now):
                return None
            return memory

        results = []
        for i, p in enumerate(prepared):
            q = p.query
            by_vector = []
            for n in neighbors[i]:
                memory = usable(n.key)
                score = float(min(1.0, max(-1.0, n.score)))
                if memory is not None and (q.min_score is None or score >= q.min_score):
                    by_vector.append(SearchHit(memory, score))
            by_words = []
            for h in worded.get(i, ()):
                memory = usable(h.key)
                if memory is not None:
                    by_words.append(SearchHit(memory, h.score))
            vector_ranking = None if p.mode is SearchMode.KEYWORD else fusion.ranked(by_vector)
            keyword_ranking = None if p.mode is SearchMode.VECTOR else fusion.ranked(by_words)
            adjusting = q.adjustments.active
            # Adjusting and reranking re-rank the candidate pool (p.depth), not the top_k.
            keep = p.depth if adjusting or p.rerank else p.top_k
            if p.mode is SearchMode.HYBRID:
                assert vector_ranking is not None and keyword_ranking is not None
                hits = fusion.fuse([vector_ranking, keyword_ranking], k=p.rrf_k, top_k=keep)
            else:
                ranking = keyword_ranking if p.mode is SearchMode.KEYWORD else vector_ranking
                assert ranking is not None
                hits = ranking[:keep]
            if q.explain:
                hits = fusion.explain(
                    hits,
                    vector=vector_ranking,
                    keyword=keyword_ranking,
                    fused=p.mode is SearchMode.HYBRID,
                )
            reranked = None
            if p.rerank:
                assert self.reranker is not None
                with telemetry.span("rerank"):
                    reranked = self.reranker.rerank(q.text, hits[: max(self.reranker.top_n, p.top_k)])
                if reranked is not None:
                    hits = reranked  # rerank scores from here on; the tail is on another scale
                if q.explain:
                    hits = fusion.mark_reranked(hits, applied=reranked is not None)
            if adjusting:
                hits = adjust.apply(
                    hits,
                    q.adjustments,
                    now_us=now,
                    vector_mode=p.mode is SearchMode.VECTOR and reranked is None,
                    top_k=p.top_k,
                    explain=q.explain,
                )
            hits = hits[: p.top_k]
            results.append(SearchResult(hits, self._model_of(q)))
        return results

    def _hydrate(self, keys: Sequence[int], *, with_embedding: bool) -> dict[int, Memory]:
        """The memories of `keys`: from the record table, the rest from the
        store in one read (then kept in the table)."""
        if not keys:
            return {}
        table = self.records
        if table is None or with_embedding:
            with telemetry.span("store.read"):
                return self.store.get_by_keys(keys, with_embedding=with_embedding)
        epoch = table.epoch  # before the store read: see RecordTable.fill
        memories, missing = table.get_many(keys)
        if missing:
            with telemetry.span("store.read"):
                loaded = self.store.get_by_keys(missing)
            table.fill(loaded.values(), epoch=epoch)
            memories.update(loaded)
        return memories

    def _keyword_search(self, tenant: str, p: PreparedQuery, now: int) -> list[KeywordHit]:
        with telemetry.span("keyword.search"):
            return self.store.keyword_search(
                tenant, p.query.text, scope=p.scope, filter=p.expr, now_us=now, limit=p.depth
            )

    def _locate(self, principal: Principal, p: PreparedQuery, now: int) -> IndexQuery | None:
        """Where the index may look; None when scope and filter match nothing."""
        if p.matches_nothing:
            return None
        keys = None
        if p.expr is not None:
            keys = frozenset(
                self.store.match_keys(principal.tenant, scope=p.scope, filter=p.expr, now_us=now)
            )
            if not keys:
                return None
        return IndexQuery(principal.tenant, p.scope, keys, self._expiry.expired(now))
