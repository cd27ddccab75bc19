"""A tiny OpenAI-compatible chat-completions server for tests: the seam where
mem0ai's real OpenAI client (built by its LlmFactory) meets a scripted LLM.

`FakeLlm(script)` listens on 127.0.0.1; `script(call)` returns a Reply for
each POST /v1/chat/completions: content (JSON or not), an HTTP error, a delay,
or a block until an event is set. Every call is recorded.
"""

from __future__ import annotations

import ast
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEY = "sk-test-" + "k" * 32


@dataclass
class Reply:
    content: str = ""
    status: int = 200
    delay_s: float = 0.0
    block: threading.Event | None = None
    #: A whole recorded chat.completion answered as is (content is then ignored).
    completion: dict[str, Any] | None = None


@dataclass
class Call:
    body: dict[str, Any]
    authorization: str

    @property
    def system(self) -> str:
        first = self.body["messages"][0]
        return str(first["content"]) if first["role"] == "system" else ""

    @property
    def user(self) -> str:
        return str(self.body["messages"][-1]["content"])

    @property
    def kind(self) -> str:
        """additive (mem0 2.x), facts (classic fact retrieval) or update (classic reconciliation)."""
        if "## New Messages" in self.user:
            return "additive"
        if "smart memory manager" in self.user:
            return "update"
        return "facts"

    def existing(self) -> list[dict[str, str]]:
        """The stored memories the prompt shows, as [{"id", "text"}]."""
        if self.kind == "additive":
            part = self.user.split("## Existing Memories\n", 1)[1].split("\n\n## New Messages", 1)[0]
            return list(json.loads(part))
        if "Current memory is empty" in self.user:
            return []
        block = self.user.split("```", 2)[1]
        return list(ast.literal_eval(block.strip()))

    def facts(self) -> list[str]:
        """The facts an update prompt shows."""
        return list(ast.literal_eval(self.user.split("```")[-2].strip()))


def completion(content: str, model: str = "fake") -> dict[str, Any]:
    """A chat.completion as OpenAI's API answers it."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


def memories(*texts: str, links: dict[int, list[str]] | None = None) -> str:
    """An additive answer adding `texts`."""
    items: list[dict[str, Any]] = [{"id": str(i), "text": t} for i, t in enumerate(texts)]
    for i, ids in (links or {}).items():
        items[i]["linked_memory_ids"] = ids
    return json.dumps({"memory": items})


@dataclass
class FakeLlm:
    script: Callable[[Call], Reply]
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                call = Call(body, self.headers.get("Authorization", ""))
                with fake._lock:
                    fake.calls.append(call)
                reply = fake.script(call)
                if reply.block is not None:
                    reply.block.wait(120)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.status != 200:
                    data = json.dumps({"error": {"message": "scripted failure", "type": "server_error"}})
                elif reply.completion is not None:
                    data = json.dumps(reply.completion)
                else:
                    data = json.dumps(completion(reply.content, body.get("model", "fake")))
                raw = data.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:  # the client gave up (a timeout test)
                    pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # many jobs at once must not find the port refusing

        self._lock = threading.Lock()
        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
