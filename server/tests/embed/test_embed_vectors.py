"""check_vector: the validation of client-supplied vectors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mnemo_server import errors
from mnemo_server.embed.vectors import check_vector


@pytest.mark.parametrize(
    "values",
    [[3.0, 4.0, 0.0], (3, 4, 0), np.array([3.0, 4.0, 0.0], dtype=np.float32)],
)
def test_returns_the_unit_float32_vector(values: Any) -> None:
    vector = check_vector(values, 3, "query_vector")

    assert vector.dtype == np.float32
    assert vector.shape == (3,)
    np.testing.assert_allclose(vector, [0.6, 0.8, 0.0], atol=1e-7)


@pytest.mark.parametrize("values", [[3e38, 3e38], [1e-45, 1e-45]])
def test_float32_extremes_normalize(values: list[float]) -> None:
    vector = check_vector(np.array(values, dtype=np.float32), 2, "v")

    np.testing.assert_allclose(vector, [2**-0.5, 2**-0.5], atol=1e-7)


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ([1.0, 2.0], "EMBEDDING_DIMENSION_MISMATCH"),
        ([], "EMBEDDING_DIMENSION_MISMATCH"),
        ([[1.0, 2.0, 3.0]], "EMBEDDING_DIMENSION_MISMATCH"),
        ([1.0, float("nan"), 0.0], "EMBEDDING_NOT_FINITE"),
        ([1.0, float("inf"), 0.0], "EMBEDDING_NOT_FINITE"),
        ([-float("inf"), 0.0, 0.0], "EMBEDDING_NOT_FINITE"),
        ([0.0, 0.0, 0.0], "EMBEDDING_NOT_FINITE"),
        ([0.0, -0.0, 0.0], "EMBEDDING_NOT_FINITE"),
        (["a", "b", "c"], "EMBEDDING_NOT_FINITE"),
    ],
)
def test_rejects_with_the_reason_and_field(values: Any, reason: str) -> None:
    with pytest.raises(errors.InvalidArgumentError) as caught:
        check_vector(values, 3, "memory.embedding")

    assert caught.value.reason == reason
    assert [v.field for v in caught.value.violations] == ["memory.embedding"]
