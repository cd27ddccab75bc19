"""Inner-product kernels for exact scans.

Single queries and small batches use FAISS's SIMD kernels, which run on the
calling thread: no BLAS thread pool is involved. NumPy's OpenBLAS starts one
pthread per core and, when those cores are busy (embedder, other requests,
other processes), each small matrix product waits for a descheduled helper
thread: a 10,000-row scan measured 1.2 ms with one BLAS thread and 9-32 ms
with two on the 2-core development machine. Only batches of SMALL_BATCH or
more queries use BLAS, where its matrix-matrix efficiency pays; a server
should still pin OpenBLAS to one thread (OPENBLAS_NUM_THREADS=1 or
threadpoolctl) for the reason above.

Scores come back with shape (n_queries, n_rows).
"""

from __future__ import annotations

import threading
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

# faiss has no stubs and mypy sees only the pure-Python half of the package,
# not the SWIG functions used here: treat the module as untyped.
_faiss: Any = faiss

Matrix = npt.NDArray[np.float32]
Positions = npt.NDArray[np.int64]

#: From this many queries, one BLAS matrix product beats per-query kernels.
SMALL_BATCH = 8
#: Rows gathered per block: 3 MB at 384 dimensions, so the block is still in
#: cache when it is scored, and a 20,000-row scan does not allocate (and
#: page-fault) a fresh 30 MB copy per query.
BLOCK = 2048

_buffers = threading.local()


def scores_at(vectors: Matrix, positions: Positions, queries: Matrix) -> Matrix:
    """Inner products of each query with the rows of `vectors` at `positions`."""
    b, m, d = queries.shape[0], positions.shape[0], queries.shape[1]
    if b < SMALL_BATCH and m <= BLOCK:
        # No gather at all: FAISS reads the rows in place.
        out = np.empty((b, m), dtype=np.float32)
        ids = positions if b == 1 else np.tile(positions, b)
        _faiss.fvec_inner_products_by_idx(
            faiss.swig_ptr(out),
            faiss.swig_ptr(queries),
            faiss.swig_ptr(vectors),
            faiss.swig_ptr(np.ascontiguousarray(ids)),
            d,
            b,
            m,
        )
        return out
    scratch = _scratch(d)
    if b < SMALL_BATCH:
        out = np.empty((b, m), dtype=np.float32)
        for start in range(0, m, BLOCK):
            n = _gather(vectors, positions[start : start + BLOCK], scratch)
            for j in range(b):
                _inner_products(out[j, start : start + n], queries[j], scratch, n)
        return out
    transposed = np.empty((m, b), dtype=np.float32)
    for start in range(0, m, BLOCK):
        n = _gather(vectors, positions[start : start + BLOCK], scratch)
        np.matmul(scratch[:n], queries.T, out=transposed[start : start + n])
    return transposed.T


def scores_prefix(vectors: Matrix, size: int, queries: Matrix) -> Matrix:
    """Inner products of each query with rows 0..size-1 (no gather needed)."""
    if queries.shape[0] >= SMALL_BATCH:
        scores: Matrix = queries @ vectors[:size].T
        return scores
    out = np.empty((queries.shape[0], size), dtype=np.float32)
    for j in range(queries.shape[0]):
        _inner_products(out[j], queries[j], vectors, size)
    return out


def _gather(vectors: Matrix, block: Positions, scratch: Matrix) -> int:
    n = int(block.shape[0])
    # mode="clip": with the default "raise", NumPy buffers `out` (2-3x slower);
    # positions are valid by construction.
    np.take(vectors, block, axis=0, out=scratch[:n], mode="clip")
    return n


def _inner_products(out: Matrix, query: Matrix, rows: Matrix, n: int) -> None:
    _faiss.fvec_inner_products_ny(
        faiss.swig_ptr(out), faiss.swig_ptr(query), faiss.swig_ptr(rows), rows.shape[1], n
    )


def _scratch(dimension: int) -> Matrix:
    """This thread's gather buffer for vectors of `dimension`."""
    buffers: dict[int, Matrix] | None = getattr(_buffers, "by_dimension", None)
    if buffers is None:
        buffers = _buffers.by_dimension = {}
    buffer = buffers.get(dimension)
    if buffer is None:
        buffer = buffers[dimension] = np.empty((BLOCK, dimension), dtype=np.float32)
    return buffer


_omp = threading.local()


def set_omp_threads(n: int) -> None:
    """Sets FAISS's OpenMP thread count for the calling OS thread only.

    libgomp keeps nthreads-var per thread, so a worker thread's choice does
    not leak into other threads; the thread-local cache skips the SWIG call
    when nothing changes.
    """
    if getattr(_omp, "n", None) != n:
        faiss.omp_set_num_threads(n)
        _omp.n = n
