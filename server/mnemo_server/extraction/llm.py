"""The mem0ai adapter: mem0's own prompts and LLM clients, Mnemo's errors.

Nothing here writes a prompt or speaks to a provider: the prompts come from
`mem0.configs.prompts` (and `mem0.memory.utils`), the clients from
`mem0.utils.factory.LlmFactory` (OpenAI and any OpenAI-compatible base URL,
Ollama, LM Studio, vLLM, ...). What this module adds is what a server needs:
a timeout on every call, no hidden retries (the runner retries, visibly),
failures mapped to stable reasons, and strict parsing (an answer that is not
the JSON the prompt asks for is an error, never "no facts").
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from mnemo_server.config import ExtractionSettings
from mnemo_server.errors import DeadlineExceededError, MnemoError, UnavailableError
from mnemo_server.extraction.types import Message

log = logging.getLogger("mnemo.extraction")

#: Longest piece of an LLM's answer or error quoted in an operation's message.
_QUOTE_CHARS = 200


class LlmError(MnemoError):
    """The LLM's answer is unusable (LLM_OUTPUT_INVALID)."""

    default_reason = "LLM_OUTPUT_INVALID"


class ChatModel(Protocol):
    """What the planner needs of an LLM: one system + user prompt in, text out."""

    def complete(self, system: str, user: str) -> str: ...


class Mem0Llm:
    """One mem0ai LLM client, built by its LlmFactory from the settings."""

    def __init__(self, settings: ExtractionSettings, *, data_dir: Path) -> None:
        # mem0 phones home (posthog) and writes ~/.mem0 on import unless told not to.
        os.environ.setdefault("MEM0_TELEMETRY", "false")
        os.environ.setdefault("MEM0_DIR", str(data_dir / "mem0"))
        from mem0.utils.factory import LlmFactory

        provider = settings.provider
        if provider not in LlmFactory.provider_to_class:
            known = ", ".join(sorted(LlmFactory.provider_to_class))
            raise ValueError(f"extraction.provider: unknown provider {provider!r} (mem0ai knows {known})")
        config: dict[str, Any] = {}
        if settings.model:
            config["model"] = settings.model
        key = settings.api_key()
        if key:
            config["api_key"] = key
        if settings.base_url:
            config_class = LlmFactory.provider_to_class[provider][1]
            name = f"{provider.split('_')[0]}_base_url"
            if name not in inspect.signature(config_class).parameters:
                raise ValueError(f"extraction.base_url: mem0ai's {provider} provider takes no base URL")
            config[name] = settings.base_url
        self.provider = provider
        self.timeout_s = settings.timeout_s
        self._llm = LlmFactory.create(provider, config)
        client = getattr(self._llm, "client", None)
        if client is not None and hasattr(client, "with_options"):
            # The OpenAI SDK's own retries would hide failures and multiply the timeout.
            self._llm.client = client.with_options(timeout=settings.timeout_s, max_retries=0)
        self.model = str(getattr(self._llm.config, "model", "") or "")
        log.info(
            "extraction: %s LLM %s%s",
            provider,
            self.model,
            f" at {settings.base_url}" if settings.base_url else "",
        )

    def complete(self, system: str, user: str) -> str:
        try:
            messages = [{"role": "system", "content": system}] if system else []
            answer = self._llm.generate_response(
                messages=[*messages, {"role": "user", "content": user}],
                response_format={"type": "json_object"},
            )
        except Exception as exc:
            raise classify(exc, self.timeout_s) from None
        if isinstance(answer, dict):  # tool-call shaped answers
            answer = answer.get("content") or ""
        return str(answer or "")


def classify(exc: BaseException, timeout_s: float) -> MnemoError:
    """An LLM client's exception as LLM_TIMEOUT or LLM_UNAVAILABLE (retryable)."""
    name = type(exc).__name__
    if "Timeout" in name or isinstance(exc, TimeoutError):
        return DeadlineExceededError(f"the LLM did not answer within {timeout_s:g} s", reason="LLM_TIMEOUT")
    status = getattr(exc, "status_code", None)
    detail = f"HTTP {status}" if status else name
    return UnavailableError(f"the LLM failed: {detail}", reason="LLM_UNAVAILABLE", retry_after_s=1.0)


# -- prompts (mem0's) -----------------------------------------------------------


def conversation_text(messages: Sequence[Message]) -> str:
    """The conversation as mem0 shows it to the LLM (mem0.memory.utils.parse_messages)."""
    from mem0.memory.utils import parse_messages

    return str(parse_messages([{"role": m.role, "content": m.content} for m in messages]))


def observation_date(messages: Sequence[Message]) -> str | None:
    times = [m.time_us for m in messages if m.time_us is not None]
    if not times:
        return None
    return dt.datetime.fromtimestamp(max(times) / 1e6, tz=dt.UTC).date().isoformat()


def additive_prompts(
    messages: Sequence[Message], existing: Sequence[dict[str, str]], *, agent_scoped: bool
) -> tuple[str, str]:
    """mem0 2.x's additive extraction prompt: system and user."""
    from mem0.configs.prompts import (
        ADDITIVE_EXTRACTION_PROMPT,
        AGENT_CONTEXT_SUFFIX,
        generate_additive_extraction_prompt,
    )

    system = ADDITIVE_EXTRACTION_PROMPT + (AGENT_CONTEXT_SUFFIX if agent_scoped else "")
    user = generate_additive_extraction_prompt(
        existing_memories=list(existing),
        new_messages=conversation_text(messages),
        timestamp=observation_date(messages),
    )
    return system, str(user)


def fact_prompts(messages: Sequence[Message], *, agent_scoped: bool) -> tuple[str, str]:
    """mem0's classic fact retrieval prompt (user or agent memory)."""
    from mem0.memory.utils import get_fact_retrieval_messages

    system, user = get_fact_retrieval_messages(conversation_text(messages), agent_scoped)
    return str(system), str(user)


def update_prompt(existing: Sequence[dict[str, str]], facts: Sequence[str]) -> str:
    """mem0's classic ADD/UPDATE/DELETE/NONE prompt (sent as the user message)."""
    from mem0.configs.prompts import get_update_memory_messages

    return str(get_update_memory_messages(list(existing), list(facts)))


# -- answers --------------------------------------------------------------------


def parse_json(answer: str) -> dict[str, Any]:
    """The JSON object of an answer, as mem0 finds it (code fences and
    <think> blocks removed); LLM_OUTPUT_INVALID when there is none."""
    from mem0.memory.utils import extract_json, remove_code_blocks

    text = remove_code_blocks(answer)
    for candidate in (text, extract_json(text)):
        try:
            value = json.loads(candidate, strict=False)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise LlmError(f"the LLM's answer is not a JSON object: {quote(answer)}")


def quote(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= _QUOTE_CHARS else text[:_QUOTE_CHARS] + "...")
