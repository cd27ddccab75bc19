"""The fuzzer: hostile filters, page tokens, order_by strings, whole request
messages and raw request bytes for every RPC, against a real server on
loopback.

Invariant: no case crashes the runner or the server, and no status, top
level or nested (a batch's results, an import's failures, a stream's
errors), is INTERNAL or UNKNOWN. Every response that does arrive is also
converted by the Python SDK, which must not fail on anything the server
sends. The parsers are fed in process too (filter, order_by, page token),
where only their documented InvalidArgumentError may come out.

    PYTHONPATH=server .venv/bin/python -m tests.fuzz.run --runs 1000000

prints progress and ends with a JSON summary; the exit status is 1 when any
case broke the invariant. `--seed` replays a run; each failure names the
case index, its kind, method and a prefix of its bytes. The embedder is a
hash at the seam: the cases are about decoding and validation, and a model
would make each search cost a forward pass.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from mnemo._core import conversions as sdk
from mnemo.v1 import admin_service_pb2 as admin_pb
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server import filters
from mnemo_server.embed.base import Embedder
from mnemo_server.errors import InvalidArgumentError
from mnemo_server.pagination import decode_token
from mnemo_server.service import parse_order_by

from ..conftest import RunningServer, make_settings, start_server
from . import generators as g

DIMENSION = 8
BAD_CODES = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
#: Nested google.rpc.Status codes that break the invariant (UNKNOWN, INTERNAL).
BAD_NESTED = (2, 13)
TIMEOUT_S = 10.0


class HashEmbedder(Embedder):
    """A unit vector from a hash of the text: deterministic, instant."""

    @property
    def model_id(self) -> str:
        return "fuzz-hash"

    @property
    def dimension(self) -> int:
        return DIMENSION

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            digest = hashlib.sha256(text.encode("utf-8", "replace")).digest()
            row = np.frombuffer(digest[: DIMENSION * 4], dtype=np.uint32).astype(np.float32) + 1.0
            rows.append(row / np.linalg.norm(row))
        return np.stack(rows)


@dataclass
class Report:
    cases: int = 0
    seconds: float = 0.0
    crashes: int = 0
    internal: int = 0
    unknown: int = 0
    deadline: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.crashes or self.internal or self.unknown)

    def fail(self, what: str, **info: Any) -> None:
        if len(self.failures) < 50:
            self.failures.append({"what": what, **info})

    def summary(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "seconds": round(self.seconds, 1),
            "cases_per_s": round(self.cases / self.seconds, 1) if self.seconds else 0,
            "crashes": self.crashes,
            "internal": self.internal,
            "unknown": self.unknown,
            "deadline_exceeded": self.deadline,
            "kinds": dict(self.kinds),
            "codes": dict(self.codes.most_common()),
            "failures": self.failures,
        }


class Fuzzer:
    """Runs cases against a server it owns (restarted on fresh files now and then)."""

    def __init__(self, *, seed: int, restart_every: int = 20_000) -> None:
        self.seed = seed
        self.restart_every = restart_every
        self.report = Report()
        self.server: RunningServer | None = None
        self.data_dir: Path | None = None
        self.tokens: list[str] = []
        self.ids: list[str] = []
        self.methods = {path: method for path, method in g.METHODS}

    # -- the server ---------------------------------------------------------------

    def start(self) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="mnemo-fuzz-"))
        settings = make_settings(self.data_dir, limits={"max_content_bytes": 32 * 1024})
        self.server = start_server(settings, HashEmbedder())
        self._seed_data()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def _seed_data(self) -> None:
        """A few memories and keys, and real page tokens to forge from."""
        s = self.server
        assert s is not None
        self.ids = []
        for i in range(4):
            memory = m.Memory(user_id="fuzz-user", content=f"seed memory {i}", tags=["t"], pinned=i % 2 == 0)
            memory.metadata["count"].int_value = i
            self.ids.append(s.memory.CreateMemory(pb.CreateMemoryRequest(memory=memory)).memory.id)
        s.memory.UpdateMemory(
            pb.UpdateMemoryRequest(
                memory=m.Memory(id=self.ids[0], content="changed"), update_mask={"paths": ["content"]}
            )
        )
        tokens = []
        for order in ("", "update_time asc", "id desc", "create_time, id"):
            page = s.memory.ListMemories(pb.ListMemoriesRequest(order_by=order, page_size=1))
            tokens.append(page.next_page_token)
        history = s.memory.GetMemoryHistory(pb.GetMemoryHistoryRequest(id=self.ids[0], page_size=1))
        tokens.append(history.next_page_token)
        for _ in range(2):
            s.admin.CreateApiKey(admin_pb.CreateApiKeyRequest(role=admin_pb.API_KEY_ROLE_READER))
        keys = s.admin.ListApiKeys(admin_pb.ListApiKeysRequest(page_size=1))
        tokens.append(keys.next_page_token)
        self.tokens = [t for t in tokens if t]

    # -- cases ----------------------------------------------------------------------

    def run(
        self, runs: int, *, seconds: float | None = None, progress_every: int = 0, first: int = 0
    ) -> Report:
        """Cases `first` .. `runs` - 1 (a run from `first` replays a longer run's cases from
        there, on the fresh server that run had at a multiple of restart_every)."""
        start = time.monotonic()
        try:
            self.start()
            for i in range(first, runs):
                if seconds is not None and time.monotonic() - start > seconds:
                    break
                if i != first and i % self.restart_every == 0:
                    self.stop()
                    self.start()
                self.case(i)
                if progress_every and (i + 1) % progress_every == 0:
                    self.report.seconds = time.monotonic() - start
                    r = self.report
                    print(
                        f"{r.cases} cases {r.seconds:.0f}s crashes={r.crashes} internal={r.internal}"
                        f" unknown={r.unknown} deadline={r.deadline}",
                        flush=True,
                    )
        finally:
            self.stop()
            self.report.seconds = time.monotonic() - start
        return self.report

    def case(self, index: int) -> None:
        rng = random.Random(f"{self.seed}:{index}")
        kind = rng.choices(("filter", "order_by", "page_token", "message", "bytes"), (2, 1, 2, 3, 3))[0]
        self.report.cases += 1
        self.report.kinds[kind] += 1
        try:
            getattr(self, f"_case_{kind}")(rng, index)
        except Exception as exc:  # the runner itself must never fail
            self.report.crashes += 1
            self.report.fail("crash", index=index, kind=kind, error=f"{type(exc).__name__}: {exc}"[:300])

    def _in_process(self, index: int, what: str, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except InvalidArgumentError:
            pass
        except Exception as exc:
            self.report.crashes += 1
            self.report.fail(
                what, index=index, input=repr(args)[:200], error=f"{type(exc).__name__}: {exc}"[:200]
            )

    def _case_filter(self, rng: random.Random, index: int) -> None:
        text = g.filter_text(rng)
        self._in_process(index, "parse_filter", _parse_and_format, text)
        wire = text.encode("utf-8", "replace").decode()
        scope = m.Scope(user_id="fuzz-user") if rng.random() < 0.5 else m.Scope()
        which = rng.randrange(5)
        if which == 0:
            request: Any = pb.ListMemoriesRequest(scope=scope, filter=wire, page_size=rng.choice((0, 1, 5)))
            self._typed("/mnemo.v1.MemoryService/ListMemories", request, index)
        elif which == 1:
            request = pb.SearchMemoriesRequest(scope=scope, query="seed", filter=wire, top_k=3)
            self._typed("/mnemo.v1.MemoryService/SearchMemories", request, index)
        elif which == 2:
            request = pb.DeleteMemoriesRequest(scope=scope, filter=wire, dry_run=True)
            self._typed("/mnemo.v1.MemoryService/DeleteMemories", request, index)
        elif which == 3:
            request = pb.ExportMemoriesRequest(scope=scope, filter=wire)
            self._typed("/mnemo.v1.MemoryService/ExportMemories", request, index)
        else:
            request = pb.WatchMemoriesRequest(scope=scope, filter=wire, start_revision=1)
            self._typed("/mnemo.v1.MemoryService/WatchMemories", request, index)

    def _case_order_by(self, rng: random.Random, index: int) -> None:
        text = g.order_by(rng)
        self._in_process(index, "parse_order_by", parse_order_by, text)
        request = pb.ListMemoriesRequest(
            order_by=text.encode("utf-8", "replace").decode(), page_size=rng.choice((0, 1, 2))
        )
        self._typed("/mnemo.v1.MemoryService/ListMemories", request, index)

    def _case_page_token(self, rng: random.Random, index: int) -> None:
        token = g.page_token(rng, self.tokens).encode("utf-8", "replace").decode()
        self._in_process(index, "decode_token", decode_token, token, "q", [int, str])
        which = rng.randrange(4)
        if which == 0:
            request: Any = pb.ListMemoriesRequest(page_token=token, page_size=1)
            path = "/mnemo.v1.MemoryService/ListMemories"
        elif which == 1:
            request = pb.ListMemoriesRequest(
                page_token=token, order_by=rng.choice(("id desc", "create_time, id"))
            )
            path = "/mnemo.v1.MemoryService/ListMemories"
        elif which == 2:
            request = pb.GetMemoryHistoryRequest(
                id=rng.choice(self.ids) if self.ids else "x", page_token=token
            )
            path = "/mnemo.v1.MemoryService/GetMemoryHistory"
        else:
            request = admin_pb.ListApiKeysRequest(page_token=token)
            path = "/mnemo.v1.AdminService/ListApiKeys"
        self._typed(path, request, index)

    def _case_message(self, rng: random.Random, index: int) -> None:
        path, method = rng.choice(g.METHODS)
        cls = g.message_class(method.input_type)
        count = rng.randint(1, 3) if method.client_streaming else 1
        payloads = [g.fill(rng, cls(), vector=DIMENSION).SerializeToString() for _ in range(count)]
        if method.client_streaming and path.endswith("ImportMemories") and rng.random() < 0.7:
            header = pb.ImportMemoriesRequest()
            header.header.format_version = 1
            payloads.insert(0, header.SerializeToString())
        self._call(path, payloads, index)

    def _case_bytes(self, rng: random.Random, index: int) -> None:
        path, method = rng.choice(g.METHODS)
        count = rng.randint(1, 3) if method.client_streaming else 1
        self._call(path, [g.request_bytes(rng, method, vector=DIMENSION) for _ in range(count)], index)

    # -- calls ----------------------------------------------------------------------

    def _typed(self, path: str, request: Any, index: int) -> None:
        self._call(path, [request.SerializeToString()], index)

    def _call(self, path: str, payloads: list[bytes], index: int) -> None:
        s = self.server
        assert s is not None
        method = self.methods[path]
        out_cls = g.message_class(method.output_type)
        responses: list[bytes] = []
        channel = s.channel
        try:
            if not method.client_streaming and not method.server_streaming:
                responses.append(channel.unary_unary(path)(payloads[0], timeout=TIMEOUT_S))
            elif not method.client_streaming:
                call = channel.unary_stream(path)(payloads[0], timeout=TIMEOUT_S)
                responses.extend(_first(call, 1 if path.endswith("WatchMemories") else 3))
            elif not method.server_streaming:
                responses.append(channel.stream_unary(path)(iter(payloads), timeout=TIMEOUT_S))
            else:
                responses.extend(_first(channel.stream_stream(path)(iter(payloads), timeout=TIMEOUT_S), 10))
            self.report.codes["OK"] += 1
        except grpc.RpcError as exc:
            code = exc.code()
            self.report.codes[code.name] += 1
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                self.report.deadline += 1
            if code in BAD_CODES:
                if code == grpc.StatusCode.INTERNAL:
                    self.report.internal += 1
                else:
                    self.report.unknown += 1
                self.report.fail(
                    code.name,
                    index=index,
                    method=path,
                    details=str(exc.details())[:300],
                    bytes=payloads[0][:200].hex(),
                )
        for raw in responses:
            self._check_response(path, out_cls.FromString(raw), index)

    def _check_response(self, path: str, message: Any, index: int) -> None:
        """Nested statuses are sound, and the Python SDK reads whatever came."""
        nested: list[int] = []
        name = message.DESCRIPTOR.name
        if name == "BatchWriteMemoriesResponse":
            nested = [r.status.code for r in message.results]
        elif name == "ImportMemoriesResponse":
            nested = [f.status.code for f in message.failures]
        elif name == "StreamSearchMemoriesResponse" and message.HasField("error"):
            nested = [message.error.code]
        for code in nested:
            if code in BAD_NESTED:
                self.report.internal += code == 13
                self.report.unknown += code == 2
                self.report.fail("nested status", index=index, method=path, code=code)
        convert = SDK_READERS.get(name)
        if convert is not None:
            try:
                convert(message)
            except Exception as exc:
                self.report.crashes += 1
                self.report.fail("sdk", index=index, method=path, error=f"{type(exc).__name__}: {exc}"[:200])


def _first(call: Any, limit: int) -> Iterator[bytes]:
    """Up to `limit` responses of a stream, then the stream is cancelled."""
    got = []
    try:
        for response in call:
            got.append(response)
            if len(got) >= limit:
                break
    finally:
        call.cancel()
    return iter(got)


def _parse_and_format(text: str) -> None:
    """A filter that parses formats to one that parses to the same tree."""
    expr = filters.parse_filter(text)
    if expr is not None:
        again = filters.parse_filter(filters.format_filter(expr))
        assert filters.format_filter(again) == filters.format_filter(expr), text


def _export(message: Any) -> None:
    if message.HasField("header"):
        sdk.export_header(message.header)
    else:
        sdk.memory(message.memory)


SDK_READERS: dict[str, Any] = {
    "CreateMemoryResponse": sdk.create_result,
    "GetMemoryResponse": lambda r: sdk.memory(r.memory),
    "UpdateMemoryResponse": lambda r: sdk.memory(r.memory),
    "ListMemoriesResponse": sdk.memory_page,
    "SearchMemoriesResponse": sdk.search_result,
    "StreamSearchMemoriesResponse": sdk.stream_search_result,
    "BatchWriteMemoriesResponse": sdk.batch_write_result,
    "GetMemoryHistoryResponse": sdk.history_page,
    "DeleteMemoriesResponse": sdk.delete_memories_result,
    "ImportMemoriesResponse": sdk.import_result,
    "ExportMemoriesResponse": _export,
    "GetStatsResponse": sdk.stats,
    "CheckConsistencyResponse": sdk.consistency_report,
    "CreateSnapshotResponse": sdk.snapshot,
    "ReembedMemoriesResponse": sdk.reembed_progress,
    "CreateApiKeyResponse": sdk.created_api_key,
    "ListApiKeysResponse": sdk.api_key_page,
    "RevokeApiKeyResponse": lambda r: sdk.api_key(r.api_key),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000, help="cases to run [10000]")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    parser.add_argument("--seed", type=int, default=0, help="replays a run [0]")
    parser.add_argument("--first", type=int, default=0, help="start at this case index (replays)")
    parser.add_argument("--progress", type=int, default=10_000, help="print a line every N cases")
    parser.add_argument(
        "--restart-every", type=int, default=20_000, help="fresh server and files every N cases"
    )
    parser.add_argument("--log", default="", help="write the server's errors (tracebacks) to this file")
    args = parser.parse_args(argv)
    if args.log:
        logging.basicConfig(level=logging.ERROR, filename=args.log)
    else:
        logging.basicConfig(level=logging.CRITICAL)
    fuzzer = Fuzzer(seed=args.seed, restart_every=args.restart_every)
    report = fuzzer.run(args.runs, seconds=args.seconds, progress_every=args.progress, first=args.first)
    print(json.dumps(report.summary(), indent=2), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
