"""docs/operations.md lists every setting and every exported metric.

The two reference tables are generated from the code (config.setting_names()
and telemetry_metrics.METRICS) between BEGIN/END GENERATED markers; this test
fails when they drift. To rewrite them after changing a setting or a metric:

    .venv/bin/python tests/deploy/test_operations_doc.py --write
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

from mnemo_server.config import setting_names
from mnemo_server.telemetry import STAGES
from mnemo_server.telemetry_metrics import METRICS

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
REGENERATE = "python tests/deploy/test_operations_doc.py --write"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(value: Any) -> str:
    if value is dataclasses.MISSING:
        return "(computed)"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, tuple | list):
        return "`[]`" if not value else f"`{list(value)}`"
    if value == "":
        return "(empty)"
    return f"`{value}`"


def settings_table() -> str:
    lines: list[str] = []
    section = None
    for sec, name, env, flag, default, doc in setting_names():
        if sec != section:
            section = sec
            where = "top level or `[server]`" if sec == "server" else f"`[{sec}]`"
            lines += ["", f"#### {sec} ({where})", ""]
            lines += ["| key | environment | flag | default | meaning |", "| --- | --- | --- | --- | --- |"]
        lines.append(f"| `{name}` | `{env}` | `{flag}` | {_default(default)} | {_cell(doc)} |")
    return "\n".join(lines[1:])


def metrics_table() -> str:
    lines = ["| metric | type | labels | meaning |", "| --- | --- | --- | --- |"]
    for m in METRICS:
        labels = ", ".join(f"`{label}`" for label in m.labels) or "none"
        lines.append(f"| `{m.name}` | {m.type} | {labels} | {_cell(m.help)} |")
    return "\n".join(lines)


TABLES = {"settings": settings_table, "metrics": metrics_table}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- BEGIN GENERATED: {name} .*?-->\n)(.*?)(<!-- END GENERATED: {name} -->)", re.DOTALL
    )


def rendered(text: str) -> str:
    for name, make in TABLES.items():
        text, n = _block(name).subn(lambda m, make=make: m.group(1) + make() + "\n" + m.group(3), text)
        assert n == 1, f"docs/operations.md needs one GENERATED: {name} block"
    return text


def test_settings_table_lists_every_setting() -> None:
    text = DOC.read_text()
    found = _block("settings").search(text)
    assert found, "no settings block"
    for _sec, _name, env, flag, _default, _doc in setting_names():
        assert f"`{env}`" in found.group(2) and f"`{flag}`" in found.group(2), (
            f"{env} is missing from docs/operations.md; run {REGENERATE}"
        )
    assert found.group(2) == settings_table() + "\n", f"the settings table is stale; run {REGENERATE}"


def test_metrics_table_lists_every_metric() -> None:
    text = DOC.read_text()
    found = _block("metrics").search(text)
    assert found, "no metrics block"
    for m in METRICS:
        assert f"`{m.name}`" in found.group(2), f"{m.name} is missing; run {REGENERATE}"
    assert found.group(2) == metrics_table() + "\n", f"the metrics table is stale; run {REGENERATE}"


def test_stage_names_are_documented() -> None:
    text = DOC.read_text()
    for stage in STAGES:
        assert f"`{stage}`" in text, stage


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: {sys.argv[0]} --write")
    DOC.write_text(rendered(DOC.read_text()))
    print(f"rewrote the generated tables in {DOC}")
