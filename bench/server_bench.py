"""End-to-end benchmark of mnemo-server over gRPC, against baselines measured in the same run.

For each size N it starts a fresh `python -m mnemo_server` in a temporary data
dir, loads N memories with client-supplied 384-d vectors and measures, from a
Python gRPC client on the same machine:

* an empty call (grpc.health.v1 Health/Check) on the same channel: the floor;
* ingest (BatchWriteMemories, 1,000 creates per call);
* vector search (SearchMemories `vector`, top_k 10) scoped to a big user, to a
  1,000-memory user and to the whole tenant, with recall@10 against an exact
  NumPy brute force over the vectors the bench sent; the same queries again
  (result-cache hits); 16 concurrent clients;
* BatchSearchMemories, 64 vectors per call;
* text search (SearchMemories `query`), alone and from 32 concurrent clients;
* restart (SIGTERM, then a new process on the same data dir) to health SERVING.

Apart from the cache row, no query is ever sent twice (fresh vectors, distinct
texts): the server caches embeddings and search results.

Baselines come from the same run, in this process: raw FAISS (IndexFlatIP;
IndexHNSWFlat M=32, efConstruction 40, efSearch 64 as the server builds it)
over exactly the scope's vectors before the server starts, and the
all-MiniLM-L6-v2 model itself (one text per call; 32 texts per call) right
before the text rows, while the server is idle. Every row reports the cores
used by the server, the client and other processes: the machine may be shared.

Data layout (ingest order shuffled, so every user is spread over all of the
server's key-range shards): user "small" holds 1,000 memories, user "big"
min(N - 1,000, 100,000), and the rest (only when N > 101,000) belong to users
of 1,000 memories each. Vectors are seeded and, by default, drawn near a
32-dimensional subspace like sentence embeddings (`--data uniform`: uniform
on the sphere, where no ANN index reaches useful recall).

    .venv/bin/python bench/server_bench.py --quick
    .venv/bin/python bench/server_bench.py --sizes 10000,100000 --out docs/benchmarks.md
    .venv/bin/python bench/server_bench.py --sizes '' --big 1000000 --out docs/benchmarks.md

With --out, each size's section of the file (between its marker comments) is
replaced, or appended before the `server_bench:end` marker; the rest of the
file (how to run, analysis) is left alone.

This file is the command line; the data, baselines, phases and tables live in
`bench/server_scenarios/`, the server process, timers and formats in
`bench/_harness/`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# The server's own OpenMP policy (mnemo_server/cli.py), set before FAISS or
# torch loads an OpenMP runtime, so that the in-process baselines run as the
# server runs: spinning OpenMP threads make the model up to 50x slower when
# anything else wants the cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from server_scenarios.baselines import Model
from server_scenarios.run import run_size
from server_scenarios.section import run_header, write_out
from server_scenarios.settings import QUICK, Plan


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default=None, help="comma-separated N (default 10000,100000; --quick 5000)"
    )
    parser.add_argument("--big", type=int, default=0, help="one more, large N (e.g. 1000000), run last")
    parser.add_argument("--quick", action="store_true", help="small sizes and short phases: a smoke run")
    parser.add_argument("--out", type=Path, help="write the tables into this markdown file")
    parser.add_argument(
        "--ingest-only", action="store_true", help="only the empty-call and ingest rows (not with --out)"
    )
    parser.add_argument(
        "--no-text", action="store_true", help="skip the model baseline and the text-search rows"
    )
    parser.add_argument("--data", choices=["lowrank", "uniform"], default="lowrank")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp", default=None, help="parent of the temporary data dirs")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra server flag, repeatable (e.g. --server-arg=--workers=8)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment variable for the server, repeatable",
    )
    args = parser.parse_args()
    args.env = dict(item.split("=", 1) for item in args.server_env)
    plan = QUICK if args.quick else Plan()
    default = "5000" if args.quick else "10000,100000"
    sizes = [int(s) for s in (default if args.sizes is None else args.sizes).split(",") if s.strip()]
    if args.big:
        sizes.append(args.big)
    if not sizes:
        parser.error("no sizes to run")

    model = Model()
    sections = []
    for n in sizes:
        section = run_size(n, args, plan, model)
        body = section.markdown(run_header(section, plan, args))
        print("\n" + body + "\n", flush=True)
        sections.append(body)
        if args.out:
            write_out(args.out, [body])  # after every size: a long run keeps what it measured


if __name__ == "__main__":
    main()
