"""No drift between the MCP tools and the contract: every tool parameter is a request
field of its RPC, the SDK call sets exactly that field, and schemas and descriptions
come from the descriptors and their comments."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from mnemo import _requests
from mnemo.aio import AsyncMnemoClient
from mnemo.mcp import schema
from mnemo.mcp.schema import Param
from mnemo.mcp.tools import TOOLS, Scope

# What the SDK's request builder of each RPC is called.
BUILDERS = {
    "CreateMemory": _requests.create_memory,
    "SearchMemories": _requests.search_memories,
    "ListMemories": _requests.list_memories,
    "GetMemory": _requests.get_memory,
    "UpdateMemory": _requests.update_memory,
    "DeleteMemory": _requests.delete_memory,
    "GetMemoryHistory": _requests.get_memory_history,
    "DeleteMemories": _requests.delete_memories,
}

# A value of each JSON Schema type that the server would accept.
SAMPLES: dict[str, Any] = {
    "string": "x1",
    "integer": 7,
    "number": 12.5,
    "boolean": True,
    "object": {"topic": "tea"},
}

# Arguments the builders need besides the one under test.
BASE: dict[str, dict[str, Any]] = {
    "CreateMemory": {"content": "base"},
    "SearchMemories": {"query": "base"},
    "GetMemory": {"id": "m1"},
    "UpdateMemory": {"id": "m1"},
    "DeleteMemory": {"id": "m1"},
    "GetMemoryHistory": {"id": "m1"},
}


def sample(prop: dict[str, Any]) -> Any:
    if "enum" in prop:
        return prop["enum"][-1]
    if prop["type"] == "array":
        return [sample(prop["items"])]
    return SAMPLES[prop["type"]]


def field_at(message: Any, path: str) -> tuple[Any, str]:
    *parents, leaf = path.split(".")
    for part in parents:
        message = getattr(message, part)
    return message, leaf


def is_set(message: Any, path: str) -> bool:
    parent, leaf = field_at(message, path)
    field = parent.DESCRIPTOR.fields_by_name[leaf]
    if field.is_repeated:
        return len(getattr(parent, leaf)) > 0
    if field.message_type is not None or field.has_presence:
        return bool(parent.HasField(leaf))
    return bool(getattr(parent, leaf) != field.default_value)


CASES = [(tool, p) for tool in TOOLS for p in tool.params]


@pytest.mark.parametrize(("tool", "param"), CASES, ids=[f"{t.name}.{p.name}" for t, p in CASES])
def test_each_parameter_sets_its_request_field_through_the_sdk(tool: Any, param: Param) -> None:
    prop = tool.schema(Scope())["properties"][param.name]
    value = sample(prop)
    request = BUILDERS[tool.rpc](**{**BASE.get(tool.rpc, {}), param.name: value})
    assert request.DESCRIPTOR is schema.request_type(tool.rpc)
    assert is_set(request, param.path), f"{tool.name}({param.name}=...) does not set {param.path}"


@pytest.mark.parametrize("tool", TOOLS, ids=[t.name for t in TOOLS])
def test_each_parameter_is_a_keyword_of_the_sdk_method(tool: Any) -> None:
    accepted = inspect.signature(getattr(AsyncMnemoClient, tool.sdk)).parameters
    for p in tool.params:
        assert p.name in accepted, f"AsyncMnemoClient.{tool.sdk} takes no {p.name!r}"
    builder = inspect.signature(BUILDERS[tool.rpc]).parameters
    for p in tool.params:
        assert p.name in builder, f"{BUILDERS[tool.rpc].__name__} takes no {p.name!r}"


def test_a_renamed_or_removed_field_fails_loudly() -> None:
    with pytest.raises(KeyError, match="top_kk"):
        Param("top_k", "top_kk").schema("SearchMemories")
    with pytest.raises(KeyError, match="memoryy"):
        Param("content", "memoryy.content").schema("CreateMemory")


def test_every_tool_rpc_exists_and_every_field_has_a_comment() -> None:
    for tool in TOOLS:
        assert tool.rpc in schema.SERVICE.methods_by_name
        assert schema.rpc_summary(tool.rpc), tool.rpc
        for p in tool.params:
            field = schema.resolve(schema.request_type(tool.rpc), p.path)
            assert schema.comments()[field.full_name], field.full_name


def test_descriptions_are_the_proto_comments() -> None:
    search = next(t for t in TOOLS if t.name == "search_memories")
    props = search.schema(Scope())["properties"]
    assert props["top_k"]["description"] == "The number of hits to return, 1 to 1000; 0 means 10."
    assert props["top_k"]["type"] == "integer"
    assert search.description(Scope()).startswith("Finds the memories closest in meaning")
    assert "Errors:" not in search.description(Scope())
    add = next(t for t in TOOLS if t.name == "add_memory")
    kind = add.schema(Scope())["properties"]["kind"]
    assert kind["enum"] == ["episodic", "semantic", "procedural"]
    assert "A fact or preference" in kind["description"]


def test_search_takes_the_retrieval_modes() -> None:
    search = next(t for t in TOOLS if t.name == "search_memories")
    props = search.schema(Scope())["properties"]
    assert props["mode"]["type"] == "string"
    assert props["mode"]["enum"] == ["vector", "keyword", "hybrid"]
    assert "reciprocal rank fusion" in props["mode"]["description"]
    assert props["rrf_k"]["type"] == "integer"
    assert "Must lie in [1, 10000]" in props["rrf_k"]["description"]
    assert "mode" not in search.schema(Scope())["required"]
    request = _requests.search_memories("x", mode="hybrid", rrf_k=5)
    assert request.mode == 3 and request.rrf_k == 5


def test_a_fixed_scope_is_no_parameter() -> None:
    fixed = Scope(user_id="alice", agent_id="bot")
    for tool in TOOLS:
        props = tool.schema(fixed)["properties"]
        assert "user_id" not in props and "agent_id" not in props, tool.name
        assert tool.schema(fixed)["additionalProperties"] is False
    search = next(t for t in TOOLS if t.name == "search_memories")
    assert "run_id" in search.schema(fixed)["properties"]
    assert "user_id" in search.schema(Scope())["properties"]


def test_the_comment_set_is_generated_from_every_file() -> None:
    names = schema.comments()
    assert "mnemo.v1.Memory.content" in names
    assert "mnemo.v1.MemoryService.DeleteMemories" in names
    assert "mnemo.v1.MemoryKind.MEMORY_KIND_SEMANTIC" in names
    assert "mnemo.v1.AdminService.CreateApiKey" in names
