"""An extraction whose write fails for a passing reason (the embedding model
unavailable for a moment, faked at the embedder seam) is written once it recovers;
one that keeps failing fails with that reason and writes nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from mnemo.v1 import extraction_service_pb2 as ex
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server import errors
from mnemo_server.embed.base import Embedder

from ..conftest import RunningServer, make_settings, start_server
from .conftest import KEY_ENV, Script, extract, extraction_settings, user
from .fake_llm import KEY, FakeLlm, Reply, memories

pytestmark = pytest.mark.timeout(120)


class FlakyEmbedder(Embedder):
    """The real model, except that embedding `fact` fails while `failures` > 0
    (a new fact per test: the server caches embeddings)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.fact = ""
        self.failures = 0
        self.refused = 0
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            if self.fact in texts and self.failures > 0:
                self.failures -= 1
                self.refused += 1
                raise errors.UnavailableError("the model is reloading", reason="EMBEDDER_UNAVAILABLE")
        return self.inner.embed(texts)


@pytest.fixture(scope="module")
def flaky(embedder: Embedder) -> FlakyEmbedder:
    return FlakyEmbedder(embedder)


@pytest.fixture(scope="module")
def rserver(
    tmp_path_factory: pytest.TempPathFactory, flaky: FlakyEmbedder, llm: tuple[FakeLlm, Script]
) -> Iterator[RunningServer]:
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, KEY)
    data = tmp_path_factory.mktemp("extract-retry")
    running = start_server(make_settings(data, extraction=extraction_settings(llm[0].base_url)), flaky)
    yield running
    running.stop()
    mp.undo()


def stored(server: RunningServer, user_id: str) -> list[str]:
    listed = server.memory.ListMemories(pb.ListMemoriesRequest(scope=m.Scope(user_id=user_id), page_size=100))
    return sorted(x.content for x in listed.memories)


def test_a_write_failing_for_a_moment_is_repeated_and_lands_once(
    rserver: RunningServer, script: Script, flaky: FlakyEmbedder, llm: tuple[FakeLlm, Script]
) -> None:
    zoe = user()
    flaky.fact = fact = f"{zoe} keeps bees on her roof"
    script.reply = lambda call: Reply(memories(fact))
    flaky.failures, flaky.refused = 2, 0  # retries = 2: the third write goes through
    op = extract(rserver, zoe, "I keep bees on my roof")
    assert op.state == ex.OPERATION_STATE_SUCCEEDED, op.error
    assert flaky.refused == 2
    assert [(f.event, f.text) for f in op.result.facts] == [(ex.FACT_EVENT_ADDED, fact)]
    assert len(llm[0].calls) == 1  # the stored plan was written again, not planned again
    assert stored(rserver, zoe) == [fact]


def test_a_write_that_keeps_failing_fails_with_its_reason_and_writes_nothing(
    rserver: RunningServer, script: Script, flaky: FlakyEmbedder
) -> None:
    zoe = user()
    flaky.fact = fact = f"{zoe} keeps bees on her roof"
    script.reply = lambda call: Reply(memories(fact))
    flaky.failures, flaky.refused = 10, 0
    try:
        op = extract(rserver, zoe, "I keep bees on my roof")
    finally:
        left, flaky.failures = flaky.failures, 0
    assert op.state == ex.OPERATION_STATE_FAILED
    assert op.error.reason == "EMBEDDER_UNAVAILABLE" and not op.HasField("result")
    assert flaky.refused == 3 and left == 7  # the first write and its 2 repeats
    assert stored(rserver, zoe) == []
