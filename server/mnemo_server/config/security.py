"""The sections of who may call and how: http (the HTTP side and CORS),
auth, tls, rate_limit, quota and audit."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mnemo_server.config.checks import (
    ConfigError,
    check_bootstrap,
    check_host_port,
    doc,
    is_loopback,
)


@dataclass(frozen=True)
class HttpSettings:
    address: str = doc(
        "Host and port of the HTTP endpoint: every RPC as JSON over HTTP/1.1 (the Connect protocol; "
        "gRPC-Web too) and /healthz, with the gRPC side's API keys, limits and TLS; empty turns it off.",
        default="",
    )
    cors_allowed_origins: str = doc(
        "Web origins whose pages may call the HTTP endpoint from a browser, comma-separated "
        "(https://app.example.com); * for any (only with API keys on); empty for none.",
        default="",
    )
    dashboard: bool = doc(
        "Serve the web dashboard at /dashboard/ on the HTTP endpoint (sign in with an API key).",
        default=True,
    )

    @property
    def origins(self) -> tuple[str, ...]:
        return tuple(o.strip().rstrip("/") for o in self.cors_allowed_origins.split(",") if o.strip())

    def validate(self) -> None:
        if self.address:
            check_host_port("http.address", self.address)
        for origin in self.origins:
            scheme, sep, rest = origin.partition("://")
            if origin != "*" and (scheme not in ("http", "https") or not sep or not rest or "/" in rest):
                raise ConfigError(
                    f"http.cors_allowed_origins: expected * or origins like https://app.example.com, "
                    f"got {origin!r}"
                )


_AUTH_MODES: dict[str, bool | None] = {
    "auto": None,
    **dict.fromkeys(("on", "true", "yes", "1"), True),
    **dict.fromkeys(("off", "false", "no", "0"), False),
}


@dataclass(frozen=True)
class AuthSettings:
    enabled: str = doc(
        "API keys required: auto (on unless the server binds a loopback address), on or off.", default="auto"
    )
    insecure_allow_unauthenticated: bool = doc(
        "Allow auth off on a non-loopback address: anyone who reaches the port is an admin.", default=False
    )
    bootstrap_key: str = doc(
        "An admin key of the system tenant chosen by the operator, at least 32 characters "
        "(prefer MNEMO_AUTH_BOOTSTRAP_KEY or bootstrap_key_file: flags show in ps).",
        default="",
    )
    bootstrap_key_file: str = doc("A file whose first line is the bootstrap key.", default="")
    system_tenant: str = doc(
        "The bootstrap key's tenant; its admin keys may create keys for any tenant and run "
        "server-wide admin calls.",
        default="system",
    )
    key_cache_s: float = doc(
        "Seconds a key read from the store is trusted before it is read again: the longest a "
        "server keeps accepting a key revoked through another server sharing a SQLite store (0: every "
        "call). Servers sharing a PostgreSQL store, and the workers of one --workers fleet, refuse "
        "it at once.",
        default=5.0,
    )

    def validate(self) -> None:
        if self.enabled.strip().lower() not in _AUTH_MODES:
            raise ConfigError(f"auth.enabled: expected auto, on or off, got {self.enabled!r}")
        if self.bootstrap_key and self.bootstrap_key_file:
            raise ConfigError("auth.bootstrap_key and auth.bootstrap_key_file: give one, not both")
        if self.bootstrap_key_file:
            try:
                lines = Path(self.bootstrap_key_file).expanduser().read_text().splitlines()
            except OSError as exc:
                raise ConfigError(
                    f"auth.bootstrap_key_file: cannot read {self.bootstrap_key_file}: {exc.strerror}"
                ) from None
            check_bootstrap("auth.bootstrap_key_file", lines[0].strip() if lines else "")
        elif self.bootstrap_key:
            check_bootstrap("auth.bootstrap_key", self.bootstrap_key)
        if not self.system_tenant or len(self.system_tenant) > 128:
            raise ConfigError("auth.system_tenant: must be 1 to 128 characters")
        if self.key_cache_s < 0:
            raise ConfigError("auth.key_cache_s: must not be negative")

    def bootstrap_secret(self) -> str:
        """The bootstrap key, from the setting or the first line of the file; empty for none."""
        if self.bootstrap_key_file:
            lines = Path(self.bootstrap_key_file).expanduser().read_text().splitlines()
            return lines[0].strip() if lines else ""
        return self.bootstrap_key

    def is_on(self, address: str) -> bool:
        """Whether API keys are required on a server bound to `address`."""
        mode = _AUTH_MODES[self.enabled.strip().lower()]
        return not is_loopback(address) if mode is None else mode


@dataclass(frozen=True)
class TlsSettings:
    cert_file: str = doc("PEM certificate chain; with key_file the port speaks only TLS.", default="")
    key_file: str = doc("PEM private key of cert_file.", default="")
    client_ca_file: str = doc(
        "PEM CA certificates; when given, clients must present a certificate they signed (mTLS).",
        default="",
    )

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file)

    def validate(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            raise ConfigError("tls.cert_file and tls.key_file: give both or neither")
        if self.client_ca_file and not self.cert_file:
            raise ConfigError("tls.client_ca_file: needs tls.cert_file and tls.key_file")
        for name in ("cert_file", "key_file", "client_ca_file"):
            path = getattr(self, name)
            if path and not os.access(Path(path).expanduser(), os.R_OK):
                raise ConfigError(f"tls.{name}: cannot read {path}")


@dataclass(frozen=True)
class RateLimitSettings:
    requests_per_s: float = doc(
        "Calls per second each API key may make (each client address when auth is off); 0: no limit.",
        default=0.0,
    )
    burst: int = doc("Calls a key may make at once above its rate; 0: the rate rounded up.", default=0)
    max_streams: int = doc(
        "Streaming calls (watch, export, import, stream search, re-embed) one key may have open; "
        "0: no limit.",
        default=100,
    )

    def validate(self) -> None:
        if self.requests_per_s < 0 or self.burst < 0 or self.max_streams < 0:
            raise ConfigError("rate_limit.requests_per_s, burst and max_streams must not be negative")


@dataclass(frozen=True)
class QuotaSettings:
    max_memories: int = doc("Most memories one tenant may hold; 0: no limit.", default=0)
    max_content_bytes: int = doc("Most UTF-8 bytes of content one tenant may hold; 0: no limit.", default=0)

    def validate(self) -> None:
        if self.max_memories < 0 or self.max_content_bytes < 0:
            raise ConfigError("quota.max_memories and quota.max_content_bytes must not be negative")


@dataclass(frozen=True)
class AuditSettings:
    log_file: str = doc(
        "Append one JSON line per write, forget and admin call to this file (- for stdout); empty: off.",
        default="",
    )

    def validate(self) -> None:
        if self.log_file and self.log_file != "-":
            parent = Path(self.log_file).expanduser().parent
            if not os.access(parent, os.W_OK):
                raise ConfigError(f"audit.log_file: cannot write in {parent}")
