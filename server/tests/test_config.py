"""Settings precedence: TOML file < MNEMO_* environment < flags."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from mnemo_server import cli
from mnemo_server.cli import settings_from_args
from mnemo_server.config import ConfigError, load_settings


def test_file_then_env_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "mnemo.toml"
    config.write_text(
        'address = "0.0.0.0:7000"\nlog_json = true\n[index]\nann_threshold = 5\nef_search = 9\n'
    )
    monkeypatch.setenv("MNEMO_INDEX_EF_SEARCH", "11")
    monkeypatch.setenv("MNEMO_ADDRESS", "127.0.0.1:7001")
    settings = settings_from_args(["--config", str(config), "--address", "127.0.0.1:7002"])
    assert settings.server.address == "127.0.0.1:7002"  # flag beats env and file
    assert settings.index.ef_search == 11  # env beats file
    assert settings.index.ann_threshold == 5  # file
    assert settings.server.log_json is True


def test_defaults_are_the_embedded_mode() -> None:
    settings = load_settings(env={})
    assert settings.server.address == "127.0.0.1:50051"
    assert settings.embedder.provider == "local"
    assert settings.store.synchronous == "FULL"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"embedder.provider": "http"}, "embedder.url: required"),
        ({"server.log_level": "loud"}, "log_level"),
        ({"limits.max_top_k": "0"}, "limits.max_top_k: must be positive"),
        ({"server.log_json": "perhaps"}, "log_json: expected bool"),
    ],
)
def test_invalid_values_name_the_setting(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env={}, overrides=overrides)


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        cli.parser().parse_args(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out == f"mnemo-server {importlib.metadata.version('mnemo-server')}\n"
