"""One size's results: its rows, its markdown table and header, and the
update of a --out file between the size's marker comments."""

from __future__ import annotations

import argparse
import os
import platform
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import faiss
import grpc

from _harness.report import git_version, ms, table

from .baselines import Model, ModelBaseline
from .settings import Plan

MARK_END = "<!-- server_bench:end -->"


@dataclass
class Row:
    operation: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    throughput: str = ""
    baseline: str = ""
    target: str = ""
    ok: bool | None = None


@dataclass
class Section:
    n: int
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    model: ModelBaseline | None = None
    others: float = 0.0  # cores other processes used during this size

    def markdown(self, header: list[str]) -> str:
        lines = [f"<!-- server_bench:N={self.n} -->", f"### N = {self.n:,} memories", ""]
        lines += [*header, ""]
        lines += table(
            ["operation", "p50 ms", "p99 ms", "throughput", "baseline", "target", "ok"],
            ["---", "---:", "---:", "---:", "---", "---", ":---:"],
            (
                [
                    r.operation,
                    ms(r.p50_ms),
                    ms(r.p99_ms),
                    r.throughput,
                    r.baseline,
                    r.target,
                    "" if r.ok is None else ("yes" if r.ok else "**no**"),
                ]
                for r in self.rows
            ),
        )
        lines.append("")
        lines += [f"- {note}" for note in self.notes]
        lines += ["", f"<!-- server_bench:N={self.n}:end -->"]
        return "\n".join(lines)


def run_header(section: Section, plan: Plan, args: argparse.Namespace) -> list[str]:
    model = section.model
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import torch

    model_others = model.others if model is not None else 0.0
    model_line = (
        f"Model baseline (in the bench process, right before the text rows while the server was "
        f"idle; best of {Model.ROUNDS} rounds): one text p50 "
        f"{model.p50_ms:.2f} ms, p99 {model.p99_ms:.2f} ms; {model.batched_per_s:,.0f} texts/s "
        "at 32 texts per call (2 torch threads)."
        if model is not None
        else "No text rows (--no-text)."
    )
    return [
        f"Finished {datetime.now(UTC):%Y-%m-%d %H:%M} UTC{' (--quick)' if args.quick else ''}; "
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB. Other processes used "
        f"{section.others:.2f} cores on average during this size ({model_others:.2f} during "
        "the model baseline). "
        f"Server code at {git_version()}. "
        f"Python {platform.python_version()}, grpcio {grpc.__version__}, faiss "
        f"{faiss.__version__}, torch {torch.__version__}. Data `{args.data}`, seed {args.seed}; "
        f"{plan.queries} single queries per row, closed-loop rows {plan.seconds:g} s "
        f"(text {plan.text_seconds:g} s). Client and server share the 2 cores."
        + (f" Server flags {args.server_arg}." if args.server_arg else "")
        + (f" Server environment {args.env}." if args.env else "")
        + (
            " **Other processes were busy: every number is pessimistic, the model baseline most of all.**"
            if max(section.others, model_others) > 0.2
            else ""
        ),
    ] + ([] if model is None and args.ingest_only else ["", model_line])


def write_out(path: Path, sections: list[str]) -> None:
    """Replaces each size's section in `path`, or inserts it before MARK_END."""
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{MARK_END}\n"
    if MARK_END not in text:
        text = text.rstrip("\n") + f"\n\n{MARK_END}\n"
    for body in sections:
        n = re.match(r"<!-- server_bench:N=(\d+) -->", body)
        assert n is not None
        pattern = re.compile(
            rf"<!-- server_bench:N={n.group(1)} -->.*?<!-- server_bench:N={n.group(1)}:end -->",
            re.S,
        )
        old = pattern.search(text)
        if old is not None:
            text = text[: old.start()] + body + text[old.end() :]
        else:
            text = text.replace(MARK_END, f"{body}\n\n{MARK_END}")
    path.write_text(text)
