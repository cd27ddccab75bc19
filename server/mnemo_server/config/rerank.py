"""The rerank section: an optional cross-encoder over a search's top candidates (docs/retrieval.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mnemo_server.config.checks import ConfigError, doc, positive


@dataclass(frozen=True)
class RerankSettings:
    url: str = doc(
        "URL of a reranking endpoint in the TEI /rerank shape (e.g. http://tei:8080/rerank); "
        "empty: no HTTP reranker.",
        default="",
    )
    model_path: str = doc(
        "Directory of a local sentence-transformers CrossEncoder (never downloaded); empty: none.",
        default="",
    )
    api_key_env: str = doc(
        "The environment variable holding the endpoint's API key (read at start, never logged).", default=""
    )
    api_key_file: str = doc("A file whose first line is the endpoint's API key (never logged).", default="")
    timeout_s: float = doc(
        "Timeout of one reranking call; slower calls serve the un-reranked order.", default=2.0
    )
    top_n: int = doc("How many of a search's best candidates are reranked.", default=50)
    by_default: bool = doc(
        "Rerank every search that does not say otherwise (a request's rerank=false opts out).", default=False
    )
    log_interval_s: float = doc(
        "At most one warning about failing reranking per this many seconds.", default=60.0
    )

    def validate(self) -> None:
        if self.url and self.model_path:
            raise ConfigError("rerank.url and rerank.model_path: give one, not both")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ConfigError("rerank.url: must be an http:// or https:// URL")
        if self.model_path and not Path(self.model_path).expanduser().is_dir():
            raise ConfigError(f"rerank.model_path: {self.model_path} is not a directory")
        if self.api_key_env and self.api_key_file:
            raise ConfigError("rerank.api_key_env and rerank.api_key_file: give one, not both")
        if self.api_key_file and not Path(self.api_key_file).expanduser().is_file():
            raise ConfigError(f"rerank.api_key_file: cannot read {self.api_key_file}")
        for name in ("timeout_s", "top_n", "log_interval_s"):
            positive(f"rerank.{name}", getattr(self, name))
        if self.top_n > 1000:
            raise ConfigError("rerank.top_n: at most 1000")

    @property
    def enabled(self) -> bool:
        return bool(self.url or self.model_path)

    def api_key(self) -> str:
        """The endpoint's key, from the named variable or the file's first line; empty for none."""
        if self.api_key_file:
            lines = Path(self.api_key_file).expanduser().read_text().splitlines()
            return lines[0].strip() if lines else ""
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""
