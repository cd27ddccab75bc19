"""Every RPC as JSON over HTTP (the Connect protocol), served by the gRPC
servicers: the same keys, tenants, errors and limits, over a real HTTP client."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from ..conftest import RunningServer, make_settings, start_server
from ..security.conftest import new_key, secure_settings, tenant_name
from .conftest import Http, connect_error, envelope, error_parts, split_envelopes


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def writer(web: RunningServer, tenant: str | None = None) -> Http:
    return Http(web, new_key(web, "writer", tenant=tenant or tenant_name()).secret)


def test_create_get_update_list_search_and_delete_over_json(web: RunningServer) -> None:
    http, alice = writer(web), user()
    created = http.call(
        "CreateMemory", {"memory": {"user_id": alice, "content": "Alice drinks green tea every morning"}}
    )["memory"]
    assert created["userId"] == alice and created["etag"] and created["version"] == "1"
    got = http.call("GetMemory", {"id": created["id"]})["memory"]
    assert got["content"] == created["content"]

    update = {"memory": {"id": created["id"], "content": "Alice drinks oolong tea"}, "updateMask": "content"}
    updated = http.call("UpdateMemory", {**update, "etag": created["etag"]})["memory"]
    assert updated["version"] == "2" and updated["etag"] != created["etag"]
    stale = http.post("UpdateMemory", {**update, "etag": created["etag"]})
    assert stale.status_code == 400
    assert connect_error(stale)[:2] == ("failed_precondition", "ETAG_MISMATCH")

    listed = http.call("ListMemories", {"scope": {"user_id": alice}})
    assert [x["id"] for x in listed["memories"]] == [created["id"]]
    hits = http.call("SearchMemories", {"scope": {"user_id": alice}, "query": "what tea", "top_k": 3})["hits"]
    assert hits[0]["memory"]["id"] == created["id"] and hits[0]["score"] > 0

    assert http.call("DeleteMemory", {"id": created["id"]})["revision"]
    gone = http.post("GetMemory", {"id": created["id"]})
    assert gone.status_code == 404
    assert connect_error(gone)[:2] == ("not_found", "MEMORY_NOT_FOUND")


def test_admin_rpcs_answer_over_json_to_an_admin_key(web: RunningServer, admin: Http) -> None:
    stats = admin.call("GetStats", {}, service="AdminService")
    assert stats["embeddingModel"] and stats["dimension"] == 384
    refused = writer(web).post("GetStats", {}, service="AdminService")
    assert refused.status_code == 403
    assert connect_error(refused)[:2] == ("permission_denied", "ROLE_FORBIDDEN")


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "API_KEY_MISSING"),
        ("Bearer mnemo_nosuchkey_wrong", "API_KEY_INVALID"),
        ("Basic abc", "API_KEY_MISSING"),
    ],
)
def test_a_call_without_a_valid_key_is_refused_with_401(
    web: RunningServer, authorization: str | None, reason: str
) -> None:
    headers = {"content-type": "application/json"}
    if authorization is not None:
        headers["authorization"] = authorization
    url = f"http://127.0.0.1:{web.app.http_port}/mnemo.v1.MemoryService/ListMemories"
    response = httpx.post(url, json={"scope": {"user_id": "u"}}, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    code, got, _, _ = connect_error(response)
    assert (code, got) == ("unauthenticated", reason)


def test_another_tenants_memory_is_invisible(web: RunningServer) -> None:
    mine, theirs, alice = writer(web), writer(web), user()
    created = mine.call("CreateMemory", {"memory": {"user_id": alice, "content": "my secret plan"}})["memory"]
    hidden = theirs.post("GetMemory", {"id": created["id"]})
    assert hidden.status_code == 404 and connect_error(hidden)[1] == "MEMORY_NOT_FOUND"
    assert theirs.call("ListMemories", {"scope": {"user_id": alice}}).get("memories", []) == []
    found = theirs.call("SearchMemories", {"scope": {"user_id": alice}, "query": "secret plan"})
    assert found.get("hits", []) == []
    assert theirs.post("DeleteMemory", {"id": created["id"]}).status_code == 404
    assert mine.call("GetMemory", {"id": created["id"]})["memory"]["content"] == "my secret plan"


def test_a_bad_argument_is_a_400_with_field_violations(web: RunningServer) -> None:
    http = writer(web)
    response = http.post("CreateMemory", {"memory": {"user_id": user(), "content": ""}})
    assert response.status_code == 400
    code, reason, fields, _ = connect_error(response)
    assert (code, reason, fields) == ("invalid_argument", "CONTENT_EMPTY", ["memory.content"])
    body = response.json()
    assert any(d.get("debug", {}).get("fieldViolations") for d in body["details"])

    page = http.post("ListMemories", {"scope": {"user_id": "u"}, "page_size": -1})
    assert page.status_code == 400 and connect_error(page)[2] == ["page_size"]


def test_malformed_json_and_unknown_fields_are_a_400_not_a_default(web: RunningServer) -> None:
    http = writer(web)
    typo = http.post("SearchMemories", {"scope": {"user_id": "u"}, "query": "x", "topk": 3})
    assert typo.status_code == 400
    assert connect_error(typo)[:2] == ("invalid_argument", "INVALID_ARGUMENT")
    assert "topk" in typo.json()["message"]
    broken = httpx.post(
        f"{http.base}/mnemo.v1.MemoryService/ListMemories", content=b"{not json", headers=http.headers()
    )
    assert broken.status_code == 400 and broken.json()["code"] == "invalid_argument"


def test_unknown_paths_and_media_types(web: RunningServer) -> None:
    http = writer(web)
    assert httpx.post(f"{http.base}/mnemo.v1.MemoryService/NoSuchRpc", json={}).status_code == 404
    assert httpx.get(f"{http.base}/nowhere").status_code == 404
    plain = httpx.post(
        f"{http.base}/mnemo.v1.MemoryService/ListMemories",
        content=b"{}",
        headers={**http.headers(), "content-type": "text/plain"},
    )
    assert plain.status_code == 415


def test_binary_proto_bodies_work_too(web: RunningServer) -> None:
    http, alice = writer(web), user()
    request = pb.CreateMemoryRequest(memory=m.Memory(user_id=alice, content="binary body"))
    response = httpx.post(
        f"{http.base}/mnemo.v1.MemoryService/CreateMemory",
        content=request.SerializeToString(),
        headers={**http.headers(), "content-type": "application/proto"},
    )
    assert response.status_code == 200
    assert pb.CreateMemoryResponse.FromString(response.content).memory.content == "binary body"


def test_export_streams_over_the_connect_framing(web: RunningServer) -> None:
    http, alice = writer(web), user()
    ids = {
        http.call("CreateMemory", {"memory": {"user_id": alice, "content": f"fact {i}"}})["memory"]["id"]
        for i in range(3)
    }
    messages, end = http.stream("ExportMemories", {"scope": {"user_id": alice}, "omit_embeddings": True})
    assert end == {}
    assert "header" in messages[0]
    assert {x["memory"]["id"] for x in messages[1:]} == ids


def test_a_stream_error_ends_the_stream_with_the_connect_error(web: RunningServer) -> None:
    nobody = Http(web, None)
    response = httpx.post(
        f"{nobody.base}/mnemo.v1.MemoryService/ExportMemories",
        content=envelope({"scope": {"user_id": "u"}}),
        headers={"content-type": "application/connect+json"},
    )
    assert response.status_code == 200  # Connect streams report errors in the body
    messages, end = split_envelopes(response.content)
    assert messages == []
    assert error_parts(end["error"])[:2] == ("unauthenticated", "API_KEY_MISSING")


def test_watch_streams_events_as_they_happen(web: RunningServer) -> None:
    http, alice = writer(web), user()
    seen: list[Any] = []

    def watch() -> None:
        body = envelope({"scope": {"user_id": alice}})
        headers = http.headers({"content-type": "application/connect+json", "connect-timeout-ms": "8000"})
        url = f"{http.base}/mnemo.v1.MemoryService/WatchMemories"
        with httpx.stream("POST", url, content=body, headers=headers, timeout=30) as response:
            buffer = b""
            for chunk in response.iter_bytes():
                buffer += chunk
                while len(buffer) >= 5 and len(buffer) >= 5 + int.from_bytes(buffer[1:5], "big"):
                    size = int.from_bytes(buffer[1:5], "big")
                    seen.append((buffer[0], json.loads(buffer[5 : 5 + size])))
                    buffer = buffer[5 + size :]
                    if any(
                        e.get("type") == "EVENT_TYPE_CREATED" for _, x in seen for e in x.get("events", ())
                    ):
                        return

    reader = threading.Thread(target=watch)
    reader.start()
    time.sleep(1.0)
    created = http.call("CreateMemory", {"memory": {"user_id": alice, "content": "watched"}})["memory"]
    reader.join(20)
    assert not reader.is_alive()
    events = [e for flags, x in seen if not flags & 2 for e in x.get("events", ())]
    assert any(e.get("memory", {}).get("id") == created["id"] for e in events), seen


def test_import_streams_from_the_client_over_http_1(web: RunningServer) -> None:
    http, alice = writer(web), user()
    body = b"".join(
        [
            envelope({"header": {"formatVersion": 1}}),
            envelope({"memory": {"id": uuid.uuid4().hex, "userId": alice, "content": "imported one"}}),
            envelope({"memory": {"id": uuid.uuid4().hex, "userId": alice, "content": "imported two"}}),
        ]
    )
    response = httpx.post(
        f"{http.base}/mnemo.v1.MemoryService/ImportMemories",
        content=body,
        headers=http.headers({"content-type": "application/connect+json"}),
        timeout=60,
    )
    assert response.status_code == 200, response.text
    messages, end = split_envelopes(response.content)
    assert end == {} and len(messages) == 1
    listed = http.call("ListMemories", {"scope": {"user_id": alice}})["memories"]
    assert sorted(x["content"] for x in listed) == ["imported one", "imported two"]


def test_the_audit_log_has_the_http_clients_address_and_it_cannot_be_forged(web: RunningServer) -> None:
    http, alice = writer(web), user()
    created = http.call("CreateMemory", {"memory": {"user_id": alice, "content": "audited"}})["memory"]
    # A gRPC caller that sends the forwarding header without the secret is not believed.
    forged = (("authorization", f"Bearer {http.key}"), ("x-mnemo-http-peer", "guess ipv4:6.6.6.6:1"))
    web.memory.DeleteMemory(pb.DeleteMemoryRequest(id=created["id"]), metadata=forged)
    lines = [json.loads(x) for x in Path(web.app.settings.audit.log_file).read_text().splitlines()]
    peers = {x["rpc"]: x["peer"] for x in lines if created["id"] in x.get("target_ids", ())}
    assert peers["MemoryService.CreateMemory"].startswith("ipv4:127.0.0.1")
    assert peers["MemoryService.DeleteMemory"].startswith("ipv4:127.0.0.1")
    assert "6.6.6.6" not in json.dumps(peers)


def test_health_needs_no_key(web: RunningServer) -> None:
    response = httpx.get(f"http://127.0.0.1:{web.app.http_port}/healthz")
    assert response.status_code == 200 and response.json() == {"status": "SERVING"}


def test_cors_allows_only_the_configured_origins_and_never_credentials(web: RunningServer) -> None:
    http = writer(web)
    url = f"{http.base}/mnemo.v1.MemoryService/ListMemories"
    preflight = {"access-control-request-method": "POST", "access-control-request-headers": "authorization"}
    ok = httpx.options(url, headers={"origin": "https://app.example.com", **preflight})
    assert ok.status_code == 204
    assert "authorization" in ok.headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in ok.headers
    refused = httpx.options(url, headers={"origin": "https://evil.example", **preflight})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers

    body = {"scope": {"user_id": "u"}}
    allowed = httpx.post(url, json=body, headers=http.headers({"origin": "https://app.example.com"}))
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "access-control-allow-credentials" not in allowed.headers
    other = httpx.post(url, json=body, headers=http.headers({"origin": "https://evil.example"}))
    assert "access-control-allow-origin" not in other.headers


def test_rate_limits_answer_429_with_retry_info(tmp_path: Path, embedder: Any) -> None:
    settings = secure_settings(
        tmp_path, http={"address": "127.0.0.1:0"}, rate_limit={"requests_per_s": 1, "burst": 2}
    )
    server = start_server(settings, embedder)
    try:
        http = writer(server)
        for _ in range(2):
            http.call("ListMemories", {"scope": {"user_id": "u"}})
        limited = http.post("ListMemories", {"scope": {"user_id": "u"}})
        assert limited.status_code == 429
        code, reason, _, retry = connect_error(limited)
        assert (code, reason) == ("resource_exhausted", "RATE_LIMITED")
        assert retry is not None and 0 < retry.retry_delay.ToTimedelta().total_seconds() <= 2
    finally:
        server.stop()


def test_requests_too_large_are_refused(tmp_path: Path, embedder: Any) -> None:
    limit = 64 * 1024
    settings = secure_settings(tmp_path, http={"address": "127.0.0.1:0"}, server={"max_message_bytes": limit})
    server = start_server(settings, embedder)
    try:
        http = writer(server)
        # Past twice the limit: refused by the HTTP side before it is decoded.
        huge = http.post("CreateMemory", {"memory": {"user_id": "u", "content": "x" * (3 * limit)}})
        assert huge.status_code == 429 and huge.json()["code"] == "resource_exhausted"
        # Within the body limit, but the message is past it: refused by the gRPC server.
        big = http.post("CreateMemory", {"memory": {"user_id": "u", "content": "x" * (limit + 1000)}})
        assert big.status_code == 429 and big.json()["code"] == "resource_exhausted"
        assert http.call("ListMemories", {"scope": {"user_id": "u"}}) == {}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Any:
    """Auth off (loopback), HTTP on: the README's `bash .ci/serve` set-up."""
    settings = make_settings(tmp_path_factory.mktemp("open"), http={"address": "127.0.0.1:0"})
    running = start_server(settings, embedder)
    yield running
    running.stop()


