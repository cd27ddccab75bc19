"""Test doubles for the embedding seam.

`RecordingEmbedder` stands in for a model where the test is about the
wrapper around it (batching, caching). `FakeOpenAIServer` is a real HTTP
server on port 0 that speaks the OpenAI embeddings protocol, scripted per
request, for the HTTP client's tests.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from mnemo_server import errors
from mnemo_server.embed.base import Embedder
from mnemo_server.models import Vector


def fake_vector(text: str, dimension: int) -> Vector:
    """A unit vector that depends only on `text`: lets a test check which
    text a row belongs to by its content."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    raw = np.random.default_rng(seed).standard_normal(dimension)
    return (raw / np.linalg.norm(raw)).astype(np.float32)


class RecordingEmbedder(Embedder):
    """Embeds with `fake_vector` and records every call.

    A call containing "blocker" waits for `release` (so a test can hold the
    worker busy while it queues more requests); a call containing "boom"
    raises UnavailableError. `delay_s` imitates the model's cost per call.
    """

    def __init__(self, dimension: int = 16, *, delay_s: float = 0.0) -> None:
        self._dimension = dimension
        self.delay_s = delay_s
        self.calls: list[list[str]] = []
        self.release = threading.Event()
        self.blocked = threading.Event()
        self.closed = False
        self.max_concurrent = 0
        self._active = 0
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return "fake-model"

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> Vector:
        with self._lock:
            self.calls.append(list(texts))
            self._active += 1
            self.max_concurrent = max(self.max_concurrent, self._active)
        try:
            if "blocker" in texts:
                self.blocked.set()
                assert self.release.wait(10), "the test never released the blocker"
            if self.delay_s:
                time.sleep(self.delay_s)
            if "boom" in texts:
                raise errors.UnavailableError("model fell over", reason="EMBEDDER_UNAVAILABLE")
            return np.stack([fake_vector(t, self._dimension) for t in texts])
        finally:
            with self._lock:
                self._active -= 1

    def close(self) -> None:
        self.closed = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops simultaneous connects, which then wait
    # a second for the SYN to be resent.
    request_queue_size = 128


@dataclass
class Reply:
    """One scripted answer. `body` None means: embed the request's inputs."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Received:
    """One request as the server saw it."""

    body: dict[str, Any]
    headers: dict[str, str]
    client_port: int


class FakeOpenAIServer:
    """An OpenAI-compatible /v1/embeddings endpoint on 127.0.0.1, port 0.

    Answers from `script` first (one Reply per request), then with
    `vectors(inputs)`, unnormalized, so the client's normalization is tested.
    """

    def __init__(self, dimension: int = 8, vectors: Callable[[list[str]], np.ndarray] | None = None) -> None:
        self.dimension = dimension
        self.vectors = vectors or (lambda inputs: np.stack([3.0 * fake_vector(t, dimension) for t in inputs]))
        self.script: deque[Reply] = deque()
        self.received: list[Received] = []
        #: Drop the connection after each answer without saying so, like a
        #: server whose keep-alive timeout expired.
        self.drop_connections = False
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def batch_sizes(self) -> list[int]:
        return [len(r.body["input"]) for r in self.received]

    def _next_reply(self) -> Reply:
        with self._lock:
            return self.script.popleft() if self.script else Reply()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
            disable_nagle_algorithm = True  # headers and body go in two writes

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.received.append(Received(body, dict(self.headers.items()), self.client_address[1]))
                reply = server._next_reply()
                time.sleep(reply.delay_s)
                if reply.status == 200 and reply.body is None:
                    rows = server.vectors(body["input"])
                    reply_body: Any = {
                        "object": "list",
                        "model": body["model"],
                        "data": [
                            {"object": "embedding", "index": i, "embedding": row.tolist()}
                            for i, row in enumerate(rows)
                        ],
                    }
                else:
                    reply_body = reply.body if reply.body is not None else {"error": "scripted"}
                payload = json.dumps(reply_body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    return  # the client gave up (timeout tests)
                if server.drop_connections:
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        return Handler


def run_threads(count: int, target: Callable[[int], Any], *, timeout_s: float = 30) -> list[Any]:
    """Runs target(i) for i in range(count) on as many threads released
    together; returns results (or the exceptions raised) in order."""
    results: list[Any] = [None] * count
    barrier = threading.Barrier(count)

    def body(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout_s)
        assert not thread.is_alive(), "a caller thread hung"
    return results


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Polls `condition` until it holds; fails the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.001)
