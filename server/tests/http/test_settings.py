"""The HTTP side's settings: off by default, validated, and counted when
deciding whether API keys are required."""

from __future__ import annotations

import pytest

from mnemo_server.cli import settings_from_args
from mnemo_server.config import ConfigError, load_settings


def test_http_is_off_by_default_and_set_by_flag_env_or_file() -> None:
    assert load_settings(env={}).http.address == ""
    assert settings_from_args(["--http-address", "127.0.0.1:8080"]).http.address == "127.0.0.1:8080"
    assert load_settings(env={"MNEMO_HTTP_ADDRESS": "127.0.0.1:8081"}).http.address == "127.0.0.1:8081"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"http.address": "8080"}, "http.address: expected HOST:PORT"),
        ({"http.cors_allowed_origins": "app.example.com"}, "http.cors_allowed_origins: expected"),
        ({"http.cors_allowed_origins": "https://app.example.com/path"}, "http.cors_allowed_origins"),
        ({"http.address": "127.0.0.1:8080", "http.cors_allowed_origins": "*"}, "without API keys"),
    ],
)
def test_invalid_http_settings_are_refused(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env={}, overrides=values)


def test_origins_are_a_comma_separated_list() -> None:
    settings = load_settings(
        env={}, overrides={"http.cors_allowed_origins": "https://a.example, http://localhost:3000/"}
    )
    assert settings.http.origins == ("https://a.example", "http://localhost:3000")


def test_a_non_loopback_http_address_turns_api_keys_on() -> None:
    local = load_settings(env={}, overrides={"http.address": "127.0.0.1:8080"})
    assert not local.keys_required()
    exposed = load_settings(env={}, overrides={"http.address": "0.0.0.0:8080", "auth.enabled": "auto"})
    assert exposed.keys_required()
    with pytest.raises(ConfigError, match=r"refusing to serve 0\.0\.0\.0:8080 without API keys"):
        load_settings(env={}, overrides={"http.address": "0.0.0.0:8080", "auth.enabled": "off"})
    wildcard = load_settings(
        env={}, overrides={"http.address": "0.0.0.0:8080", "http.cors_allowed_origins": "*"}
    )
    assert wildcard.keys_required() and wildcard.http.origins == ("*",)
