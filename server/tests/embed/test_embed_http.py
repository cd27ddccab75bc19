"""OpenAIHttpEmbedder against a real local HTTP server imitating the OpenAI API."""

from __future__ import annotations

import socket
import time
from typing import Any

import numpy as np
import pytest

from mnemo_server import errors
from mnemo_server.embed.http import OpenAIHttpEmbedder

from .embed_fakes import FakeOpenAIServer, Reply, fake_vector, run_threads


def expected(texts: list[str], dimension: int = 8) -> np.ndarray:
    return np.stack([fake_vector(t, dimension) for t in texts])


def client(server: FakeOpenAIServer, **options: Any) -> OpenAIHttpEmbedder:
    options.setdefault("dimension", server.dimension)
    options.setdefault("backoff_s", 0.01)
    return OpenAIHttpEmbedder(server.base_url, "test-model", **options)


def unavailable(embedder: OpenAIHttpEmbedder, texts: list[str]) -> errors.UnavailableError:
    with pytest.raises(errors.UnavailableError) as caught:
        embedder.embed(texts)
    assert caught.value.reason == "EMBEDDER_UNAVAILABLE"
    return caught.value


def test_embeds_and_normalizes(openai_server: FakeOpenAIServer) -> None:
    embedder = client(openai_server, api_key="sk-test", headers={"X-Tenant": "t1"})

    vectors = embedder.embed(["alpha", "beta", "gamma"])
    embedder.close()

    # The server answers with vectors of norm 3; the client scales them to 1.
    np.testing.assert_allclose(vectors, expected(["alpha", "beta", "gamma"]), atol=1e-6)
    assert vectors.dtype == np.float32
    [request] = openai_server.received
    assert request.body == {"model": "test-model", "input": ["alpha", "beta", "gamma"]}
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert request.headers["X-Tenant"] == "t1"
    assert embedder.model_id == "test-model"


def test_the_dimension_is_discovered_by_one_probe(openai_server: FakeOpenAIServer) -> None:
    embedder = client(openai_server, dimension=None, model_id="remote-minilm")

    assert embedder.dimension == 8
    assert embedder.model_id == "remote-minilm"
    assert len(openai_server.received) == 1
    embedder.close()


def test_a_configured_dimension_needs_no_probe(openai_server: FakeOpenAIServer) -> None:
    client(openai_server).close()

    assert openai_server.received == []


def test_big_batches_are_split(openai_server: FakeOpenAIServer) -> None:
    embedder = client(openai_server, max_batch=4)
    texts = [f"text {i}" for i in range(10)]

    vectors = embedder.embed(texts)
    embedder.close()

    assert openai_server.batch_sizes() == [4, 4, 2]
    np.testing.assert_allclose(vectors, expected(texts), atol=1e-6)


def test_rows_follow_the_index_field_not_the_answer_order(openai_server: FakeOpenAIServer) -> None:
    texts = ["first", "second", "third"]
    shuffled = [{"index": i, "embedding": fake_vector(texts[i], 8).tolist()} for i in (2, 0, 1)]
    openai_server.script.append(Reply(body={"data": shuffled}))
    embedder = client(openai_server)

    vectors = embedder.embed(texts)
    embedder.close()

    np.testing.assert_allclose(vectors, expected(texts), atol=1e-6)


@pytest.mark.parametrize("status", [503, 429, 500])
def test_retries_overload_then_succeeds(openai_server: FakeOpenAIServer, status: int) -> None:
    openai_server.script.extend([Reply(status), Reply(status)])
    embedder = client(openai_server, max_retries=3)

    vectors = embedder.embed(["persist"])
    embedder.close()

    assert len(openai_server.received) == 3
    np.testing.assert_allclose(vectors, expected(["persist"]), atol=1e-6)


def test_gives_up_after_the_retries_with_the_servers_hint(openai_server: FakeOpenAIServer) -> None:
    openai_server.script.extend([Reply(503, headers={"Retry-After": "7"})] * 3)
    embedder = client(openai_server, max_retries=2, max_backoff_s=0.02)

    started = time.perf_counter()
    error = unavailable(embedder, ["doomed"])
    elapsed = time.perf_counter() - started
    embedder.close()

    assert len(openai_server.received) == 3
    assert error.retry_after_s == 7.0  # passed on to the client...
    assert elapsed < 1.0  # ...but our own waits are capped by max_backoff_s


