"""Fixtures of the HTTP tests: real servers with `http.address` on, called
with a real HTTP client (httpx) over loopback, as curl or a browser would."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2

from mnemo_server.embed.base import Embedder

from ..conftest import RunningServer, start_server
from ..security.conftest import BOOTSTRAP, secure_settings


@dataclass
class Http:
    """One server's HTTP side as one API key (or none)."""

    server: RunningServer
    key: str | None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.app.http_port}"

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        out = {"content-type": "application/json"}
        if self.key is not None:
            out["authorization"] = f"Bearer {self.key}"
        return {**out, **(extra or {})}

    def post(self, rpc: str, body: Any, *, service: str = "MemoryService", **kwargs: Any) -> httpx.Response:
        """A unary Connect call with a JSON body."""
        return httpx.post(
            f"{self.base}/mnemo.v1.{service}/{rpc}", json=body, headers=self.headers(), timeout=60, **kwargs
        )

    def call(self, rpc: str, body: Any, *, service: str = "MemoryService") -> dict[str, Any]:
        """A unary call that must succeed; its JSON answer."""
        response = self.post(rpc, body, service=service)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def stream(
        self, rpc: str, body: Any, *, timeout: float = 60
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """A server-streaming Connect call: (messages, end-of-stream JSON)."""
        response = httpx.post(
            f"{self.base}/mnemo.v1.MemoryService/{rpc}",
            content=envelope(body),
            headers=self.headers({"content-type": "application/connect+json"}),
            timeout=timeout,
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/connect+json"
        return split_envelopes(response.content)


def envelope(body: Any, flags: int = 0) -> bytes:
    data = json.dumps(body).encode()
    return struct.pack(">BI", flags, len(data)) + data


def split_envelopes(data: bytes) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The messages of a Connect stream and its end-of-stream message."""
    messages, end, at = [], None, 0
    while at < len(data):
        flags, size = struct.unpack_from(">BI", data, at)
        payload = json.loads(data[at + 5 : at + 5 + size])
        at += 5 + size
        if flags & 0x02:
            end = payload
        else:
            messages.append(payload)
    assert end is not None, "no end-of-stream message"
    return messages, end


def connect_error(response: httpx.Response) -> tuple[str, str, list[str], Any]:
    """(Connect code, ErrorInfo reason, BadRequest fields, RetryInfo) of an error
    answer, decoded from the base64 details as any Connect client would."""
    body = response.json()
    return error_parts(body)


def error_parts(body: dict[str, Any]) -> tuple[str, str, list[str], Any]:
    reason, fields, retry = "", [], None
    for detail in body.get("details", ()):
        raw = base64.b64decode(detail["value"] + "=" * (-len(detail["value"]) % 4))
        if detail["type"] == "google.rpc.ErrorInfo":
            info: Message = error_details_pb2.ErrorInfo.FromString(raw)
            reason = info.reason  # type: ignore[attr-defined]
            assert info.domain == "mnemo.dev"  # type: ignore[attr-defined]
            assert detail["debug"]["reason"] == reason
        elif detail["type"] == "google.rpc.BadRequest":
            bad = error_details_pb2.BadRequest.FromString(raw)
            fields = [v.field for v in bad.field_violations]
        elif detail["type"] == "google.rpc.RetryInfo":
            retry = error_details_pb2.RetryInfo.FromString(raw)
    return body["code"], reason, fields, retry


@pytest.fixture(scope="session")
def web(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[RunningServer]:
    """A server with API keys required and the HTTP side on; tests keep apart by tenants."""
    data = tmp_path_factory.mktemp("web")
    settings = secure_settings(
        data,
        http={"address": "127.0.0.1:0", "cors_allowed_origins": "https://app.example.com"},
        audit={"log_file": str(data / "audit.jsonl")},
    )
    running = start_server(settings, embedder)
    yield running
    running.stop()


@pytest.fixture
def admin(web: RunningServer) -> Http:
    return Http(web, BOOTSTRAP)
