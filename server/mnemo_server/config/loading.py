"""Settings from a TOML file < MNEMO_* environment < flags: each value
coerced to its field's type, unknown names refused, the whole validated."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from mnemo_server.config.checks import ConfigError
from mnemo_server.config.sections import RetentionRule
from mnemo_server.config.settings import SECTION_TYPES, Settings, setting_names


def _retention(name: str, value: Any) -> tuple[RetentionRule, ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError(f"{name}: expected a JSON list of policies") from None
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{name}: expected a list of policies")
    known = {f.name for f in fields(RetentionRule)}
    rules = []
    for i, item in enumerate(value):
        unknown = set(item) - known
        if unknown:
            raise ConfigError(f"{name}[{i}].{sorted(unknown)[0]}: unknown setting")
        try:
            rules.append(
                RetentionRule(
                    **{
                        k: _coerce(f"{name}[{i}].{k}", type(getattr(RetentionRule, k)).__name__, v)
                        for k, v in item.items()
                    }
                )
            )
        except TypeError as exc:
            raise ConfigError(f"{name}[{i}]: {exc}") from None
    return tuple(rules)


def _coerce(name: str, kind: Any, value: Any) -> Any:
    if kind == "tuple[RetentionRule, ...]":
        return _retention(name, value)
    kind = {"bool": bool, "int": int, "float": float, "str": str, "Path": Path}.get(kind, kind)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        if kind is int and isinstance(value, float):
            raise ValueError(value)
        if kind is Path:
            return Path(str(value)).expanduser()
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected {kind.__name__}, got {value!r}") from None


def load_settings(
    *,
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Builds validated Settings. `overrides` maps "section.field" to values
    (from flags); they win over the environment, which wins over the file."""
    env = os.environ if env is None else env
    values: dict[str, dict[str, Any]] = {s: {} for s in SECTION_TYPES}
    if config_file is not None:
        try:
            data = tomllib.loads(Path(config_file).read_text())
        except OSError as exc:
            raise ConfigError(f"config: cannot read {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config: {config_file} is not valid TOML: {exc}") from None
        for key, value in data.items():
            if isinstance(value, dict) and key in SECTION_TYPES and key != "server":
                values[key].update(value)
            elif key == "server" and isinstance(value, dict):
                values["server"].update(value)
            else:
                values["server"][key] = value
    known = {(s, f): None for s, f, *_ in setting_names()}
    for section, name, env_name, _flag, _default, _doc_text in setting_names():
        if env_name in env:
            values[section][name] = env[env_name]
    for dotted, value in (overrides or {}).items():
        section, _, name = dotted.partition(".")
        values[section][name] = value
    built: dict[str, Any] = {}
    for section, cls in SECTION_TYPES.items():
        kinds = {f.name: f.type for f in fields(cls)}
        kwargs = {}
        for name, value in values[section].items():
            if (section, name) not in known:
                where = name if section == "server" else f"{section}.{name}"
                raise ConfigError(f"{where}: unknown setting")
            label = name if section == "server" else f"{section}.{name}"
            kwargs[name] = _coerce(label, kinds[name], value)
        built[section] = cls(**kwargs)
    return Settings(**built).validate()


def replace(settings: Settings, **sections: Mapping[str, Any]) -> Settings:
    """A copy with some fields of some sections changed (for tests)."""
    changed = {
        name: dataclasses.replace(getattr(settings, name), **values) for name, values in sections.items()
    }
    return dataclasses.replace(settings, **changed).validate()
