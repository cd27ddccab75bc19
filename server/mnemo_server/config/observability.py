"""The metrics and tracing sections."""

from __future__ import annotations

import os
from dataclasses import dataclass

from mnemo_server.config.checks import ConfigError, check_host_port, doc, positive


@dataclass(frozen=True)
class MetricsSettings:
    address: str = doc(
        "Host and port of the Prometheus endpoint (HTTP, /metrics); empty turns it off.", default=""
    )
    tenant_limit: int = doc(
        "Most tenants and index shards given their own series; the rest are summed as __other__.",
        default=100,
    )
    tenant_interval_s: float = doc(
        "Seconds between recounts of memories per tenant (a scan of the store); 0: every scrape.",
        default=30.0,
    )

    def validate(self) -> None:
        if self.address:
            check_host_port("metrics.address", self.address)
        positive("metrics.tenant_limit", self.tenant_limit)
        if self.tenant_interval_s < 0:
            raise ConfigError("metrics.tenant_interval_s: must not be negative")


DEFAULT_SERVICE_NAME = "mnemo"


@dataclass(frozen=True)
class TracingSettings:
    otlp_endpoint: str = doc(
        "OTLP/gRPC collector for spans (http://host:4317 plaintext, https:// TLS); empty: the "
        "standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, else none.",
        default="",
    )
    console: bool = doc("Print spans to stderr.", default=False)
    file: str = doc("Append spans as JSON lines to this file; empty for none.", default="")
    service_name: str = doc(
        "The service.name resource attribute of the spans; OTEL_SERVICE_NAME wins over the default.",
        default=DEFAULT_SERVICE_NAME,
    )
    sample_ratio: float = doc(
        "Share of traces recorded when the caller sent no sampling decision.", default=1.0
    )

    def endpoint(self) -> tuple[str, str]:
        """The OTLP collector and where it was named: `tracing.otlp_endpoint`, else the
        OpenTelemetry variables (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, then
        OTEL_EXPORTER_OTLP_ENDPOINT), which OTEL_SDK_DISABLED=true or
        OTEL_TRACES_EXPORTER=none turn off; ("", "") for none."""
        if self.otlp_endpoint:
            return self.otlp_endpoint, "tracing.otlp_endpoint"
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return "", ""
        if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
            return "", ""
        for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            value = os.environ.get(name, "").strip()
            if value:
                return value, name
        return "", ""

    @property
    def enabled(self) -> bool:
        return bool(self.endpoint()[0] or self.console or self.file)

    def validate(self) -> None:
        endpoint, source = self.endpoint()
        if endpoint and not endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"{source}: expected http://HOST:PORT or https://HOST:PORT, got {endpoint!r}")
        if not 0.0 <= self.sample_ratio <= 1.0:
            raise ConfigError(f"tracing.sample_ratio: must lie in [0, 1], got {self.sample_ratio}")
        if not self.service_name:
            raise ConfigError("tracing.service_name: must not be empty")
