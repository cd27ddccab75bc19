"""`Settings`: every section together, the checks that span sections, and
the name of each setting in each source (`setting_names`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from mnemo_server.config.checks import ConfigError, is_loopback
from mnemo_server.config.extraction import ExtractionSettings
from mnemo_server.config.observability import MetricsSettings, TracingSettings
from mnemo_server.config.rerank import RerankSettings
from mnemo_server.config.sections import (
    CacheSettings,
    EmbedderSettings,
    IndexSettings,
    LifecycleSettings,
    LimitSettings,
    ServerSettings,
    StoreSettings,
)
from mnemo_server.config.security import (
    AuditSettings,
    AuthSettings,
    HttpSettings,
    QuotaSettings,
    RateLimitSettings,
    TlsSettings,
)


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    embedder: EmbedderSettings = field(default_factory=EmbedderSettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    quota: QuotaSettings = field(default_factory=QuotaSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    extraction: ExtractionSettings = field(default_factory=ExtractionSettings)
    rerank: RerankSettings = field(default_factory=RerankSettings)

    def validate(self) -> Settings:
        for f in fields(self):
            getattr(self, f.name).validate()
        for address in self.addresses():
            if not (
                self.auth.is_on(address) or is_loopback(address) or self.auth.insecure_allow_unauthenticated
            ):
                raise ConfigError(
                    f"auth: refusing to serve {address} without API keys; turn auth on"
                    " (auth.enabled) or pass --auth-insecure-allow-unauthenticated"
                )
        if "*" in self.http.origins and not self.keys_required():
            raise ConfigError(
                "http.cors_allowed_origins: * without API keys would let every web page a user opens "
                "read and change the memories; list the origins or turn auth on"
            )
        return self

    def addresses(self) -> tuple[str, ...]:
        """Every address the server listens on (gRPC, and HTTP when on)."""
        return (self.server.address, self.http.address) if self.http.address else (self.server.address,)

    def keys_required(self) -> bool:
        """Whether calls need an API key: auth on, or auto and some address is not loopback."""
        return any(self.auth.is_on(address) for address in self.addresses())


SECTION_TYPES = {
    "server": ServerSettings,
    "store": StoreSettings,
    "embedder": EmbedderSettings,
    "index": IndexSettings,
    "limits": LimitSettings,
    "lifecycle": LifecycleSettings,
    "cache": CacheSettings,
    "metrics": MetricsSettings,
    "tracing": TracingSettings,
    "auth": AuthSettings,
    "tls": TlsSettings,
    "rate_limit": RateLimitSettings,
    "quota": QuotaSettings,
    "audit": AuditSettings,
    "http": HttpSettings,
    "extraction": ExtractionSettings,
    "rerank": RerankSettings,
}


def setting_names() -> list[tuple[str, str, str, str, Any, str]]:
    """(section, field, env var, flag, default, doc) for every setting."""
    out = []
    for section, cls in SECTION_TYPES.items():
        for f in fields(cls):
            stem = f.name if section == "server" else f"{section}_{f.name}"
            out.append(
                (
                    section,
                    f.name,
                    f"MNEMO_{stem.upper()}",
                    "--" + stem.replace("_", "-"),
                    f.default,
                    f.metadata.get("doc", ""),
                )
            )
    return out
