"""The MCP tools: which RPC each calls, which request fields it exposes, and how it runs.

Each tool names its RPC and its parameters as request field paths; the input
schema and description are generated from the descriptors (see `schema`). A
parameter's name is also the keyword of the `AsyncMnemoClient` method the tool
calls, so a call is the SDK call with the arguments as given.

A scope fixed by configuration (user, agent, run) is never a parameter: it is
added to every call, and a memory named by id is read first and reported as
not found unless it lies inside that scope.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from mnemo import types
from mnemo.aio import AsyncMnemoClient
from mnemo.errors import MnemoError
from mnemo.mcp import results
from mnemo.mcp.schema import Param, input_schema, rpc_summary

SCOPE_KEYS = ("user_id", "agent_id", "run_id")
CONFIRM_TTL_S = 600.0
FILTER_HINT = (
    'Filter examples: tags:"preference" AND kind = SEMANTIC; metadata.topic = "food" OR '
    'metadata.topic = "travel"; create_time >= "2026-01-01T00:00:00Z"; NOT pinned = true.'
)


def _scope(prefix: str) -> tuple[Param, ...]:
    return tuple(Param(k, f"{prefix}.{k}", scope=True) for k in SCOPE_KEYS)


@dataclass(frozen=True, slots=True)
class Scope:
    """The part of the scope fixed by configuration; empty fields are the model's to choose."""

    user_id: str = ""
    agent_id: str = ""
    run_id: str = ""

    def fixed(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in SCOPE_KEYS if getattr(self, k)}

    def describe(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.fixed().items())


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool.

    Attributes:
        name: The tool's name.
        rpc: The MemoryService RPC whose request the parameters are fields of.
        sdk: The `AsyncMnemoClient` method that sends it.
        params: The parameters, each a request field.
        shape: Turns the SDK's result into the tool's JSON.
        note: What the tool adds to the RPC's comment, for the model.
        by_id: The memory is named by `id`: check it lies in the fixed scope first.
        read_only: The tool changes nothing.
    """

    name: str
    rpc: str
    sdk: str
    params: tuple[Param, ...]
    shape: Callable[[Any, Mapping[str, Any]], dict[str, Any]]
    note: str = ""
    by_id: bool = False
    read_only: bool = False
    extra: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    def visible(self, scope: Scope) -> tuple[Param, ...]:
        """The parameters a model sees: the fixed scope fields are not among them."""
        fixed = scope.fixed()
        return tuple(p for p in self.params if not (p.scope and p.name in fixed))

    def schema(self, scope: Scope) -> dict[str, Any]:
        return input_schema(self.rpc, self.visible(scope), extra=dict(self.extra))

    def description(self, scope: Scope) -> str:
        text = rpc_summary(self.rpc)
        if self.note:
            text = f"{text} {self.note}"
        if any(p.name == "filter" for p in self.params):
            text = f"{text} {FILTER_HINT}"
        if scope.fixed() and (self.by_id or any(p.scope for p in self.params)):
            text = f"{text} Confined to {scope.describe()}."
        return text


MEMORY_SCOPE = _scope("memory")
REQUEST_SCOPE = _scope("scope")

CONFIRM = {
    "confirm_token": {
        "type": "string",
        "description": (
            "The confirm_token of a dry run with the same scope and filter, made within the last "
            f"{int(CONFIRM_TTL_S // 60)} minutes. Without it nothing is deleted: the call is a dry run "
            "that reports what would be deleted and returns a token."
        ),
    }
}

TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "add_memory",
        "CreateMemory",
        "create",
        (
            Param("content", "memory.content", required=True),
            Param("kind", "memory.kind"),
            Param("tags", "memory.tags"),
            Param("metadata", "memory.metadata"),
            Param("pinned", "memory.pinned"),
            Param("ttl", "ttl"),
            Param("dedup", "dedup.mode"),
            *MEMORY_SCOPE,
        ),
        lambda r, _: results.created(r),
        note="Store one self-contained fact, preference, event or instruction per memory.",
    ),
    ToolSpec(
        "search_memories",
        "SearchMemories",
        "search",
        (
            Param("query", "query", required=True),
            Param("filter", "filter"),
            Param("top_k", "top_k"),
            Param("min_score", "min_score"),
            Param("mode", "mode"),
            Param("rrf_k", "rrf_k"),
            Param("recency_half_life_seconds", "recency_half_life_seconds"),
            Param("recency_basis", "recency_basis"),
            Param("recency_weight", "recency_weight"),
            Param("importance_key", "importance_key"),
            Param("importance_weight", "importance_weight"),
            Param("pin_boost", "pin_boost"),
            Param("rerank", "rerank"),
            *REQUEST_SCOPE,
        ),
        lambda r, _: results.search(r),
        note=(
            "Hits come best first with their `score`: cosine similarity in vector mode, BM25 in "
            "keyword mode, the fused rank score in hybrid mode. Use keyword for identifiers, "
            "numbers, names and dates; hybrid when unsure. To rank recent memories first give "
            "recency_half_life_seconds (604800 for a week); importance_key and pin_boost "
            "favour memories marked important or pinned."
        ),
        read_only=True,
    ),
    ToolSpec(
        "list_memories",
        "ListMemories",
        "list",
        (
            Param("filter", "filter"),
            Param("order_by", "order_by"),
            Param("page_size", "page_size"),
            Param("page_token", "page_token"),
            *REQUEST_SCOPE,
        ),
        lambda r, _: results.page(r),
        read_only=True,
    ),
    ToolSpec(
        "get_memory",
        "GetMemory",
        "get",
        (Param("id", "id", required=True),),
        lambda r, _: {"memory": results.memory(r)},
        by_id=True,
        read_only=True,
    ),
    ToolSpec(
        "update_memory",
        "UpdateMemory",
        "update",
        (
            Param("id", "memory.id", required=True),
            Param("content", "memory.content"),
            Param("kind", "memory.kind"),
            Param("tags", "memory.tags"),
            Param("metadata", "memory.metadata"),
            Param("pinned", "memory.pinned"),
            Param("ttl", "ttl"),
            Param("etag", "etag"),
        ),
        lambda r, _: {"memory": results.memory(r)},
        note="Only the fields given change; tags and metadata given replace the old ones.",
        by_id=True,
    ),
    ToolSpec(
        "delete_memory",
        "DeleteMemory",
        "delete",
        (Param("id", "id", required=True), Param("etag", "etag")),
        lambda r, args: results.deleted(args["id"], r),
        by_id=True,
    ),
    ToolSpec(
        "get_memory_history",
        "GetMemoryHistory",
        "history",
        (
            Param("id", "id", required=True),
            Param("page_size", "page_size"),
            Param("page_token", "page_token"),
        ),
        lambda r, _: results.history(r),
        by_id=True,
        read_only=True,
    ),
    ToolSpec(
        "forget_memories",
        "DeleteMemories",
        "delete_memories",
        (Param("filter", "filter"), *REQUEST_SCOPE),
        lambda r, _: {},  # forget() shapes its own result
        note=(
            "Two steps: call it without confirm_token for a dry run that reports how many and which "
            "memories would go and returns a confirm_token; then call it again with the same arguments "
            "and that token to delete them."
        ),
        extra=CONFIRM,
    ),
)

BY_NAME = {t.name: t for t in TOOLS}

ClientFor = Callable[[], Awaitable[AsyncMnemoClient]]


class ToolError(Exception):
    """A call refused before or instead of reaching the server; carries the tool's JSON."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(payload["error"]["message"])
        self.payload = payload


