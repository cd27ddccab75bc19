"""Crash harness: kill -9 mnemo-server during writes, restart, check that
nothing acknowledged was lost.

Each cycle starts `python -m mnemo_server` on one data directory, checks the
whole acknowledged state (below), then runs mixed writes from one client
(creates with chosen ids, updates, deletes, and batches of 2-8 of them,
atomic or not) while index snapshots are being taken every 0.2 s, and
SIGKILLs the process after a random delay, wherever it is: mid-commit,
mid-snapshot, between commit and index apply.

The client remembers every acknowledged write: for each id the content and
version it last saw acknowledged, or that it was deleted. A call that failed
(the kill) may or may not have been applied, so its ids are "uncertain" and
either outcome is accepted once; what the server then holds is adopted. The
check after each restart, and once more at the end:

* every id acknowledged live is there with the acknowledged content and version;
* every id acknowledged deleted is gone (GetMemory NOT_FOUND);
* ListMemories holds exactly those ids (no resurrected or phantom memories);
* CheckConsistency finds the index equal to the store (the replay after the
  crash applied everything).

    .venv/bin/python bench/crash_harness.py --cycles 20
    nice -n 19 .venv/bin/python bench/crash_harness.py --cycles 1000 --seed 1

Prints one line per 50 cycles and a summary; exits 1 on any loss.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from _harness.process import ServerProcess
from mnemo.v1 import admin_service_pb2 as apb
from mnemo.v1 import memory_service_pb2 as pb

DIMENSION = 8
USER = "crash"
POPULATION = 2000
GONE = None  # the model's value for an id acknowledged deleted


@dataclass(frozen=True, slots=True)
class Live:
    content: str
    version: int


@dataclass
class Totals:
    cycles: int = 0
    acked: int = 0
    lost: int = 0
    uncertain: int = 0
    problems: list[str] = field(default_factory=list)


class Server(ServerProcess):
    """One mnemo-server process on client-supplied vectors only (no model to
    load, so a start takes a second), taking index snapshots every 0.2 s and
    committing with synchronous=FULL; its log goes to `log_path` too."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        super().__init__(
            data_dir,
            "--embedder-provider",
            "http",
            "--embedder-url",
            "http://127.0.0.1:9",
            "--embedder-dimension",
            str(DIMENSION),
            "--index-snapshot-interval-s",
            "0.2",
            "--store-synchronous",
            "FULL",
            log_path=log_path,
            timeout=60,
        )


class Workload:
    """Random mixed writes against the acknowledged model."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.model: dict[str, Live | None] = {}
        self.uncertain: dict[str, Live | None] = {}  # id -> the state if the failed call was applied
        self.next_id = 0
        self.serial = 0

    def _vector(self) -> list[float]:
        v = [self.rng.gauss(0, 1) for _ in range(DIMENSION)]
        return v if any(v) else [1.0] + [0.0] * (DIMENSION - 1)

    def _op(self, taken: set[str]) -> tuple[pb.WriteOperation, str, Live | None]:
        """One operation on an id not in `taken`, with the state it leads to."""
        live = [k for k, v in self.model.items() if v is not None and k not in taken]
        self.serial += 1
        content = f"content {self.serial}"
        kind = self.rng.random()
        # Creates outnumber deletes until the user holds POPULATION memories,
        # then they balance: the check stays fast over 1,000 cycles.
        if not live or kind < (0.45 if len(live) < POPULATION else 0.2):
            self.next_id += 1
            memory_id = f"m{self.next_id:07d}"
            memory = pb.CreateMemoryRequest(
                memory={"id": memory_id, "user_id": USER, "content": content, "embedding": self._vector()}
            )
            return pb.WriteOperation(create=memory), memory_id, Live(content, 1)
        memory_id = self.rng.choice(live)
        before = self.model[memory_id]
        assert before is not None
        if kind < 0.8:
            update = pb.UpdateMemoryRequest(
                memory={"id": memory_id, "content": content, "embedding": self._vector()},
                update_mask={"paths": ["content", "embedding"]},
            )
            return pb.WriteOperation(update=update), memory_id, Live(content, before.version + 1)
        return pb.WriteOperation(delete=pb.DeleteMemoryRequest(id=memory_id)), memory_id, GONE

    def step(self, server: Server) -> int:
        """One call; returns the writes it acknowledged. Raises grpc.RpcError
        after recording the call's ids as uncertain."""
        if self.rng.random() < 0.3:
            return self._batch(server)
        op, memory_id, after = self._op(set())
        which = op.WhichOneof("operation")
        try:
            if which == "create":
                got = server.memory.CreateMemory(op.create, timeout=10).memory
                after = Live(got.content, got.version)
            elif which == "update":
                got = server.memory.UpdateMemory(op.update, timeout=10).memory
                after = Live(got.content, got.version)
            else:
                server.memory.DeleteMemory(op.delete, timeout=10)
        except grpc.RpcError:
            self.uncertain[memory_id] = after
            raise
        self.model[memory_id] = after
        return 1

    def _batch(self, server: Server) -> int:
        planned: list[tuple[str, Live | None]] = []
        ops: list[pb.WriteOperation] = []
        for _ in range(self.rng.randint(2, 8)):
            op, memory_id, after = self._op({m for m, _ in planned})
            ops.append(op)
            planned.append((memory_id, after))
        atomic = self.rng.random() < 0.5
        try:
            response = server.memory.BatchWriteMemories(
                pb.BatchWriteMemoriesRequest(operations=ops, atomic=atomic), timeout=10
            )
        except grpc.RpcError:
            self.uncertain.update(planned)
            raise
        acked = 0
        for (memory_id, after), result in zip(planned, response.results, strict=True):
            if result.status.code != 0:
                raise AssertionError(f"batch op on {memory_id} failed: {result.status}")
            self.model[memory_id] = after
            acked += 1
        return acked


