"""The programs in examples/ run against a real server and recall what they stored."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
NODE_DIST = ROOT / "clients" / "node" / "dist" / "index.js"


def run(command: list[str], server: Any) -> list[str]:
    env = {**os.environ, "MNEMO_ADDRESS": server.address}
    env.pop("MNEMO_API_KEY", None)
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def check_transcript(lines: list[str]) -> None:
    assert sum(line.startswith("user:") for line in lines) == 4
    # The third turn recalls what the first two stored.
    third = [line for line in lines if line.startswith("agent:")][2]
    assert "peanuts" in third or "cycle" in third, third
    assert lines[-1] == "recalled: I am allergic to peanuts."


def test_the_python_agent_loop(server: Any) -> None:
    check_transcript(run([sys.executable, str(EXAMPLES / "agent_loop.py")], server))


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_node_agent_loop(server: Any) -> None:
    if not NODE_DIST.exists():
        pytest.skip("the Node SDK is not built (cd clients/node && npm run build)")
    check_transcript(run(["node", str(EXAMPLES / "agent-loop.mjs")], server))
