"""The Embedder contract, run against every implementation on the real model."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

from mnemo_server.cache import EmbeddingCache, LocalCache
from mnemo_server.embed.base import Embedder
from mnemo_server.embed.batching import MicroBatchingEmbedder
from mnemo_server.embed.cached import CachingEmbedder
from mnemo_server.embed.http import OpenAIHttpEmbedder
from mnemo_server.embed.local import SentenceTransformerEmbedder

from .embed_fakes import FakeOpenAIServer

Factory = Callable[[SentenceTransformerEmbedder], Embedder]


def _http(model: SentenceTransformerEmbedder) -> Embedder:
    # An OpenAI-compatible server in front of the same model, as TEI would be.
    server = FakeOpenAIServer(dimension=model.dimension, vectors=model.embed).start()
    embedder = OpenAIHttpEmbedder(server.base_url, "all-MiniLM-L6-v2", max_batch=3)
    _servers.append(server)
    return embedder


_servers: list[FakeOpenAIServer] = []

FACTORIES: dict[str, Factory] = {
    "local": lambda model: model,
    "batching": lambda model: MicroBatchingEmbedder(model),
    "cached": lambda model: CachingEmbedder(model, EmbeddingCache(LocalCache())),
    "cached+batching": lambda model: CachingEmbedder(
        MicroBatchingEmbedder(model), EmbeddingCache(LocalCache())
    ),
    "http": _http,
}


@pytest.fixture(params=list(FACTORIES))
def embedder(request: pytest.FixtureRequest, minilm: SentenceTransformerEmbedder) -> Iterator[Embedder]:
    instance = FACTORIES[request.param](minilm)
    yield instance
    instance.close()  # the shared model's close() is a no-op
    while _servers:
        _servers.pop().stop()


def test_identity(embedder: Embedder) -> None:
    assert embedder.model_id == "all-MiniLM-L6-v2"
    assert embedder.dimension == 384


def test_rows_are_unit_float32_in_input_order(
    embedder: Embedder, minilm: SentenceTransformerEmbedder
) -> None:
    texts = ["I love dogs", "puppies are great", "quarterly tax filing", "I love dogs", ""]

    vectors = embedder.embed(texts)

    assert vectors.shape == (5, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, minilm.embed(texts), atol=1e-5)
    dogs, puppies, taxes = vectors[:3]
    assert dogs @ puppies > dogs @ taxes + 0.3


def test_no_texts(embedder: Embedder) -> None:
    assert embedder.embed([]).shape == (0, 384)
