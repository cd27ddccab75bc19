"""ConfigError, and the checks and helpers every section's `validate` shares."""

from __future__ import annotations

from dataclasses import field
from typing import Any


class ConfigError(Exception):
    """An invalid setting; the message is one line meant for the operator."""


def doc(text: str, **kwargs: Any) -> Any:
    return field(metadata={"doc": text}, **kwargs)


def positive(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{name}: must be positive, got {value}")


def check_host_port(name: str, value: str) -> None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{name}: expected HOST:PORT, got {value!r}")


def check_bootstrap(name: str, secret: str) -> None:
    if len(secret) < 32 or any(c.isspace() or ord(c) < 33 for c in secret):
        raise ConfigError(f"{name}: the bootstrap key must be at least 32 printable characters, no spaces")


def is_loopback(address: str) -> bool:
    """Whether HOST:PORT names only this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    host = address.rpartition(":")[0].strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
