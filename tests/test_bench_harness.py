"""bench/_harness against a real server process, and the parts of
bench/server_bench.py that shape its output: the markdown table of a size and
the --out file update that docs/benchmarks.md relies on."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2

from _harness.load import CpuMeter, closed_loop, timed
from _harness.process import ROOT, SERVING_LINE, ServerProcess
from _harness.report import ms, pct, table
from mnemo.v1 import memory_service_pb2 as pb
from server_scenarios.section import MARK_END, Row, Section, write_out

NO_MODEL = (
    "--embedder-provider",
    "http",
    "--embedder-url",
    "http://127.0.0.1:9",
    "--embedder-dimension",
    "4",
)


@pytest.mark.timeout(120)
def test_a_server_process_serves_measures_and_stops_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    server = ServerProcess(tmp_path / "data", *NO_MODEL, until="port", log_path=log)
    try:
        assert server.port > 0 and server.target == f"127.0.0.1:{server.port}"
        assert server.wait_serving(60) > 0
        check = health_pb2.HealthCheckRequest()
        samples, rate = timed(lambda i: server.health.Check(check), 20, warmup=2)
        assert len(samples) == 20 and rate > 0 and pct(samples, 50) > 0
        memory = pb.CreateMemoryRequest()
        memory.memory.user_id, memory.memory.content = "u", "hello"
        memory.memory.embedding.extend([1.0, 0.0, 0.0, 0.0])
        created = server.memory.CreateMemory(memory, timeout=30).memory
        stubs = [server.memory]
        load = closed_loop(
            lambda c, i: stubs[c].GetMemory(pb.GetMemoryRequest(id=created.id), timeout=30), 1, 0.3, server
        )
        assert len(load.samples) > 0 and load.per_s > 0 and load.cpu.server >= 0
        assert server.rss_mib() > 10 and server.cpu_seconds() > 0
    finally:
        took = server.stop(60)
    assert took >= 0 and server.popen.returncode == 0
    assert server.logged(r"listening on") and "listening on" in log.read_text()  # the log file too


def test_only_the_serving_line_counts_as_serving_not_a_path_that_contains_the_word() -> None:
    # The loader logs the data directory just before it is SERVING; under a
    # pytest tmp_path named after a test about serving, that line once passed
    # for "serving" and a test checked health before it was SERVING.
    early = (
        "2026-12-04 13:57:49,504 INFO mnemo.service: no usable index snapshot in "
        "/tmp/pytest-of-root/pytest-0/test_health_is_serving_for_eve0/data/index; rebuilding from the store\n"
    )
    assert not SERVING_LINE.search(early)
    assert not SERVING_LINE.search("WARNING mnemo.service: no snapshot written (x); serving without it\n")
    assert SERVING_LINE.search("2026-12-04 13:57:49,510 INFO mnemo.app: serving\n")
    assert SERVING_LINE.search("INFO mnemo.fleet: all 2 workers serving\n")


@pytest.mark.timeout(60)
def test_a_server_that_cannot_start_raises_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="did not start") as failed:
        ServerProcess(tmp_path / "data", "--no-such-flag")
    assert "--no-such-flag" in str(failed.value)  # the server's own complaint is in the message


@pytest.mark.timeout(60)
def test_kill_stops_a_running_server_and_stop_reports_a_bad_exit(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", *NO_MODEL)
    server.kill(signal.SIGKILL)
    assert server.popen.returncode == -signal.SIGKILL
    server = ServerProcess(tmp_path / "data", *NO_MODEL)
    server.popen.send_signal(signal.SIGKILL)
    server.popen.wait(30)
    with pytest.raises(RuntimeError, match="exited with"):
        server.stop(30)


def test_formats_and_tables() -> None:
    assert pct([1_000_000, 3_000_000], 50) == 2.0
    assert (ms(None), ms(0.12345), ms(1234.56)) == ("", "0.123", "1,234.6")
    assert table(["a", "b"], ["---", "---:"], [[1, ""]]) == ["| a | b |", "| --- | ---: |", "| 1 |  |"]
    meter = CpuMeter()
    sum(range(200_000))
    assert meter.read().client >= 0


def test_a_size_section_replaces_its_own_markers_and_keeps_the_rest(tmp_path: Path) -> None:
    section = Section(2000, rows=[Row("empty call", 0.5, 1.25, "10 calls/s", "base", "t", False)])
    body = section.markdown(["header line"])
    assert "| empty call | 0.500 | 1.250 | 10 calls/s | base | t | **no** |" in body.splitlines()
    out = tmp_path / "bench.md"
    out.write_text(f"# Benchmarks\n\nanalysis stays\n\n{MARK_END}\n")
    write_out(out, [body])
    write_out(out, [body.replace("header line", "second run")])
    text = out.read_text()
    assert text.count("<!-- server_bench:N=2000 -->") == 1 and "second run" in text
    assert "header line" not in text and "analysis stays" in text and text.rstrip().endswith(MARK_END)


def test_the_documented_command_line_is_unchanged() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "server_bench.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for flag in (
        "--sizes",
        "--big",
        "--quick",
        "--out",
        "--data",
        "--seed",
        "--tmp",
        "--server-arg",
        "--server-env",
    ):
        assert flag in result.stdout
