"""A sentence-transformers CrossEncoder loaded from a local directory.

Loaded once at start (no download: the path must hold the model), run on
the search's worker thread; its scores are CrossEncoder.predict's (the
sigmoid of the logit for a one-label model, in [0, 1]), higher is more
relevant."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mnemo_server.rerank.base import Reranker


class LocalReranker(Reranker):
    name = "local cross-encoder"

    def __init__(self, model_path: str | Path, *, batch_size: int = 32) -> None:
        from sentence_transformers import CrossEncoder  # heavy: only when configured

        self._model: Any = CrossEncoder(str(model_path), device="cpu", local_files_only=True)
        self._batch_size = batch_size

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        pairs = [(query, t) for t in texts]
        scores = self._model.predict(pairs, batch_size=self._batch_size, show_progress_bar=False)
        return [float(s) for s in scores]
