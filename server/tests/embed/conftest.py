"""Fixtures for the embedding tests: the real model, loaded once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mnemo_server.embed.local import SentenceTransformerEmbedder

from .embed_fakes import FakeOpenAIServer


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEmbedder:
    """The packaged all-MiniLM-L6-v2 (a few seconds to load)."""
    return SentenceTransformerEmbedder()


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer().start()
    yield server
    server.stop()
