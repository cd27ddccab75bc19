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
#: One query's partial result: keys and scores, in any order, that contain
#: its best k within one shard or plan (merge picks the final k).
Partial = tuple[Keys, Scores]
#: Up to this many candidates a partial is passed on unreduced: one top-k
#: over the merged candidates of all shards is cheaper than one per shard.
UNREDUCED_MAX = 4096


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


def partials(keys: Keys, scores: npt.NDArray[np.float32], k: int) -> list[Partial]:
    """One partial per row of `scores` (shape (n_queries, len(keys))),
    reduced to its top k only when there are many candidates."""
    if keys.shape[0] <= UNREDUCED_MAX:
        return [(keys, scores[j]) for j in range(scores.shape[0])]
    return [top_k(keys, scores[j], k) for j in range(scores.shape[0])]


def merge(parts: Sequence[Partial], k: int) -> list[Neighbor]:
    """Merges partial results (from several shards or plans) into the final list."""
    if not parts:
        return []
    if len(parts) == 1:
        keys, scores = top_k(parts[0][0], parts[0][1], k)
    else:
        keys, scores = top_k(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), k)
    return [Neighbor(key, score) for key, score in zip(keys.tolist(), scores.tolist(), strict=True)]
