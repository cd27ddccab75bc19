"""The extraction section: which LLM ExtractMemories calls, through mem0ai (docs/extraction.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mnemo_server.config.checks import ConfigError, doc, positive


@dataclass(frozen=True)
class ExtractionSettings:
    provider: str = doc(
        "The LLM provider of ExtractMemories, a mem0ai LlmFactory name (openai, ollama, lmstudio, "
        "vllm, ...; any OpenAI-compatible server with openai and base_url); empty: extraction off.",
        default="",
    )
    model: str = doc("The LLM's model name; empty for mem0ai's default of the provider.", default="")
    base_url: str = doc("Base URL of the LLM's API; empty for the provider's default.", default="")
    api_key_env: str = doc(
        "The environment variable holding the LLM's API key (read at start, never logged).", default=""
    )
    api_key_file: str = doc("A file whose first line is the LLM's API key (never logged).", default="")
    timeout_s: float = doc("Timeout of one LLM call.", default=60.0)
    retries: int = doc("Retries of a failed or timed-out LLM call before the job fails.", default=3)
    retry_backoff_s: float = doc("First retry's delay; each next one doubles it.", default=1.0)
    concurrency: int = doc(
        "Scopes whose jobs run at once (jobs of one scope run in order); LLM calls wait on the network.",
        default=32,
    )
    max_messages: int = doc("Most messages per conversation.", default=100)
    max_conversation_bytes: int = doc(
        "Largest conversation, UTF-8 bytes of all its contents.", default=64 * 1024
    )
    candidates: int = doc("Stored memories shown to the LLM per fact (RECONCILE) or per job.", default=10)

    def validate(self) -> None:
        if self.api_key_env and self.api_key_file:
            raise ConfigError("extraction.api_key_env and extraction.api_key_file: give one, not both")
        if self.api_key_file and not Path(self.api_key_file).expanduser().is_file():
            raise ConfigError(f"extraction.api_key_file: cannot read {self.api_key_file}")
        for name in ("timeout_s", "concurrency", "max_messages", "max_conversation_bytes", "candidates"):
            positive(f"extraction.{name}", getattr(self, name))
        if self.retries < 0 or self.retry_backoff_s < 0:
            raise ConfigError("extraction.retries and extraction.retry_backoff_s: must not be negative")

    @property
    def enabled(self) -> bool:
        return bool(self.provider)

    def api_key(self) -> str:
        """The LLM's key, from the named variable or the file's first line; empty for none."""
        if self.api_key_file:
            lines = Path(self.api_key_file).expanduser().read_text().splitlines()
            return lines[0].strip() if lines else ""
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""