def test_a_client_error_is_not_retried(openai_server: FakeOpenAIServer) -> None:
    openai_server.script.append(Reply(401, body={"error": "bad key"}))
    embedder = client(openai_server, max_retries=3)

    error = unavailable(embedder, ["text"])
    embedder.close()

    assert len(openai_server.received) == 1
    assert error.retry_after_s is None
    assert "401" in error.message


def test_a_slow_server_times_out(openai_server: FakeOpenAIServer) -> None:
    openai_server.script.extend([Reply(delay_s=1.0), Reply(delay_s=1.0)])
    embedder = client(openai_server, timeout_s=0.1, max_retries=1)

    started = time.perf_counter()
    error = unavailable(embedder, ["slow"])
    elapsed = time.perf_counter() - started
    embedder.close()

    assert elapsed < 0.8
    assert len(openai_server.received) == 2
    assert error.retry_after_s is not None


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (Reply(body={"data": [{"index": 0, "embedding": [1.0] * 6}]}), "wrong dimension"),
        (Reply(body={"data": []}), "wrong count"),
        (Reply(body={"data": [{"index": 0, "embedding": [float("nan")] * 8}]}), "NaN"),
        (Reply(body={"data": [{"index": 0, "embedding": [0.0] * 8}]}), "all zeros"),
        (Reply(body={"data": [{"index": 5, "embedding": [1.0] * 8}]}), "bad index"),
        (Reply(body={"data": [{"index": 0, "embedding": "AAAA"}]}), "base64 string"),
        (Reply(body={"unexpected": True}), "no data"),
    ],
)
def test_a_malformed_answer_is_unavailable_and_not_retried(
    openai_server: FakeOpenAIServer, reply: Reply, why: str
) -> None:
    openai_server.script.append(reply)
    embedder = client(openai_server, max_retries=3)

    unavailable(embedder, ["text"])
    embedder.close()

    assert len(openai_server.received) == 1, why


def test_a_failed_probe_fails_construction(openai_server: FakeOpenAIServer) -> None:
    openai_server.script.append(Reply(404))

    with pytest.raises(errors.UnavailableError) as caught:
        client(openai_server, dimension=None)

    assert caught.value.reason == "EMBEDDER_UNAVAILABLE"


def test_a_refused_connection_is_retried_then_unavailable() -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    embedder = OpenAIHttpEmbedder(
        f"http://127.0.0.1:{port}/v1", "m", dimension=8, max_retries=2, backoff_s=0.01
    )

    error = unavailable(embedder, ["text"])
    embedder.close()

    assert error.retry_after_s is not None


def test_connections_are_kept_alive(openai_server: FakeOpenAIServer) -> None:
    embedder = client(openai_server)

    for i in range(5):
        embedder.embed([f"text {i}"])
    embedder.close()

    assert len({request.client_port for request in openai_server.received}) == 1


def test_a_connection_the_server_dropped_is_replaced_without_a_retry(
    openai_server: FakeOpenAIServer,
) -> None:
    openai_server.drop_connections = True
    embedder = client(openai_server, max_retries=0)

    for i in range(3):
        np.testing.assert_allclose(embedder.embed([f"t{i}"]), expected([f"t{i}"]), atol=1e-6)
    embedder.close()


def test_concurrent_callers(openai_server: FakeOpenAIServer) -> None:
    embedder = client(openai_server)

    results = run_threads(16, lambda i: embedder.embed([f"caller {i}"]))
    embedder.close()

    for i, vectors in enumerate(results):
        np.testing.assert_allclose(vectors, expected([f"caller {i}"]), atol=1e-6)


def test_calls_after_close_are_unavailable(openai_server: FakeOpenAIServer) -> None:
    embedder = client(openai_server)
    embedder.close()

    unavailable(embedder, ["text"])


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError):
        OpenAIHttpEmbedder("localhost:8080", "m", dimension=8)
