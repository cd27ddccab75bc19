"""Optional reranking of a search's top candidates by a cross-encoder.

`base.py` holds the `Reranker` interface and `RerankStage`, which runs one
and degrades to the un-reranked order when it fails; `http.py` calls an
endpoint in the TEI `/rerank` shape; `local.py` runs a sentence-transformers
CrossEncoder from a local path (docs/retrieval.md)."""

from mnemo_server.rerank.base import Reranker, RerankFailure, RerankStage

__all__ = ["RerankFailure", "RerankStage", "Reranker"]
