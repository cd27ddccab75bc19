"""`Search`: the clients' search methods (SearchMemories, BatchSearchMemories,
StreamSearchMemories); `MnemoClient` inherits them.

`mnemo._asearch` is generated from this module (clients/python/scripts/gen_aio.py).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import grpc

from mnemo import types as t
from mnemo._calls import Calls
from mnemo._core import conversions as _convert
from mnemo._core import requests as _requests
from mnemo._core.settings import call_timeout
from mnemo.errors import from_rpc_error


class Search(Calls):
    """Search by meaning, by words or both: one query, a batch, or a stream."""

    def search(
        self,
        query: str | None = None,
        *,
        vector: Sequence[float] | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filter: str | None = None,
        top_k: int | None = None,
        min_score: float | None = None,
        mode: t.SearchMode | str | None = None,
        rrf_k: int | None = None,
        explain: bool = False,
        recency_half_life_seconds: float | None = None,
        recency_basis: t.RecencyBasis | str | None = None,
        recency_weight: float | None = None,
        importance_key: str | None = None,
        importance_weight: float | None = None,
        pin_boost: float | None = None,
        rerank: bool | None = None,
        include_embedding: bool = False,
        min_revision: int | None = None,
        timeout: float | None = None,
    ) -> t.SearchResult:
        """Finds memories by meaning, by words or both (SearchMemories; see `mode`).

        Args:
            query: The text to search for; exactly one of query and vector is required.
            vector: A vector of the server's dimension.
            filter: A filter expression (docs/filters.md).
            top_k: How many hits, 1 to 1000; the server's default is 10.
            min_score: Only hits at least this similar (cosine), in [-1, 1]; hybrid
                mode applies it to its vector half, keyword mode refuses it.
            mode: "vector" (by meaning, the default), "keyword" (by words and
                identifiers, BM25) or "hybrid" (both, fused by reciprocal rank
                fusion); keyword and hybrid need `query` text (docs/retrieval.md).
            rrf_k: Hybrid mode's fusion constant, 1 to 10000; the server's default is 60.
            explain: Give each hit an `explanation` of how it was ranked (each
                half's score and rank, the fused score); never served from cache.
            recency_half_life_seconds: Decay scores by age with this half-life:
                each candidate's score is multiplied by (1 - recency_weight) +
                recency_weight * 0.5 ** (age / half-life); off when None.
            recency_basis: The time age counts from: "update_time" (the
                default), "create_time" or "last_retrieve_time".
            recency_weight: How much of a score the decay may take, in [0, 1];
                the server's default is 1.
            importance_key: A metadata key holding a number in [0, 1]; scores
                are multiplied by 1 + importance_weight * that number.
            importance_weight: The weight of `importance_key`, in [0, 100]; default 1.
            pin_boost: Multiply pinned memories' scores by 1 + pin_boost, in [0, 100].
                The adjustments re-rank a pool of at least 200 candidates
                (docs/retrieval.md); `explain` shows each factor.
            rerank: Rerank the best candidates with the server's cross-encoder
                (True), or not (False); None takes the server's default. A
                failing reranker serves the plain order (`explanation.reranked`).
            include_embedding: Return each hit's vector.
            min_revision: A consistency token: a write's (or an earlier read's)
                `revision` this read must reflect; a server behind waits, bounded, to
                catch up (docs/operations.md, "Read your own writes on any replica").

        Example:
            >>> _ = client.create("Alice is allergic to peanuts", user_id="doc-search")
            >>> _ = client.create("Alice's favourite city is Lisbon", user_id="doc-search")
            >>> hits = client.search("what food must Alice avoid?", user_id="doc-search", top_k=1).hits
            >>> hits[0].memory.content
            'Alice is allergic to peanuts'
        """
        request = _requests.search_memories(
            query,
            vector=vector,
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            filter=filter,
            top_k=top_k,
            min_score=min_score,
            mode=mode,
            rrf_k=rrf_k,
            explain=explain,
            recency_half_life_seconds=recency_half_life_seconds,
            recency_basis=recency_basis,
            recency_weight=recency_weight,
            importance_key=importance_key,
            importance_weight=importance_weight,
            pin_boost=pin_boost,
            rerank=rerank,
            include_embedding=include_embedding,
            min_revision=min_revision,
        )
        return _convert.search_result(self._unary(self._stub.SearchMemories, request, timeout))

    def batch_search(
        self,
        queries: Sequence[str | t.SearchQuery],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filter: str | None = None,
        top_k: int | None = None,
        min_score: float | None = None,
        mode: t.SearchMode | str | None = None,
        rrf_k: int | None = None,
        explain: bool = False,
        recency_half_life_seconds: float | None = None,
        recency_basis: t.RecencyBasis | str | None = None,
        recency_weight: float | None = None,
        importance_key: str | None = None,
        importance_weight: float | None = None,
        pin_boost: float | None = None,
        rerank: bool | None = None,
        include_embedding: bool = False,
        min_revision: int | None = None,
        timeout: float | None = None,
    ) -> builtins.list[t.SearchResult]:
        """Runs many searches in one call (BatchSearchMemories); results in query order.

        Each query is a text or a `SearchQuery`; the keyword arguments are the
        defaults of the queries that leave them unset.
        """
        request = _requests.batch_search_memories(
            queries,
            dict(
                user_id=user_id,
                agent_id=agent_id,
                run_id=run_id,
                filter=filter,
                top_k=top_k,
                min_score=min_score,
                mode=mode,
                rrf_k=rrf_k,
                explain=explain,
                recency_half_life_seconds=recency_half_life_seconds,
                recency_basis=recency_basis,
                recency_weight=recency_weight,
                importance_key=importance_key,
                importance_weight=importance_weight,
                pin_boost=pin_boost,
                rerank=rerank,
                include_embedding=include_embedding,
                min_revision=min_revision,
            ),
        )
        response = self._unary(self._stub.BatchSearchMemories, request, timeout)
        return [_convert.search_result(r) for r in response.results]

    def stream_search(
        self,
        queries: Iterable[str | t.SearchQuery],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filter: str | None = None,
        top_k: int | None = None,
        min_score: float | None = None,
        mode: t.SearchMode | str | None = None,
        rrf_k: int | None = None,
        explain: bool = False,
        recency_half_life_seconds: float | None = None,
        recency_basis: t.RecencyBasis | str | None = None,
        recency_weight: float | None = None,
        importance_key: str | None = None,
        importance_weight: float | None = None,
        pin_boost: float | None = None,
        rerank: bool | None = None,
        include_embedding: bool = False,
        min_revision: int | None = None,
        timeout: float | None = None,
    ) -> Iterator[t.StreamSearchResult]:
        """Searches over one stream (StreamSearchMemories): queries go out as `queries`
        yields them and answers come back as soon as they are ready, in any order.

        Each answer carries the `query_id` of its query: the `SearchQuery`'s own,
        else the query's position ("0", "1", ...). A failed query yields an answer
        with `error` set and the stream goes on.
        """
        defaults = dict(
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
            filter=filter,
            top_k=top_k,
            min_score=min_score,
            mode=mode,
            rrf_k=rrf_k,
            explain=explain,
            recency_half_life_seconds=recency_half_life_seconds,
            recency_basis=recency_basis,
            recency_weight=recency_weight,
            importance_key=importance_key,
            importance_weight=importance_weight,
            pin_boost=pin_boost,
            rerank=rerank,
            include_embedding=include_embedding,
            min_revision=min_revision,
        )

        def requests() -> Iterator[Any]:
            for position, query in enumerate(queries):
                yield _requests.stream_search_memories(query, defaults, position)

        call = self._stub.StreamSearchMemories(
            requests(),
            timeout=call_timeout(self._settings, timeout, stream=True),
            metadata=self._settings.call_metadata(),
        )
        try:
            for response in call:
                yield _convert.stream_search_result(response)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        finally:
            call.cancel()