def check(server: Server, work: Workload) -> list[str]:
    """Problems with the server's state against the model (empty: none);
    uncertain ids take whichever of their two states the server holds, and
    that state is adopted."""
    found: dict[str, Live] = {}
    token = ""
    while True:
        page = server.memory.ListMemories(
            pb.ListMemoriesRequest(
                scope={"user_id": USER},
                page_size=1000,
                page_token=token,
                read_mask={"paths": ["id", "content", "version"]},
            ),
            timeout=30,
        )
        found.update((m.id, Live(m.content, m.version)) for m in page.memories)
        token = page.next_page_token
        if not token:
            break
    problems: list[str] = []
    for memory_id in sorted(set(work.model) | set(found) | set(work.uncertain)):
        actual = found.get(memory_id, GONE)
        expected = work.model.get(memory_id, GONE)
        if actual == expected:
            continue
        if memory_id in work.uncertain and actual == work.uncertain[memory_id]:
            work.model[memory_id] = actual
            continue
        problems.append(f"{memory_id}: acknowledged {expected}, found {actual}")
    work.uncertain.clear()
    report = server.admin.CheckConsistency(apb.CheckConsistencyRequest(repair=False), timeout=60)
    if not report.consistent:
        problems.append(f"index differs from the store: {list(report.inconsistencies)[:3]}")
    return problems


def _write_until_killed(server: Server, work: Workload, after_s: float) -> tuple[int, int]:
    """Writes from a thread until the server is SIGKILLed `after_s` seconds
    in, wherever the server is then; returns (acknowledged writes, 1 if the
    kill landed during a call else 0)."""
    acked = [0, 0]
    errors: list[str] = []

    def writer() -> None:
        try:
            while True:
                acked[0] += work.step(server)
        except grpc.RpcError as exc:
            acked[1] = 1
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                # Only the kill may stop the writes.
                errors.append(f"{exc.code().name}: {exc.details()}")
        except Exception as exc:  # a harness bug must not pass for a clean run
            errors.append(repr(exc))

    thread = threading.Thread(target=writer, name="crash-writer")
    thread.start()
    time.sleep(after_s)
    server.popen.send_signal(signal.SIGKILL)
    server.popen.wait(60)
    thread.join(60)
    if errors:
        raise AssertionError(f"a write failed before the kill: {errors[0]}")
    return acked[0], acked[1]


def run(cycles: int, *, seed: int, data_dir: Path, max_run_s: float = 0.8, progress: bool = True) -> Totals:
    rng = random.Random(seed)
    work = Workload(rng)
    totals = Totals()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-server.log"
    started = time.monotonic()
    for cycle in range(cycles + 1):
        server = Server(data_dir, log_path)
        try:
            problems = check(server, work)
            totals.problems.extend(f"cycle {cycle}: {p}" for p in problems)
            totals.lost += len(problems)
            if cycle == cycles:
                break
            acked = _write_until_killed(server, work, rng.uniform(0.05, max_run_s))
            totals.acked += acked[0]
            totals.uncertain += acked[1]
        finally:
            server.kill(signal.SIGTERM)
        totals.cycles = cycle + 1
        if progress and (cycle + 1) % 50 == 0:
            print(
                f"cycle {cycle + 1}: {totals.acked} acknowledged, {totals.lost} lost, "
                f"{time.monotonic() - started:.0f} s",
                flush=True,
            )
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, help="kept afterwards (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mnemo-crash-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        totals = run(args.cycles, seed=args.seed, data_dir=data_dir)
    summary: dict[str, Any] = {
        "cycles": totals.cycles,
        "acknowledged_writes": totals.acked,
        "lost": totals.lost,
        "kills_mid_call": totals.uncertain,
        "seconds": round(time.monotonic() - started, 1),
    }
    for problem in totals.problems[:20]:
        print("LOST", problem)
    print(
        f"{summary['cycles']} cycles, {summary['acknowledged_writes']} acknowledged writes, "
        f"{summary['lost']} lost, {summary['kills_mid_call']} kills mid-call, {summary['seconds']} s"
    )
    if args.json:
        args.json.write_text(json.dumps(summary) + "\n")
    return 1 if totals.lost else 0


if __name__ == "__main__":
    sys.exit(main())