class Tools:
    """Runs tool calls against a Mnemo server, inside a fixed scope.

    Args:
        scope: The fixed part of the scope.
        address: The server address, for error messages.
        secret: The key of the forget tool's confirm tokens (random when not given).
    """

    def __init__(
        self, scope: Scope, *, address: str, secret: bytes | None = None, extraction: bool = False
    ) -> None:
        from mnemo.mcp.conversation import CONVERSATION

        self.scope = scope
        self.address = address
        self._secret = secret or secrets.token_bytes(32)
        #: add_conversation, when the server has an extraction LLM (conversation.available).
        self._specs: tuple[Any, ...] = (*TOOLS, CONVERSATION) if extraction else TOOLS
        self._by_name = {t.name: t for t in self._specs}
        self._validators = {t.name: jsonschema.Draft202012Validator(t.schema(scope)) for t in self._specs}

    def specs(self) -> tuple[ToolSpec, ...]:
        return self._specs

    async def call(
        self, name: str, arguments: Mapping[str, Any] | None, client_for: ClientFor, *, key_id: str = ""
    ) -> dict[str, Any]:
        """Runs one tool; returns its JSON. Raises ToolError with the JSON of a failure."""
        spec = self._by_name.get(name)
        if spec is None:
            raise ToolError(
                results.usage("UNKNOWN_TOOL", f"no tool {name!r}; the tools are {', '.join(self._by_name)}")
            )
        args = dict(arguments or {})
        problems = sorted(self._validators[name].iter_errors(args), key=lambda e: list(e.path))
        if problems:
            raise ToolError(results.usage("INVALID_ARGUMENT", "; ".join(_explain(e) for e in problems)))
        try:
            client = await client_for()
            if spec.by_id and self.scope.fixed():
                memory = await self._in_scope(client, args["id"])
                if spec.sdk == "get":  # the check has read it already
                    return spec.shape(memory, args)
            if name == "forget_memories":
                return await self._forget(client, args, key_id)
            kwargs = {**args, **self._fixed_for(spec)}
            if spec.sdk == "extract":
                kwargs["wait"] = True  # the model wants what was remembered, not a job id
            result = await getattr(client, spec.sdk)(**kwargs)
            return spec.shape(result, args)
        except MnemoError as exc:
            raise ToolError(results.error(exc, self.address)) from None
        except (ValueError, TypeError) as exc:  # the SDK refused the arguments before sending
            raise ToolError(results.usage("INVALID_ARGUMENT", str(exc))) from None

    def _fixed_for(self, spec: ToolSpec) -> dict[str, str]:
        return self.scope.fixed() if any(p.scope for p in spec.params) else {}

    async def _in_scope(self, client: AsyncMnemoClient, id: str) -> types.Memory:
        """The memory, read to check it lies inside the fixed scope (immutable after create)."""
        memory = await client.get(id)
        if any(getattr(memory, k) != v for k, v in self.scope.fixed().items()):
            raise ToolError(
                {
                    "error": {
                        "code": "NOT_FOUND",
                        "reason": "MEMORY_NOT_FOUND",
                        "message": f"no memory {id!r} in {self.scope.describe()}",
                    }
                }
            )
        return memory

    async def _forget(self, client: AsyncMnemoClient, args: dict[str, Any], key_id: str) -> dict[str, Any]:
        token = args.pop("confirm_token", None)
        kwargs = {**args, **self.scope.fixed()}
        if token is None:
            result = await client.delete_memories(**kwargs, dry_run=True)
            return {
                "dry_run": True,
                "would_delete": result.deleted_count,
                "memory_ids": list(result.memory_ids[:20]),
                "confirm_token": self._token(kwargs, key_id, time.time()),
                "confirm_within_seconds": int(CONFIRM_TTL_S),
            }
        if not self._token_valid(token, kwargs, key_id):
            raise ToolError(
                results.usage(
                    "CONFIRM_TOKEN_INVALID",
                    "confirm_token is not from a recent dry run with these arguments; "
                    "call forget_memories without it first",
                )
            )
        result = await client.delete_memories(**kwargs)
        return {"deleted": result.deleted_count, "memory_ids": list(result.memory_ids[:20])}

    def _token(self, kwargs: Mapping[str, Any], key_id: str, issued: float) -> str:
        stamp = str(int(issued))
        body = json.dumps([kwargs, key_id, stamp], sort_keys=True).encode()
        return f"{stamp}.{hmac.new(self._secret, body, hashlib.sha256).hexdigest()[:32]}"

    def _token_valid(self, token: str, kwargs: Mapping[str, Any], key_id: str) -> bool:
        stamp, _, _ = token.partition(".")
        if not stamp.isdigit() or time.time() - int(stamp) > CONFIRM_TTL_S:
            return False
        return hmac.compare_digest(token, self._token(kwargs, key_id, int(stamp)))


def _explain(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.path)
    return f"{where}: {error.message}" if where else error.message
