"""Server-side extraction (ExtractMemories) against a baseline in the same run.

An in-process server (real store, index and model; gRPC over loopback) whose
LLM is a local OpenAI-compatible stub reached by mem0ai's real OpenAI client:

1. Cost of one extraction of a 10-message conversation yielding 5 facts,
   excluding the LLM's own time (measured around each LLM call inside the
   server and subtracted), against one BatchWriteMemories of the same 5
   facts (the write an extraction cannot avoid). Every round uses new texts,
   so no cache or dedup makes it cheaper.
2. 32 conversations of 32 users with a stub that takes 200 ms per call: the
   time for all of them against the time for one (parallel across scopes).
   The server runs in a process of its own (and the stub in a third), so the
   bench's 32 client threads do not share the server's GIL; until
   2026-12-04 they did, which added their gRPC work to the server's.
3. 32 conversations of one user: applied in the order accepted, no fact twice.

    .venv/bin/python bench/extract_bench.py [--rounds 30]

Targets (issue 12): 1. median <= 5 ms; 2. <= 1.5x one; 3. in order, no duplicates.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mnemo.v1 import extraction_service_pb2 as ex
from mnemo.v1 import extraction_service_pb2_grpc as ex_grpc
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb
from mnemo.v1 import memory_service_pb2_grpc as pb_grpc
from mnemo_server.app import App
from mnemo_server.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fake_llm", ROOT / "server/tests/extraction/fake_llm.py")
assert _spec is not None and _spec.loader is not None
fake_llm = importlib.util.module_from_spec(_spec)
sys.modules["fake_llm"] = fake_llm
_spec.loader.exec_module(fake_llm)
KEY_ENV = "MNEMO_BENCH_LLM_KEY"


class TimedEmbedder:
    """Wraps the server's embedder: the time spent embedding."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def embed(self, texts: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.inner.embed(texts)
        finally:
            with self._lock:
                self.seconds += time.perf_counter() - started


