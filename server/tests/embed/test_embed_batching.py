"""MicroBatchingEmbedder: concurrent callers share inner calls and get their own rows."""

from __future__ import annotations

import threading
import time
from functools import partial

import numpy as np
import pytest

from mnemo_server import errors
from mnemo_server.embed.batching import MicroBatchingEmbedder
from mnemo_server.embed.local import SentenceTransformerEmbedder

from .embed_fakes import RecordingEmbedder, fake_vector, run_threads, wait_until


def expected(texts: list[str], dimension: int = 16) -> np.ndarray:
    return np.stack([fake_vector(t, dimension) for t in texts])


def queued_is(batcher: MicroBatchingEmbedder, count: int) -> bool:
    return batcher.stats().queued == count


def hold_worker(inner: RecordingEmbedder, batcher: MicroBatchingEmbedder) -> threading.Thread:
    """Starts a call that keeps the worker busy until inner.release is set."""
    thread = threading.Thread(target=batcher.embed, args=(["blocker"],))
    thread.start()
    assert inner.blocked.wait(5)
    return thread


def test_concurrent_callers_share_few_inner_calls_and_get_their_own_rows() -> None:
    inner = RecordingEmbedder(delay_s=0.02)
    batcher = MicroBatchingEmbedder(inner, max_batch=32)

    def call(i: int) -> tuple[list[str], np.ndarray]:
        texts = [f"caller {i} text {j}" for j in range(1 + i % 3)]
        return texts, batcher.embed(texts)

    results = run_threads(32, call)
    batcher.close()

    for texts, vectors in results:
        np.testing.assert_array_equal(vectors, expected(texts))
    stats = batcher.stats()
    assert stats.requests == 32
    assert stats.texts == sum(len(texts) for texts, _ in results) == 63
    assert stats.batches == len(inner.calls) <= 8
    assert stats.mean_batch_size >= 63 / 8
    assert max(len(call) for call in inner.calls) <= 32
    assert inner.max_concurrent == 1


def test_a_lone_request_does_not_wait_for_company() -> None:
    batcher = MicroBatchingEmbedder(RecordingEmbedder(), max_wait_ms=500)

    started = time.perf_counter()
    for i in range(5):
        batcher.embed([f"text {i}"])
    elapsed = time.perf_counter() - started
    batcher.close()

    assert elapsed < 0.25  # one max_wait alone would be 0.5 s


def test_duplicates_within_a_batch_are_embedded_once() -> None:
    inner = RecordingEmbedder()
    batcher = MicroBatchingEmbedder(inner, max_batch=32)
    blocker = hold_worker(inner, batcher)
    callers = threading.Thread(target=run_threads, args=(16, lambda i: batcher.embed(["shared", f"own {i}"])))
    callers.start()
    wait_until(lambda: batcher.stats().queued == 16)

    inner.release.set()
    callers.join()
    blocker.join()
    batcher.close()

    assert len(inner.calls) == 2
    assert inner.calls[1].count("shared") == 1
    assert len(inner.calls[1]) == 17
    assert batcher.stats().embedded == 1 + 17


def test_a_batch_holds_at_most_max_batch_texts_unless_one_request_is_bigger() -> None:
    inner = RecordingEmbedder()
    batcher = MicroBatchingEmbedder(inner, max_batch=4)
    blocker = hold_worker(inner, batcher)
    results: dict[str, np.ndarray] = {}

    def call(name: str, count: int) -> None:
        results[name] = batcher.embed([f"{name} {j}" for j in range(count)])

    sizes = [("a", 3), ("b", 2), ("c", 9)]
    threads = [threading.Thread(target=call, args=size) for size in sizes]
    for position, thread in enumerate(threads, start=1):
        thread.start()  # one at a time, so the queue order is known
        wait_until(partial(queued_is, batcher, position))
    inner.release.set()
    for thread in [*threads, blocker]:
        thread.join()
    batcher.close()

    # a (3) and b (2) do not fit together in 4; c (9) goes alone.
    assert [len(call) for call in inner.calls[1:]] == [3, 2, 9]
    for name, count in sizes:
        np.testing.assert_array_equal(results[name], expected([f"{name} {j}" for j in range(count)]))


def test_an_inner_error_reaches_every_caller_of_the_batch() -> None:
    inner = RecordingEmbedder()
    batcher = MicroBatchingEmbedder(inner)
    blocker = hold_worker(inner, batcher)
    outcomes: list[object] = []
    callers = threading.Thread(
        target=lambda: outcomes.extend(
            run_threads(8, lambda i: batcher.embed(["boom" if i == 0 else f"fine {i}"]))
        )
    )
    callers.start()
    wait_until(lambda: batcher.stats().queued == 8)

    inner.release.set()
    callers.join()
    blocker.join()

    assert len(outcomes) == 8
    for outcome in outcomes:
        assert isinstance(outcome, errors.UnavailableError)
        assert outcome.reason == "EMBEDDER_UNAVAILABLE"
    # Each caller got its own exception object to raise and annotate.
    assert len({id(outcome) for outcome in outcomes}) == 8
    # The worker survives a failed batch.
    np.testing.assert_array_equal(batcher.embed(["after"]), expected(["after"]))
    batcher.close()


def test_close_fails_queued_calls_and_lets_the_running_batch_finish() -> None:
    inner = RecordingEmbedder()
    batcher = MicroBatchingEmbedder(inner)
    running: list[np.ndarray] = []
    blocker = threading.Thread(target=lambda: running.append(batcher.embed(["blocker"])))
    blocker.start()
    assert inner.blocked.wait(5)
    queued: list[object] = []
    callers = threading.Thread(
        target=lambda: queued.extend(run_threads(5, lambda i: batcher.embed([f"late {i}"])))
    )
    callers.start()
    wait_until(lambda: batcher.stats().queued == 5)

    closer = threading.Thread(target=batcher.close)
    closer.start()
    callers.join(5)  # the queued calls fail while the running batch still runs
    assert not callers.is_alive()
    inner.release.set()
    closer.join(5)
    blocker.join(5)

    assert [getattr(o, "reason", o) for o in queued] == ["EMBEDDER_UNAVAILABLE"] * 5
    np.testing.assert_array_equal(running[0], expected(["blocker"]))
    assert inner.closed
    with pytest.raises(errors.UnavailableError):
        batcher.embed(["too late"])
    batcher.close()  # idempotent


def test_no_texts_skip_the_worker() -> None:
    inner = RecordingEmbedder()
    batcher = MicroBatchingEmbedder(inner)

    assert batcher.embed([]).shape == (0, 16)
    batcher.close()
    assert inner.calls == []


def test_concurrent_callers_on_the_real_model_get_the_direct_vectors(
    minilm: SentenceTransformerEmbedder,
) -> None:
    texts = [f"memory number {i}: the user likes topic {i % 5}" for i in range(24)]
    direct = minilm.embed(texts)
    batcher = MicroBatchingEmbedder(minilm)

    results = run_threads(24, lambda i: batcher.embed([texts[i]]))
    stats = batcher.stats()
    batcher.close()  # closing the wrapper leaves the shared model usable (a no-op close)

    np.testing.assert_allclose(np.concatenate(results), direct, atol=1e-5)
    assert stats.batches < stats.requests
