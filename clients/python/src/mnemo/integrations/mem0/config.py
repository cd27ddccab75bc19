"""`MnemoConfig`: the `config` of mem0's `vector_store` block for the "mnemo" provider."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MnemoConfig(BaseModel):
    """What `{"vector_store": {"provider": "mnemo", "config": {...}}}` takes.

    Unknown keys are refused, as mem0's own store configs do.
    """

    model_config = ConfigDict(extra="forbid")

    collection_name: str = Field(
        "mem0", min_length=1, description="The mem0 collection (a metadata tag in Mnemo)"
    )
    address: str | None = Field(None, description="host:port of the Mnemo server [MNEMO_ADDRESS]")
    api_key: str | None = Field(None, description="API key; its tenant holds the memories [MNEMO_API_KEY]")
    tls: bool | None = Field(None, description="Connect with TLS")
    ca_file: str | None = Field(None, description="PEM root certificates to trust (implies TLS)")
    timeout: float = Field(30.0, gt=0, description="Deadline of each call in seconds")
    embedding_model: str | None = Field(None, description="Name recorded as the model of mem0's vectors")
    embedding_model_dims: int | None = Field(
        None, gt=0, description="Dimension of mem0's vectors; must equal the server's"
    )
