"""Vector checks shared by the embedders and the service layer.

`check_vector` validates a client-supplied embedding or query vector;
`normalize_rows` is what every embedder that does not normalize itself
(the HTTP one) uses before handing vectors to the index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from mnemo_server import errors
from mnemo_server.models import Vector


def check_vector(values: Sequence[float] | npt.ArrayLike, dimension: int, field: str) -> Vector:
    """Validates a client-supplied vector and returns it L2-normalized.

    Args:
        values: the vector as sent (a protobuf repeated float, a list, an array).
        dimension: the server's embedding dimension.
        field: the request field path reported in the violation, e.g. "query_vector".

    Returns:
        A new float32 array of shape (dimension,) and norm 1.

    Raises:
        errors.InvalidArgumentError: EMBEDDING_DIMENSION_MISMATCH when the
            length is wrong; EMBEDDING_NOT_FINITE when a value is NaN or
            infinite, or all values are zero (no direction to normalize).
    """
    try:
        # float64 so that float32 extremes cannot overflow while we measure them.
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise errors.invalid("EMBEDDING_NOT_FINITE", field, "the vector must hold only numbers") from exc
    if array.ndim != 1 or array.shape[0] != dimension:
        got = array.shape[0] if array.ndim == 1 else f"shape {array.shape}"
        raise errors.invalid(
            "EMBEDDING_DIMENSION_MISMATCH",
            field,
            f"the vector has {got} values; this server's embeddings have {dimension}",
        )
    if not np.isfinite(array).all():
        raise errors.invalid("EMBEDDING_NOT_FINITE", field, "the vector holds NaN or infinity")
    if abs(float(np.dot(array, array)) - 1.0) < 1e-6:
        # Already a unit vector (an export being imported, say): keep its
        # exact float32 values rather than rounding them once more.
        kept: Vector = np.asarray(values, dtype=np.float32).copy()
        return kept
    rows = normalize_rows(array.reshape(1, dimension))
    if rows is None:
        raise errors.invalid("EMBEDDING_NOT_FINITE", field, "the vector is all zeros and has no direction")
    unit: Vector = rows[0]
    return unit


def normalize_rows(matrix: npt.NDArray[np.floating]) -> npt.NDArray[np.float32] | None:
    """Returns the rows of a finite 2-D matrix scaled to norm 1 as float32,
    or None when any row is all zeros."""
    wide = np.asarray(matrix, dtype=np.float64)
    if wide.shape[0] == 0:
        return np.zeros(wide.shape, dtype=np.float32)
    # Divide by the largest magnitude first: squares of values near the float
    # limits would overflow to inf, and those of tiny ones underflow to 0.
    scale = np.max(np.abs(wide), axis=1, keepdims=True)
    if not (scale > 0).all():
        return None
    scaled = wide / scale
    norms = np.linalg.norm(scaled, axis=1, keepdims=True)
    return np.ascontiguousarray(scaled / norms, dtype=np.float32)