class Timed:
    """Wraps the server's LLM client: the time spent inside its calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self._lock = threading.Lock()

    def complete(self, system: str, user: str) -> str:
        started = time.perf_counter()
        try:
            return str(self.inner.complete(system, user))
        finally:
            with self._lock:
                self.seconds += time.perf_counter() - started


def conversation(tag: str) -> list[ex.ConversationMessage]:
    roles = ("user", "assistant")
    return [
        ex.ConversationMessage(
            role=roles[i % 2], content=f"message {i} of {tag}: something worth remembering"
        )
        for i in range(10)
    ]


def tag_of(call: Any) -> str:
    """The conversation's tag, from the prompt's new messages (not its existing memories)."""
    return str(call.user.split("## New Messages", 1)[1].split(" of ", 1)[1].split(":", 1)[0])


def facts_of(call: Any) -> list[str]:
    return [f"fact {k} of {tag_of(call)}" for k in range(5)]


class HashEmbedder:
    """Deterministic 32-dim vectors, for the parts about LLM waits, not the model."""

    model_id = "hash"
    dimension = 32

    def embed(self, texts: Any) -> Any:
        import numpy as np

        rows = [np.random.default_rng(abs(hash(t)) % 2**32).normal(size=32) for t in texts]
        out = np.array(rows, dtype=np.float32).reshape(len(texts), 32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def close(self) -> None:
        pass


def serve_llm(delay_s: float) -> None:
    """`--serve-llm SECONDS`: a stub LLM in its own process (its own GIL), printing its URL."""
    fake = fake_llm.FakeLlm(lambda call: fake_llm.Reply(fake_llm.memories(*facts_of(call)), delay_s=delay_s))
    print(fake.base_url, flush=True)
    sys.stdin.read()  # until the bench closes our stdin
    fake.close()


def serve_server(llm_url: str, data: Path) -> None:
    """`--serve-server LLM_URL DATA_DIR`: part 2's server (a hash embedder) in its
    own process, printing its port; stops when the bench closes our stdin."""
    settings = load_settings(
        env={},
        overrides={
            "server.address": "127.0.0.1:0",
            "server.data_dir": str(data),
            "index.snapshot_interval_s": 0,
            "extraction.provider": "openai",
            "extraction.base_url": llm_url,
            "extraction.api_key_env": KEY_ENV,
            "extraction.retries": 0,
        },
    )

    async def run() -> None:
        app = App(settings, embedder=HashEmbedder())  # type: ignore[arg-type]
        port = await app.start()
        await app.ready(timeout=300)
        print(port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await app.stop(grace=1)

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--serve-llm", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--serve-server", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_llm is not None:
        serve_llm(args.serve_llm)
        return
    if args.serve_server is not None:
        serve_server(args.serve_server[0], Path(args.serve_server[1]))
        return
    delay = {"s": 0.0}
    fake = fake_llm.FakeLlm(
        lambda call: fake_llm.Reply(fake_llm.memories(*facts_of(call)), delay_s=delay["s"])
    )
    os.environ[KEY_ENV] = fake_llm.KEY
    data = Path(tempfile.mkdtemp(prefix="extract-bench-"))
    settings = load_settings(
        env={},
        overrides={
            "server.address": "127.0.0.1:0",
            "server.data_dir": str(data),
            "index.snapshot_interval_s": 0,
            "extraction.provider": "openai",
            "extraction.base_url": fake.base_url,
            "extraction.api_key_env": KEY_ENV,
            "extraction.retries": 0,
        },
    )
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    app = App(settings)

    async def boot() -> int:
        port = await app.start()
        await app.ready(timeout=300)
        return port

    port = asyncio.run_coroutine_threadsafe(boot(), loop).result(300)
    runner = app.extraction.runner
    assert runner is not None
    timed = Timed(runner.planner.model)
    runner.planner.model = timed
    assert app.service is not None
    embedding = TimedEmbedder(app.service.embedder)
    app.service.embedder = embedding  # type: ignore[assignment]
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    extraction = ex_grpc.ExtractionServiceStub(channel)
    memory = pb_grpc.MemoryServiceStub(channel)

    def extract(user: str, tag: str) -> ex.Operation:
        request = ex.ExtractMemoriesRequest(
            messages=conversation(tag), scope=m.Scope(user_id=user), wait=True
        )
        return extraction.ExtractMemories(request, timeout=120).operation

    def batch(user: str, tag: str) -> None:
        ops = [
            pb.WriteOperation(
                create=pb.CreateMemoryRequest(memory=m.Memory(user_id=user, content=f"fact {k} of {tag}"))
            )
            for k in range(5)
        ]
        memory.BatchWriteMemories(pb.BatchWriteMemoriesRequest(operations=ops, atomic=True), timeout=60)

    for warm in range(3):  # the model, the HTTP client and the first index shard
        extract(f"warm-{warm}", f"warm{warm}")
        batch(f"warm-b{warm}", f"warmb{warm}")
    costs, baselines, llm_ms, bare, bare_base = [], [], [], [], []
    for r in range(args.rounds):
        tag = uuid.uuid4().hex[:8]
        before, embedded = timed.seconds, embedding.seconds
        started = time.perf_counter()
        op = extract(f"bench-{tag}", tag)
        total = time.perf_counter() - started
        embed_s = embedding.seconds - embedded
        assert op.state == ex.OPERATION_STATE_SUCCEEDED and len(op.result.facts) == 5, op
        llm = timed.seconds - before
        costs.append((total - llm) * 1000)
        bare.append((total - llm - embed_s) * 1000)
        llm_ms.append(llm * 1000)
        embedded = embedding.seconds
        started = time.perf_counter()
        batch(f"base-{tag}", f"b{tag}")
        took = time.perf_counter() - started
        baselines.append(took * 1000)
        bare_base.append((took - (embedding.seconds - embedded)) * 1000)
        del r
    print(f"1. one extraction, 10 messages -> 5 facts, {args.rounds} rounds (ms)\n")
    print("| what | median | p90 |")
    print("| --- | ---: | ---: |")
    for name, samples in (
        ("ExtractMemories wait=true, minus the LLM's time", costs),
        ("baseline: BatchWriteMemories of the 5 facts", baselines),
        ("ExtractMemories, minus the LLM's and the model's time", bare),
        ("baseline, minus the model's time", bare_base),
        ("(the LLM stub's time, as the server saw it)", llm_ms),
    ):
        q = statistics.quantiles(samples, n=10)
        print(f"| {name} | {statistics.median(samples):.2f} | {q[8]:.2f} |")

    delay["s"] = 0.0
    shared = f"same-{uuid.uuid4().hex[:8]}"
    fake.calls.clear()
    fake.script = lambda call: fake_llm.Reply(
        fake_llm.memories("Shared fact of the user", f"own fact of {tag_of(call)}")
    )
    started = time.perf_counter()
    with ThreadPoolExecutor(32) as pool:
        ops = list(pool.map(lambda i: extract(shared, f"c{i:02d}"), range(32)))
    took = time.perf_counter() - started
    listed = extraction.ListOperations(ex.ListOperationsRequest(scope=m.Scope(user_id=shared), page_size=100))
    accepted = [o.id for o in reversed(listed.operations)]
    by_id = {o.id: o for o in ops}
    order_ok = [by_id[i].result.facts[-1].text for i in accepted] == [
        f"own fact of {tag_of(c)}" for c in fake.calls
    ]
    stored = memory.ListMemories(
        pb.ListMemoriesRequest(scope=m.Scope(user_id=shared), page_size=1000)
    ).memories
    contents = [x.content for x in stored]
    print(
        f"\n3. 32 conversations of one user: {took * 1000:.0f} ms; applied in accepted order: {order_ok}; "
        f"{len(contents)} memories, {len(contents) - len(set(contents))} duplicates "
        f"(expected 33 and 0)"
    )
    # Part 2 is about waiting on the LLM, not about the model: a second server with
    # a hash embedder (on 2 shared cores the model would dominate), in its own
    # process (here it would share this one's GIL with the 32 client threads), and
    # the stub in a third (in the server's it would share the server's GIL).
    channel.close()
    asyncio.run_coroutine_threadsafe(app.stop(grace=1), loop).result(60)
    slow = subprocess.Popen(
        [sys.executable, __file__, "--serve-llm", "0.2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert slow.stdout is not None
    slow_url = slow.stdout.readline().strip()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve-server", slow_url, str(data / "b")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    port = int(server.stdout.readline().strip())
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    extraction = ex_grpc.ExtractionServiceStub(channel)
    memory = pb_grpc.MemoryServiceStub(channel)
    print(
        "\n(part 2: a hash embedder instead of the model; the server, the 200 ms stub LLM"
        " and the clients each in their own process)"
    )
    for warm in range(3):  # the HTTP client and the first index shard
        extract(f"warm-{warm}", f"warm{warm}")
    ones, manys = [], []
    with ThreadPoolExecutor(32) as pool:
        for _ in range(5):  # alternating, so both see the same load; medians
            started = time.perf_counter()
            extract(f"one-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8])
            ones.append(time.perf_counter() - started)
            users = [f"par-{uuid.uuid4().hex[:8]}" for _ in range(32)]
            started = time.perf_counter()
            ops = list(pool.map(lambda u: extract(u, uuid.uuid4().hex[:8]), users))
            manys.append(time.perf_counter() - started)
            failed = {op.error.reason for op in ops if op.state != ex.OPERATION_STATE_SUCCEEDED}
            assert not failed, failed
    one, many = statistics.median(ones), statistics.median(manys)
    print(
        f"\n2. LLM stub 200 ms per call (median of 5): one conversation {one * 1000:.0f} ms; "
        f"32 users at once {many * 1000:.0f} ms = {many / one:.2f}x one "
        f"(each round: {', '.join(f'{m / o:.2f}x' for o, m in zip(ones, manys, strict=True))})"
    )

    channel.close()
    assert server.stdin is not None
    server.stdin.close()
    server.wait(60)
    fake.close()
    assert slow.stdin is not None
    slow.stdin.close()
    slow.wait(30)


if __name__ == "__main__":
    main()
