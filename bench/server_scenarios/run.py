"""One size, from data to restart: builds the data and its exact answers,
measures the in-process FAISS baselines, starts a server in a temporary data
dir and runs the phases of `scenarios` against it in order."""

from __future__ import annotations

import argparse
import gc
import shutil
import tempfile
import time
from pathlib import Path

import faiss

from _harness.load import CpuMeter
from _harness.process import ServerProcess

from . import scenarios
from .baselines import Model, faiss_baseline
from .dataset import build_write_batches, exact_top, make_dataset
from .section import Section
from .settings import BATCH_SEARCH, K, Plan


def run_size(n: int, args: argparse.Namespace, plan: Plan, model_runner: Model) -> Section:
    section = Section(n)
    size_meter = CpuMeter()  # servers run and are reaped within: they count as ours
    t0 = time.perf_counter()
    batch_truth = 2 * BATCH_SEARCH * plan.batch_calls  # two BatchSearch rows
    data = make_dataset(n, args.data, args.seed, plan.queries + batch_truth, plan.fresh)
    queries = data.queries
    print(
        f"[N={n:,}] data ready in {time.perf_counter() - t0:.1f} s; computing exact top-{K}",
        flush=True,
    )
    faiss.omp_set_num_threads(2)
    # Every query runs against "big" (singles and batches); only the first
    # plan.queries against the other scopes.
    truth = {
        s: exact_top(data.vectors, r, queries if s == "big" else queries[: plan.queries])
        for s, r in data.scopes.items()
    }
    print(f"[N={n:,}] raw FAISS baselines", flush=True)
    raw = faiss_baseline(data, truth, plan)
    batches = build_write_batches(data)
    gc.collect()

    work = Path(tempfile.mkdtemp(prefix="mnemo-server-bench-", dir=args.tmp))
    data_dir = work / "data"
    running: list[ServerProcess] = []  # killed on the way out if still up
    try:
        print(f"[N={n:,}] starting the server", flush=True)
        server = scenarios.start_server(data_dir, args.server_arg, args.env)
        running.append(server)
        empty_start = server.wait_serving()
        bench = scenarios.Bench(n, plan, data, truth, raw, section, server)
        scenarios.empty_calls(bench)
        scenarios.ingest_rows(bench, batches)
        if not args.ingest_only:
            scenarios.vector_rows(bench)
            scenarios.stream_rows(bench)
            scenarios.batch_rows(bench)
            if not args.no_text:
                scenarios.text_rows(bench, model_runner)
            scenarios.restart_rows(bench, data_dir, empty_start, args.server_arg, args.env, running)
    finally:
        for leftover in running:
            leftover.kill()
        shutil.rmtree(work, ignore_errors=True)
    section.others = size_meter.read().others
    section.notes.append(f"Size took {time.perf_counter() - t0:,.0f} s in all.")
    return section
