"""A reranker behind HTTP, in the shape of Hugging Face TEI's `/rerank`:

    POST {url}  {"query": "...", "texts": ["...", ...]}
    200         [{"index": 0, "score": 0.93}, {"index": 2, "score": 0.41}, ...]

every index once, in any order. The API key, when configured, goes in an
`Authorization: Bearer` header and nowhere else (never in logs or errors).
"""

from __future__ import annotations

import json
import math
import socket
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from mnemo_server.rerank.base import Reranker, RerankFailure


class HttpReranker(Reranker):
    name = "http reranker"

    def __init__(self, url: str, *, timeout_s: float, api_key: str = "") -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        body = json.dumps({"query": query, "texts": list(texts)}).encode()
        request = urllib.request.Request(self.url, data=body, headers=self._headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except TimeoutError as exc:
            raise RerankFailure("timeout", f"no answer within {self.timeout_s:g}s") from exc
        except urllib.error.HTTPError as exc:
            raise RerankFailure("unavailable", f"HTTP {exc.code} from {self.url}") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError | socket.timeout):
                raise RerankFailure("timeout", f"no answer within {self.timeout_s:g}s") from None
            raise RerankFailure("unavailable", f"{self.url}: {exc.reason}") from None
        except OSError as exc:
            raise RerankFailure("unavailable", f"{self.url}: {type(exc).__name__}") from None
        return parse(raw, len(texts))


def parse(raw: bytes, n: int) -> list[float]:
    """The scores of a `/rerank` answer for n texts, in text order."""
    try:
        items: Any = json.loads(raw)
    except ValueError:
        raise RerankFailure("malformed", "the answer is not JSON") from None
    if not isinstance(items, list) or len(items) != n:
        raise RerankFailure("malformed", f"expected a list of {n} results")
    scores: list[float | None] = [None] * n
    for item in items:
        index = item.get("index") if isinstance(item, dict) else None
        score = item.get("score") if isinstance(item, dict) else None
        if (
            isinstance(index, bool)
            or not isinstance(index, int)
            or not 0 <= index < n
            or scores[index] is not None
            or isinstance(score, bool)
            or not isinstance(score, int | float)
            or not math.isfinite(score)
        ):
            raise RerankFailure("malformed", "results must give each index once with a finite score")
        scores[index] = float(score)
    return [s for s in scores if s is not None]
