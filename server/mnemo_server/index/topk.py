"""Top-k selection with the index's one ordering: score descending, ties by
lower key. Shared by the oracle and the sharded index so that both order
equal scores the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from mnemo_server.index.base import Neighbor

Keys = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float32]
#: One query's partial result: keys and scores, best first.
Partial = tuple[Keys, Scores]


def top_k(keys: Keys, scores: Scores, k: int) -> Partial:
    """The best k of one query's (keys, scores), ordered.

    Selects by threshold rather than by argpartition's k positions so that a
    key tied with the k-th score is never dropped in favour of a higher key.
    """
    if scores.shape[0] > k:
        threshold = np.partition(scores, scores.shape[0] - k)[scores.shape[0] - k]
        chosen = np.flatnonzero(scores >= threshold)
        keys, scores = keys[chosen], scores[chosen]
    order = np.lexsort((keys, -scores))[:k]
    return keys[order], scores[order]


def top_k_columns(keys: Keys, scores: npt.NDArray[np.float32], k: int) -> list[Partial]:
    """top_k for each column of `scores` (shape (len(keys), n_queries))."""
    return [top_k(keys, scores[:, j], k) for j in range(scores.shape[1])]


def merge(parts: Sequence[Partial], k: int) -> list[Neighbor]:
    """Merges partial results (from several shards or plans) into the final list."""
    if not parts:
        return []
    if len(parts) == 1:
        keys, scores = parts[0]
    else:
        keys, scores = top_k(
            np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), k
        )
    return [Neighbor(key, score) for key, score in zip(keys.tolist(), scores.tolist(), strict=True)]
