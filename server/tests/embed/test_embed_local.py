"""SentenceTransformerEmbedder with the real packaged model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mnemo_server import errors
from mnemo_server.embed.local import SentenceTransformerEmbedder, default_model_path


def test_reports_the_packaged_model(minilm: SentenceTransformerEmbedder) -> None:
    assert minilm.model_id == "all-MiniLM-L6-v2"
    assert minilm.dimension == 384
    assert minilm.max_seq_length == 256


def test_vectors_are_unit_float32_rows(minilm: SentenceTransformerEmbedder) -> None:
    vectors = minilm.embed(["I love dogs", "", "ünïcödé ✓ 東京", "x" * 5000])

    assert vectors.shape == (4, 384)
    assert vectors.dtype == np.float32
    assert vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_similar_meanings_are_closer(minilm: SentenceTransformerEmbedder) -> None:
    dogs, puppies, taxes = minilm.embed(["I love dogs", "puppies are great", "quarterly tax filing"])

    assert dogs @ puppies > dogs @ taxes + 0.3


def test_a_batch_equals_texts_embedded_one_by_one(minilm: SentenceTransformerEmbedder) -> None:
    texts = ["short", "a somewhat longer sentence, so that the batch needs padding"]

    batch = minilm.embed(texts)
    single = np.stack([minilm.embed([t])[0] for t in texts])

    np.testing.assert_allclose(batch, single, atol=1e-5)


def test_long_texts_are_truncated_not_rejected(minilm: SentenceTransformerEmbedder) -> None:
    head = "the cat sat on the mat " * 60  # ~360 tokens: more than the 256 kept
    vectors = minilm.embed([head, head + "and then many more unrelated words " * 50])

    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-5)


def test_no_texts_need_no_model_call(minilm: SentenceTransformerEmbedder) -> None:
    assert minilm.embed([]).shape == (0, 384)


def test_a_configured_path_is_reported_as_the_model_id() -> None:
    path = default_model_path()

    embedder = SentenceTransformerEmbedder(path, threads=1, max_seq_length=64, warm_up=False)

    assert embedder.model_id == path
    assert embedder.max_seq_length == 64
    assert embedder.embed(["hello"]).shape == (1, 384)


def test_a_missing_model_is_unavailable(tmp_path: Any) -> None:
    with pytest.raises(errors.UnavailableError) as caught:
        SentenceTransformerEmbedder(str(tmp_path / "no-such-model"))

    assert caught.value.reason == "EMBEDDER_UNAVAILABLE"


def test_a_model_failure_is_unavailable(
    minilm: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(minilm._model, "encode", fail)

    with pytest.raises(errors.UnavailableError) as caught:
        minilm.embed(["hello"])

    assert caught.value.reason == "EMBEDDER_UNAVAILABLE"
    assert isinstance(caught.value.__cause__, RuntimeError)
