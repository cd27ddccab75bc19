"""The crash harness in CI: 20 kill -9 cycles during mixed writes lose
nothing acknowledged (docs/testing.md has the 1,000-cycle run)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import crash_harness  # bench/, on sys.path through pyproject.toml


@pytest.mark.timeout(180)
def test_twenty_kill_cycles_lose_no_acknowledged_write(tmp_path: Path) -> None:
    totals = crash_harness.run(20, seed=17, data_dir=tmp_path / "data", max_run_s=0.5, progress=False)
    assert totals.problems == []
    assert totals.cycles == 20
    assert totals.acked > 200  # the harness did write
    assert totals.uncertain > 0  # and some kills landed mid-call


@pytest.mark.timeout(60)
def test_the_check_reports_an_acknowledged_write_that_is_missing(tmp_path: Path) -> None:
    work = crash_harness.Workload(random.Random(1))
    server = crash_harness.Server(tmp_path / "data", tmp_path / "server.log")
    try:
        for _ in range(5):
            work.step(server)
        assert crash_harness.check(server, work) == []
        work.model["m-never-written"] = crash_harness.Live("phantom", 1)
        victim = next(k for k, v in work.model.items() if v is not None and k != "m-never-written")
        work.model[victim] = crash_harness.Live("other content", 9)
        problems = crash_harness.check(server, work)
        assert len(problems) == 2
    finally:
        server.kill()
