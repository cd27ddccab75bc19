"""The metrics and tracing settings: names in every source, validation, and
a metrics port that is taken."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mnemo_server.app import App
from mnemo_server.config import ConfigError, load_settings

from ..conftest import make_settings


def test_names_in_every_source(tmp_path: Path) -> None:
    config = tmp_path / "mnemo.toml"
    config.write_text('[metrics]\naddress = "127.0.0.1:9000"\n[tracing]\nconsole = true\n')
    settings = load_settings(
        config_file=config,
        env={"MNEMO_METRICS_TENANT_LIMIT": "7", "MNEMO_TRACING_SAMPLE_RATIO": "0.5"},
        overrides={"tracing.file": "spans.jsonl"},
    )
    assert settings.metrics.address == "127.0.0.1:9000"
    assert settings.metrics.tenant_limit == 7
    assert settings.tracing.console is True
    assert settings.tracing.sample_ratio == 0.5
    assert settings.tracing.file == "spans.jsonl"
    assert settings.tracing.enabled
    defaults = load_settings(env={})
    assert defaults.metrics.address == ""
    assert not defaults.tracing.enabled


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MNEMO_METRICS_ADDRESS": "9464"}, "metrics.address: expected HOST:PORT"),
        ({"MNEMO_METRICS_TENANT_LIMIT": "0"}, "metrics.tenant_limit: must be positive"),
        ({"MNEMO_METRICS_TENANT_INTERVAL_S": "-1"}, "metrics.tenant_interval_s: must not be negative"),
        ({"MNEMO_TRACING_OTLP_ENDPOINT": "collector:4317"}, "tracing.otlp_endpoint: expected http://"),
        ({"MNEMO_TRACING_SAMPLE_RATIO": "1.5"}, "tracing.sample_ratio: must lie in [0, 1]"),
        ({"MNEMO_TRACING_SERVICE_NAME": ""}, "tracing.service_name: must not be empty"),
    ],
)
def test_invalid_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(env=env)
    assert str(raised.value).startswith(message)


async def test_a_taken_metrics_port_stops_the_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = App(make_settings(tmp_path, metrics={"address": f"127.0.0.1:{port}"}))
        try:
            with pytest.raises(RuntimeError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
                await app.start()
        finally:
            app.executor.shutdown()
