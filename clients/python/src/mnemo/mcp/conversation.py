"""`add_conversation`: the MCP tool of ExtractionService.ExtractMemories, offered
only when the server has an extraction LLM configured (`available` asks it).

Its schema is made from the same descriptors and comments as the other tools'
(the messages are objects, which `schema.field_schema` does not cover); a fixed
scope is added to every call, and the call waits for the job's outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from google.protobuf.descriptor import Descriptor

from mnemo._core import extraction
from mnemo.aio import AsyncMnemoClient
from mnemo.errors import MnemoError
from mnemo.mcp import results
from mnemo.mcp.schema import Param, comment, field_schema, resolve
from mnemo.v1 import extraction_service_pb2 as pb

SCOPE_KEYS = ("user_id", "agent_id", "run_id")
_SERVICE = pb.DESCRIPTOR.services_by_name["ExtractionService"]
_REQUEST: Descriptor = _SERVICE.methods_by_name["ExtractMemories"].input_type
_MESSAGE = pb.ConversationMessage.DESCRIPTOR


class ConversationTool:
    """Duck-typed like tools.ToolSpec (name, params, schema, description, sdk, shape)."""

    name = "add_conversation"
    rpc = "ExtractMemories"
    sdk = "extract"
    by_id = False
    read_only = False
    params = tuple(Param(k, f"scope.{k}", scope=True) for k in SCOPE_KEYS)

    def visible(self, scope: Any) -> tuple[Param, ...]:
        fixed = scope.fixed()
        return tuple(p for p in self.params if p.name not in fixed)

    def schema(self, scope: Any) -> dict[str, Any]:
        role = {
            "type": "string",
            "enum": ["user", "assistant", "system"],
            "description": comment(f"{_MESSAGE.full_name}.role"),
        }
        message = {
            "type": "object",
            "properties": {
                "role": role,
                "content": {"type": "string", "description": comment(f"{_MESSAGE.full_name}.content")},
                "name": {"type": "string", "description": comment(f"{_MESSAGE.full_name}.name")},
            },
            "required": ["role", "content"],
            "additionalProperties": False,
        }
        properties: dict[str, Any] = {
            "messages": {
                "type": "array",
                "items": message,
                "minItems": 1,
                "description": comment(f"{_REQUEST.full_name}.messages"),
            },
            "mode": field_schema(resolve(_REQUEST, "mode")),
            "metadata": field_schema(resolve(_REQUEST, "metadata")),
        }
        for p in self.visible(scope):
            properties[p.name] = {"type": "string", "description": comment(f"mnemo.v1.Scope.{p.name}")}
        return {
            "type": "object",
            "properties": properties,
            "required": ["messages"],
            "additionalProperties": False,
        }

    def description(self, scope: Any) -> str:
        text = comment(f"{_SERVICE.full_name}.{self.rpc}").split(" Errors:", 1)[0].strip()
        text = (
            f"{text} Hand over a conversation (or its latest turns) and the server's LLM extracts the "
            "facts worth remembering and stores them; the result lists what each fact did."
        )
        if scope.fixed():
            text = f"{text} Confined to {scope.describe()}."
        return text

    def shape(self, op: extraction.Operation, args: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"operation": op.id, "state": op.state.value.lower()}
        if op.error_reason:
            out["error"] = {"reason": op.error_reason, "message": op.error_message}
        out["facts"] = [
            {
                "event": f.event.value.lower(),
                "text": f.text,
                **({"memory": results.memory(f.memory)} if f.memory is not None else {}),
            }
            for f in op.facts
        ]
        return out


CONVERSATION = ConversationTool()


async def available(connect: Callable[[str | None], AsyncMnemoClient]) -> bool:
    """Whether the server extracts: an empty conversation is refused as invalid
    (nothing is stored) by a server with an LLM, as not configured by one without."""
    client = connect(None)
    try:
        await client.extract([], user_id="mcp-probe", timeout=5)
    except MnemoError as exc:
        return exc.reason == "CONVERSATION_INVALID"
    finally:
        await client.close()
    return False
