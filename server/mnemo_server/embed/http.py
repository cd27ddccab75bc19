"""An OpenAI-compatible embeddings endpoint over HTTP (OpenAI, Ollama, TEI, vLLM).

    POST {base_url}/embeddings  {"model": ..., "input": [...]}
    -> {"data": [{"index": 0, "embedding": [...]}, ...]}

Standard library only: connections are kept alive in a small pool, because a
fresh TCP (and TLS) handshake per call would cost more than the call itself
against a local server.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import random
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import numpy as np

from mnemo_server import errors
from mnemo_server.embed.base import Embedder
from mnemo_server.embed.vectors import normalize_rows
from mnemo_server.models import Vector

log = logging.getLogger(__name__)

_REASON = "EMBEDDER_UNAVAILABLE"
_RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
#: Idle connections kept per embedder; more concurrent calls open extra ones.
_POOL_SIZE = 8


@dataclass(frozen=True, slots=True)
class _Failure:
    """One failed attempt: what to log and whether another attempt may help."""

    message: str
    retryable: bool
    retry_after_s: float | None = None


class OpenAIHttpEmbedder(Embedder):
    """Embeds through an OpenAI-compatible `/embeddings` endpoint.

    Vectors are validated (one per input, the expected dimension, finite, not
    all zeros) and L2-normalized here, since not every server normalizes.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        dimension: int | None = None,
        model_id: str | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
        max_batch: int = 64,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Configures the client; without `dimension`, makes one probe call.

        Args:
            base_url: e.g. "http://localhost:11434/v1"; "/embeddings" is appended.
            model: the model name sent in every request.
            api_key: sent as "Authorization: Bearer <key>" when given.
            dimension: the expected vector length; None asks the server once,
                now, and raises UnavailableError if it cannot answer.
            model_id: the name recorded on memories; defaults to `model`.
            timeout_s: socket timeout for connecting and for each read.
            max_retries: further attempts after a 408/429/5xx, a connection
                error or a timeout; 0 disables retrying.
            backoff_s: first retry delay; doubles per attempt, with jitter.
            max_backoff_s: cap on one delay, including a server's Retry-After.
            max_batch: most inputs per request; larger calls are split.
            headers: extra request headers (e.g. an organization id).
        """
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if dimension is not None and dimension < 1:
            raise ValueError(f"dimension must be >= 1, got {dimension}")
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port
        self._path = parsed.path.rstrip("/") + "/embeddings"
        self._url = f"{parsed.scheme}://{parsed.netloc}{self._path}"
        self._model = model
        self._model_id = model_id or model
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._max_batch = max_batch
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        self._headers.update(headers or {})
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._idle: list[http.client.HTTPConnection] = []
        self._pool_lock = threading.Lock()
        self._closed = False
        if dimension is None:
            # The probe's own length check is skipped (dimension 0 = unknown).
            self._dimension = 0
            try:
                probe = self._request(["dimension probe"])
            except BaseException:
                self.close()  # the caller never gets the object to close
                raise
            dimension = int(probe.shape[1])
            log.info("embedding endpoint %s reports %d dimensions", self._url, dimension)
        self._dimension = dimension

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> Vector:
        """Embeds `texts` in requests of at most `max_batch` inputs."""
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        texts = list(texts)
        parts = [
            self._request(texts[start : start + self._max_batch])
            for start in range(0, len(texts), self._max_batch)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def close(self) -> None:
        """Closes idle connections; calls after this fail."""
        with self._pool_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- one request, with retries -------------------------------------------------

    def _request(self, texts: list[str]) -> Vector:
        body = json.dumps({"model": self._model, "input": texts}).encode()
        attempt = 0
        while True:
            outcome = self._attempt(body)
            if not isinstance(outcome, _Failure):
                vectors = self._parse(outcome, len(texts))
                if isinstance(vectors, _Failure):
                    # A malformed answer is a server bug; asking again will not fix it.
                    raise self._unavailable(vectors, retry_after_s=None)
                return vectors
            if not outcome.retryable or attempt >= self._max_retries:
                hint = outcome.retry_after_s
                if outcome.retryable and hint is None:
                    hint = self._delay(attempt)
                raise self._unavailable(outcome, retry_after_s=hint if outcome.retryable else None)
            delay = self._delay(attempt)
            if outcome.retry_after_s is not None:
                delay = min(max(delay, outcome.retry_after_s), self._max_backoff_s)
            log.warning(
                "embedding request to %s failed (%s); retry %d/%d in %.2fs",
                self._url,
                outcome.message,
                attempt + 1,
                self._max_retries,
                delay,
            )
            time.sleep(delay)
            attempt += 1

    def _delay(self, attempt: int) -> float:
        # Full jitter keeps many server threads from retrying in lockstep.
        ceiling = min(self._backoff_s * (2**attempt), self._max_backoff_s)
        return random.uniform(ceiling / 2, ceiling)

    def _unavailable(self, failure: _Failure, *, retry_after_s: float | None) -> errors.MnemoError:
        return errors.UnavailableError(
            f"embedding endpoint {self._url} failed: {failure.message}",
            reason=_REASON,
            retry_after_s=retry_after_s,
        )

    def _attempt(self, body: bytes) -> bytes | _Failure:
        """Sends one POST; returns the 200 body, or why it failed."""
        conn, reused = self._checkout()
        try:
            conn.request("POST", self._path, body=body, headers=self._headers)
            response = conn.getresponse()
            payload = response.read()
        except TimeoutError:
            conn.close()
            return _Failure(f"no answer within {self._timeout_s}s", retryable=True)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            if reused:
                # The server closed the kept-alive connection while it sat idle;
                # that says nothing about its health, so resend (embedding is
                # idempotent) on a new connection without using up a retry.
                return self._attempt(body)
            return _Failure(f"connection error: {exc!r}", retryable=True)
        if response.will_close:
            conn.close()
        else:
            self._checkin(conn)
        if response.status == 200:
            return payload
        snippet = payload[:200].decode("utf-8", "replace")
        return _Failure(
            f"HTTP {response.status}: {snippet}",
            retryable=response.status in _RETRY_STATUSES,
            retry_after_s=_retry_after(response.getheader("Retry-After")),
        )

    def _parse(self, payload: bytes, count: int) -> Vector | _Failure:
        """The rows of a 200 answer in input order, validated and normalized."""
        try:
            data = json.loads(payload)["data"]
            if not isinstance(data, list) or len(data) != count:
                got = len(data) if isinstance(data, list) else type(data).__name__
                return _Failure(f"expected {count} embeddings, got {got}", retryable=False)
            rows: list[Any] = [None] * count
            for position, item in enumerate(data):
                # OpenAI returns "index"; servers that omit it answer in order.
                index = item.get("index", position)
                if not isinstance(index, int) or not 0 <= index < count or rows[index] is not None:
                    return _Failure(f"bad or repeated index {index!r}", retryable=False)
                rows[index] = item["embedding"]
            matrix = np.asarray(rows, dtype=np.float64)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return _Failure(f"malformed response: {exc!r}", retryable=False)
        if matrix.ndim != 2 or (self._dimension and matrix.shape[1] != self._dimension):
            width = matrix.shape[1] if matrix.ndim == 2 else "ragged"
            return _Failure(
                f"expected {self._dimension}-dimensional embeddings, got {width}", retryable=False
            )
        if matrix.shape[1] == 0 or not np.isfinite(matrix).all():
            return _Failure("embeddings are empty or hold NaN or infinity", retryable=False)
        unit = normalize_rows(matrix)
        if unit is None:
            return _Failure("an embedding is all zeros", retryable=False)
        return unit

    # -- connection pool -------------------------------------------------------------

    def _checkout(self) -> tuple[http.client.HTTPConnection, bool]:
        """A connection, and whether it was used before."""
        with self._pool_lock:
            if self._closed:
                raise errors.UnavailableError("the embedder is closed", reason=_REASON)
            if self._idle:
                return self._idle.pop(), True
        if self._https:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout_s
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)
        return conn, False

    def _checkin(self, conn: http.client.HTTPConnection) -> None:
        with self._pool_lock:
            if not self._closed and len(self._idle) < _POOL_SIZE:
                self._idle.append(conn)
                return
        conn.close()


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None
