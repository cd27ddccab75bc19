"""The embedding seam: text in, L2-normalized float32 vectors out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np


class Embedder(ABC):
    """Turns texts into unit vectors. Implementations are thread-safe and
    blocking; callers run them off the event loop."""

    @property
    @abstractmethod
    def model_id(self) -> str:
        """The name recorded on every memory this embedder embeds."""

    @property
    @abstractmethod
    def dimension(self) -> int: ...

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Shape (len(texts), dimension), float32, each row of norm 1.

        Raises errors.UnavailableError(reason="EMBEDDER_UNAVAILABLE") when
        the model or endpoint fails."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Releases threads and connections."""
