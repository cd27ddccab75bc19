"""Settings: frozen dataclasses filled from a TOML file < MNEMO_* environment < flags.

Every setting has one name in each source, derived from its section and field:

    TOML  [index] ann_threshold = 20000
    env   MNEMO_INDEX_ANN_THRESHOLD=20000
    flag  --index-ann-threshold 20000

Settings of the `server` section drop the prefix (MNEMO_ADDRESS, --address).
Anything invalid raises ConfigError with one line that names the setting.

The package: checks.py (ConfigError, shared checks), sections.py (server and
data-path sections), security.py, observability.py, settings.py (Settings,
setting_names), loading.py (load_settings, replace).
"""

from mnemo_server.config.checks import ConfigError, is_loopback
from mnemo_server.config.extraction import ExtractionSettings
from mnemo_server.config.loading import load_settings, replace
from mnemo_server.config.observability import DEFAULT_SERVICE_NAME, MetricsSettings, TracingSettings
from mnemo_server.config.rerank import RerankSettings
from mnemo_server.config.sections import (
    CacheSettings,
    EmbedderSettings,
    IndexSettings,
    LifecycleSettings,
    LimitSettings,
    RetentionRule,
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
from mnemo_server.config.settings import Settings, setting_names

__all__ = [
    "DEFAULT_SERVICE_NAME",
    "AuditSettings",
    "AuthSettings",
    "CacheSettings",
    "ConfigError",
    "EmbedderSettings",
    "ExtractionSettings",
    "HttpSettings",
    "IndexSettings",
    "LifecycleSettings",
    "LimitSettings",
    "MetricsSettings",
    "QuotaSettings",
    "RateLimitSettings",
    "RerankSettings",
    "RetentionRule",
    "ServerSettings",
    "Settings",
    "StoreSettings",
    "TlsSettings",
    "TracingSettings",
    "is_loopback",
    "load_settings",
    "replace",
    "setting_names",
]
