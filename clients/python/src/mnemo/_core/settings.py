"""What the blocking and the asyncio client share: connection settings,
credentials, call metadata, deadlines and request ids."""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from mnemo._core.retry import DEFAULT_RETRY, RetryPolicy

DEFAULT_ADDRESS = "localhost:50051"
DEFAULT_TIMEOUT = 30.0
ADDRESS_ENV = "MNEMO_ADDRESS"
API_KEY_ENV = "MNEMO_API_KEY"
PathLike = str | os.PathLike[str]


def _read(path: PathLike | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


@dataclass(frozen=True, slots=True)
class Settings:
    """The resolved connection settings of a client."""

    address: str
    api_key: str
    tls: bool
    ca_file: PathLike | None
    cert_file: PathLike | None
    key_file: PathLike | None
    tls_server_name: str | None
    timeout: float | None
    gzip: bool
    keepalive_time: float | None
    keepalive_timeout: float | None
    retry: RetryPolicy
    auto_request_id: bool
    metadata: tuple[tuple[str, str], ...]
    channel_options: tuple[tuple[str, Any], ...]

    @staticmethod
    def resolve(
        address: str | None,
        *,
        api_key: str | None,
        tls: bool | None,
        ca_file: PathLike | None,
        cert_file: PathLike | None,
        key_file: PathLike | None,
        tls_server_name: str | None,
        timeout: float | None,
        gzip: bool,
        keepalive_time: float | None,
        keepalive_timeout: float | None,
        retry: RetryPolicy | None,
        auto_request_id: bool,
        metadata: Mapping[str, str] | Sequence[tuple[str, str]] | None,
        channel_options: Sequence[tuple[str, Any]] | None,
    ) -> Settings:
        if (cert_file is None) != (key_file is None):
            raise ValueError("cert_file and key_file go together (mutual TLS)")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive, or None for no deadline")
        pairs = list(metadata.items()) if isinstance(metadata, Mapping) else list(metadata or ())
        return Settings(
            address=address or os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS,
            api_key=os.environ.get(API_KEY_ENV, "") if api_key is None else api_key,
            tls=bool(tls) if tls is not None else any(f is not None for f in (ca_file, cert_file, key_file)),
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            tls_server_name=tls_server_name,
            timeout=None if timeout is None or math.isinf(timeout) else timeout,
            gzip=gzip,
            keepalive_time=keepalive_time,
            keepalive_timeout=keepalive_timeout,
            retry=retry or DEFAULT_RETRY,
            auto_request_id=auto_request_id,
            metadata=tuple((k.lower(), v) for k, v in pairs),
            channel_options=tuple(channel_options or ()),
        )

    def credentials(self) -> grpc.ChannelCredentials | None:
        if not self.tls:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file),
            private_key=_read(self.key_file),
            certificate_chain=_read(self.cert_file),
        )

    def options(self) -> list[tuple[str, Any]]:
        from mnemo import __version__

        options: list[tuple[str, Any]] = [("grpc.primary_user_agent", f"mnemo-python/{__version__}")]
        if self.keepalive_time is not None:
            options += [
                ("grpc.keepalive_time_ms", int(self.keepalive_time * 1000)),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.max_pings_without_data", 0),
            ]
        if self.keepalive_timeout is not None:
            options.append(("grpc.keepalive_timeout_ms", int(self.keepalive_timeout * 1000)))
        if self.tls_server_name:
            options.append(("grpc.ssl_target_name_override", self.tls_server_name))
        return options + list(self.channel_options)

    def compression(self) -> grpc.Compression:
        return grpc.Compression.Gzip if self.gzip else grpc.Compression.NoCompression

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        auth = (("authorization", f"Bearer {self.api_key}"),) if self.api_key else ()
        return auth + self.metadata


class Deadline:
    """The time left of one call across its retries; None means no deadline."""

    def __init__(self, timeout: float | None) -> None:
        self.end = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        return None if self.end is None else max(0.0, self.end - time.monotonic())

    def allows(self, delay: float) -> bool:
        return self.end is None or time.monotonic() + delay < self.end


def call_timeout(settings: Settings, timeout: float | None, *, stream: bool = False) -> float | None:
    """A call's timeout: its own, else the client's default (unary calls only)."""
    if timeout is None:
        return None if stream else settings.timeout
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    return None if math.isinf(timeout) else timeout


def request_id(settings: Settings, given: str | None) -> str | None:
    """The idempotency key of a write: the caller's, else a fresh one when enabled."""
    if given is not None:
        return given
    return uuid.uuid4().hex if settings.auto_request_id else None
