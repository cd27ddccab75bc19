"""Golden tests: the same cases through the Python and the Node SDK.

- Each SDK's canonical transcript must equal the golden file (written by
  `python tests/golden/regenerate.py` from the Python runner; CI never
  regenerates).
- Wire parity: for every case, the requests the two SDKs sent (recorded by a
  server interceptor, as canonical proto-JSON) must be identical, which
  catches a parameter one SDK drops or defaults differently.
- Surface parity: every RPC has a method in both SDKs, with the same option
  names up to snake_case/camelCase.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from harness import (
    ROOT,
    canonical_transcripts,
    canonical_wire,
    dump,
    expected_path,
    run_node,
    run_python,
    start_server,
    topics,
)

from mnemo import MnemoClient
from mnemo.v1 import admin_service_pb2, extraction_service_pb2, memory_service_pb2

TOPICS = topics()

#: The SDK method of every RPC. A new RPC must be added here, and to both SDKs.
METHODS = {
    "CreateMemory": "create",
    "GetMemory": "get",
    "UpdateMemory": "update",
    "DeleteMemory": "delete",
    "ListMemories": "list",
    "SearchMemories": "search",
    "BatchSearchMemories": "batch_search",
    "StreamSearchMemories": "stream_search",
    "BatchWriteMemories": "batch_write",
    "ImportMemories": "import_memories",
    "ExportMemories": "export",
    "DeleteMemories": "delete_memories",
    "GetMemoryHistory": "history",
    "WatchMemories": "watch",
    "GetStats": "get_stats",
    "CheckConsistency": "check_consistency",
    "CreateSnapshot": "create_snapshot",
    "ReembedMemories": "reembed",
    "CreateApiKey": "create_api_key",
    "ListApiKeys": "list_api_keys",
    "RevokeApiKey": "revoke_api_key",
    "ExtractMemories": "extract",
    "GetOperation": "get_operation",
    "ListOperations": "list_operations",
}
#: Per-call options of the Node SDK that Python spells as `timeout=` (or client-wide metadata).
NODE_CALL_OPTIONS = {"timeoutMs", "signal", "headers"}


def camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


@pytest.fixture(scope="session")
def runs() -> Iterator[dict[str, dict[str, Any]]]:
    """Both SDKs through every case, each against a fresh server."""
    from mnemo_server.app import build_embedder
    from mnemo_server.config import load_settings

    embedder = build_embedder(load_settings(env={}))
    cases = [case for topic in TOPICS.values() for case in topic]
    out: dict[str, dict[str, Any]] = {}
    try:
        for sdk, run in (("python", run_python), ("node", run_node)):
            server = start_server(embedder)
            try:
                out[sdk] = {
                    "transcripts": canonical_transcripts(run(cases, server.address)),
                    "wire": canonical_wire(server.recorder),
                }
            finally:
                server.stop()
        yield out
    finally:
        embedder.close()


@pytest.mark.parametrize("sdk", ["python", "node"])
@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_transcripts_match_the_golden_file(runs: dict[str, Any], sdk: str, topic: str) -> None:
    expected = json.loads(expected_path(topic).read_text())
    got = {case["name"]: runs[sdk]["transcripts"][case["name"]] for case in TOPICS[topic]}
    assert set(got) == set(expected), "cases and golden file disagree: regenerate"
    for name in expected:
        assert dump(got[name]) == dump(expected[name]), f"{sdk} differs from the golden file in case {name}"


@pytest.mark.parametrize("case", [c["name"] for t in TOPICS.values() for c in t])
def test_both_sdks_send_identical_requests(runs: dict[str, Any], case: str) -> None:
    python, node = runs["python"]["wire"].get(case), runs["node"]["wire"].get(case)
    assert python, f"no request recorded for {case}"
    assert dump(node) == dump(python)


@functools.cache
def node_surface() -> dict[str, dict[str, list[str]]]:
    done = subprocess.run(
        ["node", str(ROOT / "tests/golden/node_surface.mjs")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_every_rpc_has_a_method_in_both_sdks() -> None:
    rpcs = {
        m.name
        for module, name in (
            (memory_service_pb2, "MemoryService"),
            (admin_service_pb2, "AdminService"),
            (extraction_service_pb2, "ExtractionService"),
        )
        for m in module.DESCRIPTOR.services_by_name[name].methods
    }
    assert rpcs == set(METHODS), "an RPC without an SDK method (or a stale entry in METHODS)"
    node = node_surface()
    for rpc, method in METHODS.items():
        assert callable(getattr(MnemoClient, method, None)), f"Python SDK lacks {method} for {rpc}"
        assert camel(method) in node, f"Node SDK lacks {camel(method)} for {rpc}"


def python_options(method: str) -> tuple[list[str], set[str]]:
    signature = inspect.signature(getattr(MnemoClient, method))
    params = [p for p in signature.parameters.values() if p.name != "self"]
    positional = [p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    options = {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY} - {"timeout"}
    return positional, options


@pytest.mark.parametrize(
    "method",
    sorted(
        {m for m in dir(MnemoClient) if not m.startswith("_")}
        - {"stub", "admin_stub", "extraction_stub", "channel", "address"}
    ),
)
def test_option_names_match_up_to_case(method: str) -> None:
    node = node_surface()
    assert camel(method) in node, f"Node SDK lacks {camel(method)}"
    if not callable(getattr(MnemoClient, method)):
        return
    positional, options = python_options(method)
    node_method = node[camel(method)]
    assert [camel(p) for p in positional] == node_method["params"][: len(positional)], "positional arguments"
    assert {camel(o) for o in options} == set(node_method["options"]) - NODE_CALL_OPTIONS
