"""mem0 on Mnemo: a vector store for mem0 (`mnemo-client[mem0]`), and migration from mem0.

Importing this module registers the "mnemo" provider with mem0, so that an
existing mem0 program keeps its code and changes only its `vector_store` block::

    import mnemo.integrations.mem0  # registers the "mnemo" vector store
    from mem0 import Memory

    memory = Memory.from_config({
        "vector_store": {"provider": "mnemo",
                         "config": {"address": "localhost:50051", "api_key": "...",
                                    "collection_name": "mem0"}},
        "embedder": {...}, "llm": {...},   # unchanged
    })

`migrate(config, client)` copies an existing mem0 store (any vector store mem0
reads) into Mnemo; `mnemo import --from-mem0 CONFIG` is its command line.
See docs/mem0.md.
"""

from __future__ import annotations

import sys

from mem0.utils.factory import VectorStoreFactory
from mem0.vector_stores.configs import VectorStoreConfig

from mnemo.integrations.mem0 import config as _config
from mnemo.integrations.mem0.config import MnemoConfig
from mnemo.integrations.mem0.filters import COLLECTION_KEY, UnsupportedFilterError
from mnemo.integrations.mem0.migrate import MigrationReport, migrate
from mnemo.integrations.mem0.payload import PayloadError
from mnemo.integrations.mem0.store import MnemoVectorStore, OutputData

PROVIDER = "mnemo"


def register() -> None:
    """Makes "mnemo" a vector store provider of mem0 (done on import; idempotent).

    mem0 looks a provider's config class up in `VectorStoreConfig._provider_configs`
    and imports it from `mem0.configs.vector_stores.<provider>`, then builds the store
    from `VectorStoreFactory.provider_to_class`; all three learn about Mnemo here.
    """
    sys.modules.setdefault(f"mem0.configs.vector_stores.{PROVIDER}", _config)
    private = VectorStoreConfig.__private_attributes__["_provider_configs"]
    private.default[PROVIDER] = MnemoConfig.__name__
    VectorStoreFactory.provider_to_class[PROVIDER] = (
        f"{MnemoVectorStore.__module__}.{MnemoVectorStore.__name__}"
    )


register()

__all__ = [
    "COLLECTION_KEY",
    "PROVIDER",
    "MigrationReport",
    "MnemoConfig",
    "MnemoVectorStore",
    "OutputData",
    "PayloadError",
    "UnsupportedFilterError",
    "migrate",
    "register",
]
