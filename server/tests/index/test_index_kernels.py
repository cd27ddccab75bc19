"""The exact-scan kernels agree with a plain NumPy product on every path."""

from __future__ import annotations

import numpy as np
import pytest

from mnemo_server.index import kernels


@pytest.mark.parametrize("n_queries", [1, 3, kernels.SMALL_BATCH, 20])
@pytest.mark.parametrize("n_rows", [0, 1, 700, kernels.BLOCK + 1, 3 * kernels.BLOCK + 5])
def test_scores_match_numpy(n_queries: int, n_rows: int) -> None:
    rng = np.random.default_rng(n_queries * 1000 + n_rows)
    vectors = rng.standard_normal((10000, 24), dtype=np.float32)
    queries = rng.standard_normal((n_queries, 24), dtype=np.float32)
    positions = np.sort(rng.choice(9000, n_rows, replace=False)).astype(np.int64)
    want = queries @ vectors[positions].T
    got = kernels.scores_at(vectors, positions, queries)
    assert got.shape == (n_queries, n_rows)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    prefix = kernels.scores_prefix(vectors, 9000, queries)
    np.testing.assert_allclose(prefix, queries @ vectors[:9000].T, rtol=1e-5, atol=1e-5)