def test_without_keys_only_requests_for_localhost_are_served(open_server: RunningServer) -> None:
    url = f"http://127.0.0.1:{open_server.app.http_port}/mnemo.v1.MemoryService/ListMemories"
    body = {"scope": {"user_id": "u"}}
    assert httpx.post(url, json=body).status_code == 200
    assert (
        httpx.post(url, json=body, headers={"host": f"localhost:{open_server.app.http_port}"}).status_code
        == 200
    )
    rebound = httpx.post(url, json=body, headers={"host": "attacker.example"})
    assert rebound.status_code == 403


def readme_curl_commands(port: int) -> list[str]:
    """The shell commands of the README's curl section, aimed at `port`."""
    text = (Path(__file__).parents[3] / "README.md").read_text()
    section = text.split("## Try it with curl", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [c.replace("localhost:8080", f"localhost:{port}") for c in block.replace("\\\n", " ").splitlines()]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_curl_commands_work(open_server: RunningServer) -> None:
    commands = readme_curl_commands(open_server.app.http_port)
    assert [c.split()[2].rpartition("/")[2] for c in commands] == [
        "CreateMemory",
        "SearchMemories",
        "healthz",
    ]
    outputs = [
        subprocess.run(["bash", "-c", c], capture_output=True, text=True, timeout=60, check=True).stdout
        for c in commands
    ]
    created = json.loads(outputs[0])["memory"]
    hits = json.loads(outputs[1])["hits"]
    assert hits[0]["memory"]["id"] == created["id"]
    assert json.loads(outputs[2]) == {"status": "SERVING"}


def test_grpc_and_http_answer_the_same_search(open_server: RunningServer) -> None:
    alice = user()
    http = Http(open_server, None)
    for text in ("likes hiking", "owns a cat", "works as a nurse"):
        http.call("CreateMemory", {"memory": {"user_id": alice, "content": text}})
    request = pb.SearchMemoriesRequest(query="pets", scope=m.Scope(user_id=alice), top_k=3)
    over_grpc = open_server.memory.SearchMemories(request)
    over_http = http.call("SearchMemories", {"query": "pets", "scope": {"user_id": alice}, "top_k": 3})
    assert [h.memory.id for h in over_grpc.hits] == [h["memory"]["id"] for h in over_http["hits"]]


def test_the_grpc_port_keeps_working_with_http_on(open_server: RunningServer) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        open_server.memory.GetMemory(pb.GetMemoryRequest(id="nope"))
    assert caught.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)


def test_while_draining_health_and_calls_answer_503(open_server: RunningServer) -> None:
    base = f"http://127.0.0.1:{open_server.app.http_port}"
    open_server.app.gate.draining = True
    try:
        assert httpx.get(f"{base}/healthz").status_code == 503
        response = httpx.post(f"{base}/mnemo.v1.MemoryService/ListMemories", json={"scope": {"user_id": "u"}})
        assert response.status_code == 503
        code, reason, _, retry = connect_error(response)
        assert (code, reason) == ("unavailable", "SERVER_DRAINING") and retry is not None
    finally:
        open_server.app.gate.draining = False
    assert httpx.get(f"{base}/healthz").status_code == 200


def test_connections_have_nagle_off() -> None:
    from mnemo_server.api.web import _listen

    sock = _listen("127.0.0.1:0")
    try:
        # asyncio sets TCP_NODELAY on accepted sockets only when their proto is TCP.
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.close()
