"""What the overview shows beside GetStats (which the page calls with the
session's key): the server's version, health, settings with secrets
redacted, and request counts and latencies read from the metrics registry.

Settings and request metrics describe the whole server, not a tenant's
data, and are given to admin sessions only.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from mnemo_server.config import Settings

REDACTED: Final = "(redacted)"
#: Settings whose value is a secret, by name.
SECRET_NAMES: Final = re.compile(r"(^|_)(key|secret|password|token|dsn|credentials?)$")
#: user:password@ inside a URL (redis://:pw@host, postgresql://u:pw@host).
URL_CREDENTIALS: Final = re.compile(r"(?<=://)[^/@\s]*@")


def redacted_settings(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every setting by section, secrets replaced by "(redacted)" (empty ones stay empty)."""
    out: dict[str, dict[str, Any]] = {}
    for section in dataclasses.fields(settings):
        values = getattr(settings, section.name)
        shown: dict[str, Any] = {}
        for f in dataclasses.fields(values):
            shown[f.name] = _shown(f.name, getattr(values, f.name))
        out[section.name] = shown
    return out


def _shown(name: str, value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        if value and SECRET_NAMES.search(name):
            return REDACTED
        return URL_CREDENTIALS.sub(REDACTED + "@", value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, tuple | list):
        return [_shown(name, v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _shown(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)


def request_metrics(registry: Any) -> dict[str, Any]:
    """Per-RPC totals from the registry's grpc_server_* families: calls
    started, handled by status code, and latency quantiles estimated from the
    histogram buckets. The page turns successive totals into rates."""
    methods: dict[tuple[str, str], dict[str, Any]] = {}
    process: dict[str, float] = {}

    def entry(labels: dict[str, str]) -> dict[str, Any]:
        key = (labels.get("grpc_service", ""), labels.get("grpc_method", ""))
        return methods.setdefault(
            key,
            {
                "service": key[0],
                "method": key[1],
                "started": 0,
                "codes": {},
                "count": 0,
                "sum_s": 0.0,
                "buckets": [],
            },
        )

    for family in registry.collect():
        for sample in family.samples:
            labels = dict(sample.labels)
            if sample.name == "grpc_server_started_total":
                entry(labels)["started"] += int(sample.value)
            elif sample.name == "grpc_server_handled_total":
                codes = entry(labels)["codes"]
                codes[labels["grpc_code"]] = codes.get(labels["grpc_code"], 0) + int(sample.value)
            elif sample.name == "grpc_server_handling_seconds_bucket":
                entry(labels)["buckets"].append((float(labels["le"]), sample.value))
            elif sample.name == "grpc_server_handling_seconds_count":
                entry(labels)["count"] += int(sample.value)
            elif sample.name == "grpc_server_handling_seconds_sum":
                entry(labels)["sum_s"] += sample.value
            elif sample.name in (
                "process_resident_memory_bytes",
                "process_cpu_seconds_total",
                "process_open_fds",
            ):
                process[sample.name] = sample.value
    rows = []
    for row in sorted(methods.values(), key=lambda r: (r["service"], r["method"])):
        buckets = sorted(row.pop("buckets"))
        row["p50_s"] = _quantile(buckets, 0.5)
        row["p95_s"] = _quantile(buckets, 0.95)
        row["p99_s"] = _quantile(buckets, 0.99)
        rows.append(row)
    return {"methods": rows, "process": process}


def _quantile(buckets: Iterable[tuple[float, float]], q: float) -> float | None:
    """The q-quantile of a cumulative histogram, interpolated inside its
    bucket as Prometheus' histogram_quantile does; None with no observations."""
    points = list(buckets)
    if not points or points[-1][1] <= 0:
        return None
    rank = q * points[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in points:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound
