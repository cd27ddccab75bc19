"""A mnemo-server subprocess for tests: real process, real signals.

The process handling is bench/_harness/process.py's, shared with the
benchmarks (pytest puts bench/ on sys.path: `pythonpath` in pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from _harness.process import SERVER, ServerProcess

__all__ = ["SERVER", "Proc"]


class Proc(ServerProcess):
    """Started and serving (the model loaded) when the constructor returns;
    no drain period on SIGTERM unless a test asks for one (--shutdown-drain-s)."""

    def __init__(self, data_dir: Path, *extra: str, env: Mapping[str, str] | None = None) -> None:
        super().__init__(data_dir, *extra, env={"MNEMO_SHUTDOWN_DRAIN_S": "0", **(env or {})})
