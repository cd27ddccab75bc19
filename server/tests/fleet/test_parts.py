"""The fleet's parts without a server: the shared counters, the leader lock,
the supervisor's metrics merge, and the `workers` setting's checks."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from mnemo_server.config import ConfigError, load_settings
from mnemo_server.fleet.counters import KeyGeneration, RevisionSignal, SharedCounters
from mnemo_server.fleet.leader import FileLeaderLock
from mnemo_server.fleet.metrics import merge
from mnemo_server.fleet.supervisor import resolve


def test_a_revision_announced_by_one_process_is_read_by_another(tmp_path: Path) -> None:
    path = tmp_path / "fleet" / "counters"
    reader = RevisionSignal(SharedCounters(path))
    assert reader.latest() == 0

    def announce(value: int) -> None:
        RevisionSignal(SharedCounters(path)).announce(value)

    for value in (7, 3):  # never lowered
        child = multiprocessing.get_context("fork").Process(target=announce, args=(value,))
        child.start()
        child.join(30)
        assert child.exitcode == 0
    assert reader.latest() == 7


def test_the_key_generation_moves_on_each_change(tmp_path: Path) -> None:
    counters = SharedCounters(tmp_path / "counters")
    keys, other = KeyGeneration(counters), KeyGeneration(SharedCounters(tmp_path / "counters"))
    assert keys.current() == 0
    assert keys.changed() == 1 and other.changed() == 2
    assert keys.current() == 2
    assert RevisionSignal(counters).latest() == 0  # a slot of its own


def _hold(path: Path, ready: multiprocessing.synchronize.Event) -> None:
    assert FileLeaderLock(path).try_lead()
    ready.set()
    time.sleep(600)


def test_one_leader_at_a_time_and_a_survivor_takes_over_after_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "leader.lock"
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    holder = context.Process(target=_hold, args=(path, ready))
    holder.start()
    try:
        assert ready.wait(30)
        survivor = FileLeaderLock(path)
        assert not survivor.try_lead()
        assert path.read_text().strip() == str(holder.pid)
        assert holder.pid is not None
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(30)
        assert survivor.try_lead() and survivor.try_lead()  # taken, and kept
        assert path.read_text().strip() == str(os.getpid())
        survivor.release()
        assert FileLeaderLock(path).try_lead()
    finally:
        holder.kill()


def test_metrics_of_the_workers_are_labelled_and_merged() -> None:
    zero = (
        "# HELP mnemo_ready 1 once serving.\n# TYPE mnemo_ready gauge\nmnemo_ready 1.0\n"
        "# HELP grpc_server_handled_total Calls.\n# TYPE grpc_server_handled_total counter\n"
        'grpc_server_handled_total{grpc_code="OK",grpc_method="GetMemory"} 3.0\n'
    )
    one = zero.replace("3.0", "5.0").replace("mnemo_ready 1.0", "mnemo_ready 0.0")
    merged = merge({0: zero, 1: one}).splitlines()
    assert merged == [
        "# HELP mnemo_ready 1 once serving.",
        "# TYPE mnemo_ready gauge",
        'mnemo_ready{worker="0"} 1.0',
        'mnemo_ready{worker="1"} 0.0',
        "# HELP grpc_server_handled_total Calls.",
        "# TYPE grpc_server_handled_total counter",
        'grpc_server_handled_total{worker="0",grpc_code="OK",grpc_method="GetMemory"} 3.0',
        'grpc_server_handled_total{worker="1",grpc_code="OK",grpc_method="GetMemory"} 5.0',
    ]


def test_port_0_is_resolved_once_for_every_worker() -> None:
    assert resolve("127.0.0.1:50051") == "127.0.0.1:50051"
    host, _, port = resolve("127.0.0.1:0").rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "workers: counts server processes, expected 1 to"),
        ("-2", "workers: counts server processes, expected 1 to"),
        ("100000", "the thread pool is `threads`"),
        ("many", "workers: expected int"),
    ],
)
def test_invalid_workers_values_are_config_errors(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("`", ".")):
        load_settings(env={"MNEMO_WORKERS": value})


def test_threads_is_the_thread_pool_and_workers_default_to_one() -> None:
    settings = load_settings(env={"MNEMO_THREADS": "4"})
    assert settings.server.threads == 4 and settings.server.workers == 1
    with pytest.raises(ConfigError, match="threads"):
        load_settings(env={"MNEMO_THREADS": "0"})
