"""The dashboard's parts without a browser: settings redaction, latency
quantiles from histogram buckets, sessions ending, and the page's files
shipped inside the wheel (a non-editable install serves them)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram

from mnemo_server.config import load_settings
from mnemo_server.dashboard import sessions as sessions_module
from mnemo_server.dashboard.app import load_static
from mnemo_server.dashboard.overview import REDACTED, redacted_settings, request_metrics
from mnemo_server.dashboard.sessions import Sessions, csrf_ok
from mnemo_server.embed.base import Embedder

from ..conftest import make_settings, start_server

ROOT = Path(__file__).resolve().parents[3]


def test_settings_are_shown_with_every_secret_redacted() -> None:
    settings = load_settings(
        env={},
        overrides={
            "auth.bootstrap_key": "k" * 40,
            "embedder.api_key": "sk-very-secret",
            "server.redis_url": "redis://:hunter2@cache:6379/0",
            "tracing.otlp_endpoint": "https://user:pw@otel:4317",
        },
    )
    shown = redacted_settings(settings)
    text = repr(shown)
    assert (
        "k" * 40 not in text and "sk-very-secret" not in text and "hunter2" not in text and ":pw@" not in text
    )
    assert shown["auth"]["bootstrap_key"] == REDACTED and shown["embedder"]["api_key"] == REDACTED
    assert shown["server"]["redis_url"] == f"redis://{REDACTED}@cache:6379/0"
    assert shown["auth"]["bootstrap_key_file"] == ""  # empty stays empty
    assert shown["server"]["workers"] == settings.server.workers


def test_request_metrics_give_calls_codes_and_quantiles() -> None:
    registry = CollectorRegistry()
    labels = ("grpc_type", "grpc_service", "grpc_method")
    started = Counter("grpc_server_started", "", labels, registry=registry)
    handled = Counter("grpc_server_handled", "", (*labels, "grpc_code"), registry=registry)
    seconds = Histogram("grpc_server_handling_seconds", "", labels, buckets=(0.01, 0.1, 1), registry=registry)
    call = ("unary", "mnemo.v1.MemoryService", "GetMemory")
    for value in [0.005] * 50 + [0.05] * 45 + [0.5] * 5:
        started.labels(*call).inc()
        seconds.labels(*call).observe(value)
    handled.labels(*call, "OK").inc(98)
    handled.labels(*call, "NOT_FOUND").inc(2)
    (row,) = request_metrics(registry)["methods"]
    assert row["method"] == "GetMemory" and row["started"] == 100 and row["count"] == 100
    assert row["codes"] == {"OK": 98, "NOT_FOUND": 2}
    assert row["p50_s"] == 0.01  # the 50th of 100 is the last in the first bucket
    assert 0.01 < row["p95_s"] <= 0.1 and 0.1 < row["p99_s"] <= 1


def test_a_session_ends_when_idle_too_long_and_needs_its_own_token() -> None:
    now = [0.0]
    store = Sessions(clock=lambda: now[0])
    session = store.open("mnemo_x_y", admin=False, key_id="x")
    other = store.open("mnemo_z_w", admin=False, key_id="z")
    assert csrf_ok(session, session.csrf) and not csrf_ok(session, other.csrf) and not csrf_ok(session, "")
    now[0] = sessions_module.IDLE_S - 1
    assert store.get(session.id) is session  # a request keeps it alive
    now[0] += sessions_module.IDLE_S + 1
    assert store.get(session.id) is None
    assert store.get("no-such-session") is None


def test_the_page_is_in_the_package_and_in_its_wheel(tmp_path: Path) -> None:
    static = load_static()
    assert {"index.html", "main.js", "api.js", "style.css"} <= set(static)
    # The page loads nothing from outside the server.
    for name, (body, _) in static.items():
        text = body.decode()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("mnemo_server-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in static:
        assert f"mnemo_server/dashboard/static/{name}" in names


def test_without_api_keys_an_empty_key_signs_in_and_the_dashboard_can_be_off(
    tmp_path: Path, embedder: Embedder
) -> None:
    open_server = start_server(make_settings(tmp_path / "open", http={"address": "127.0.0.1:0"}), embedder)
    try:
        origin = f"http://127.0.0.1:{open_server.app.http_port}"
        signed = httpx.post(f"{origin}/dashboard/api/session", json={"key": ""}, headers={"origin": origin})
        assert signed.status_code == 200 and signed.json()["admin"] is True
        headers = {
            "cookie": signed.headers["set-cookie"].split(";")[0],
            "origin": origin,
            "x-csrf-token": signed.json()["csrfToken"],
        }
        listed = httpx.post(
            f"{origin}/dashboard/api/rpc/mnemo.v1.MemoryService/ListMemories", json={}, headers=headers
        )
        assert listed.status_code == 200
        # Another host name (DNS rebinding) is refused before the dashboard sees it.
        rebound = httpx.get(f"{origin}/dashboard/", headers={"host": "evil.example"})
        assert rebound.status_code == 403
    finally:
        open_server.stop()
    off = start_server(
        make_settings(tmp_path / "off", http={"address": "127.0.0.1:0", "dashboard": False}), embedder
    )
    try:
        assert httpx.get(f"http://127.0.0.1:{off.app.http_port}/dashboard/").status_code == 404
        assert httpx.get(f"http://127.0.0.1:{off.app.http_port}/healthz").status_code == 200
    finally:
        off.stop()
