"""Percentiles, number formats and markdown tables for the benchmarks' output."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[2]


def pct(samples_ns: Sequence[int] | npt.NDArray[np.int64], q: float) -> float:
    """The q-th percentile of nanosecond samples, in milliseconds."""
    return float(np.percentile(np.asarray(samples_ns), q) / 1e6)


def ms(value: float | None) -> str:
    """Milliseconds as a table cell: 3 decimals below 10, else 1; '' for none."""
    if value is None:
        return ""
    return f"{value:.3f}" if value < 10 else f"{value:,.1f}"


def per_s(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}"


def table(header: Sequence[str], align: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A markdown table's lines; `align` holds each column's separator
    (`---`, `---:`, `:---:`)."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def git_version(root: Path = ROOT) -> str:
    """The commit, marked dirty when server/ has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "server"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"`{head}`" + (" with uncommitted changes" if dirty else "")
