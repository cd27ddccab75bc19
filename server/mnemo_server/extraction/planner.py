"""From a conversation to a plan of facts, to WriteOps, to outcomes.

ADDITIVE (mem0 2.x): the scope's memories nearest the conversation are shown
to the LLM with mem0's additive prompt; every memory it extracts is added
(linked to the stored ones it names), except those already stored verbatim.

RECONCILE (classic mem0): mem0's fact prompt extracts facts; the memories
nearest each fact (one search call, one embedding batch) are shown, under
small integer ids as mem0 does, with mem0's update prompt; the LLM answers
ADD, UPDATE, DELETE or NONE for each.

An answer is checked before anything is written: it must be the JSON the
prompt asks for, and every id it names must be one it was shown
(LLM_OUTPUT_INVALID otherwise). The plan then becomes one atomic write
through MemoryService.write: updates and deletes are compare-and-set on the
etag the LLM saw, so a memory changed meanwhile makes the job plan again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from mnemo_server.config import ExtractionSettings
from mnemo_server.errors import MnemoError
from mnemo_server.extraction import llm as prompts
from mnemo_server.extraction.llm import ChatModel, LlmError, quote
from mnemo_server.extraction.types import Event, FactResult, Job, Mode, PlannedFact
from mnemo_server.models import Link, Memory, content_hash
from mnemo_server.service import (
    DedupMode,
    DedupPolicy,
    MemoryDraft,
    MemoryService,
    SearchQuery,
    WriteOp,
    WriteOutcome,
)

#: The relation of the links an additive fact gets to the memories it names.
LINK_RELATION = "related"
_EVENTS = {"ADD": Event.ADDED, "UPDATE": Event.UPDATED, "DELETE": Event.DELETED, "NONE": Event.UNCHANGED}


class Planner:
    def __init__(self, service: MemoryService, model: ChatModel, settings: ExtractionSettings) -> None:
        self.service = service
        self.model = model
        self.settings = settings

    # -- planning (calls the LLM; raises LLM_* errors) ---------------------------

    def plan(self, job: Job) -> list[PlannedFact]:
        if job.spec.mode is Mode.RECONCILE:
            return self._reconcile(job)
        return self._additive(job)

    def _nearest(self, job: Job, texts: Sequence[str]) -> list[Memory]:
        """The scope's stored memories nearest each text, each once, in rank order."""
        limit = self.service.limits.max_content_bytes
        queries = [
            SearchQuery(text=_cut(t, limit), scope=job.spec.scope, top_k=self.settings.candidates)
            for t in texts
            if t.strip()
        ]
        if not queries:
            return []
        seen: dict[str, Memory] = {}
        for result in self.service.search(job.principal, queries):
            for hit in result.hits:
                seen.setdefault(hit.memory.id, hit.memory)
        return list(seen.values())

    def _additive(self, job: Job) -> list[PlannedFact]:
        spec = job.spec
        existing = self._nearest(job, [prompts.conversation_text(spec.messages)])
        shown = {str(i): m for i, m in enumerate(existing)} | {m.id: m for m in existing}
        system, user = prompts.additive_prompts(
            spec.messages,
            [{"id": str(i), "text": m.content} for i, m in enumerate(existing)],
            agent_scoped=bool(spec.scope.agent_id and not spec.scope.user_id),
        )
        items = _list_of(prompts.parse_json(self.model.complete(system, user)), "memory")
        stored = {m.content_hash: m for m in existing}
        plan: list[PlannedFact] = []
        planned: set[str] = set()
        for i, item in enumerate(items):
            text = _text(item, i)
            links = item.get("linked_memory_ids") or []
            if not isinstance(links, list):
                raise LlmError(f"memory[{i}].linked_memory_ids is not a list")
            targets = tuple(
                dict.fromkeys(_shown(shown, str(t), f"memory[{i}].linked_memory_ids").id for t in links)
            )
            digest = content_hash(text)
            if digest in planned:
                continue
            planned.add(digest)
            if digest in stored:
                plan.append(PlannedFact(Event.UNCHANGED, text, stored[digest].id, before=stored[digest]))
            else:
                plan.append(PlannedFact(Event.ADDED, text, uuid.uuid4().hex, links=targets))
        return plan

    def _reconcile(self, job: Job) -> list[PlannedFact]:
        spec = job.spec
        agent = bool(spec.scope.agent_id and not spec.scope.user_id)
        system, user = prompts.fact_prompts(spec.messages, agent_scoped=agent)
        facts = _list_of(prompts.parse_json(self.model.complete(system, user)), "facts")
        if not all(isinstance(f, str) for f in facts):
            raise LlmError("facts must be a list of strings")
        facts = [f.strip() for f in facts if f.strip()]
        if not facts:
            return []
        existing = self._nearest(job, facts)
        shown = {str(i): m for i, m in enumerate(existing)}
        answer = self.model.complete(
            "",
            prompts.update_prompt([{"id": str(i), "text": m.content} for i, m in enumerate(existing)], facts),
        )
        items = _list_of(prompts.parse_json(answer), "memory")
        plan: list[PlannedFact] = []
        touched: set[str] = set()
        added: set[str] = set()
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise LlmError(f"memory[{i}] is not an object")
            event = _EVENTS.get(str(item.get("event", "")).upper())
            if event is None:
                raise LlmError(
                    f"memory[{i}].event is {quote(str(item.get('event')))}, not ADD, UPDATE, DELETE or NONE"
                )
            if event is Event.ADDED:
                text = _text(item, i)
                digest = content_hash(text)
                match = next((m for m in existing if m.content_hash == digest), None)
                if match is not None:
                    plan.append(PlannedFact(Event.UNCHANGED, text, match.id, before=match))
                elif digest not in added:
                    added.add(digest)
                    plan.append(PlannedFact(Event.ADDED, text, uuid.uuid4().hex))
                continue
            target = _shown(shown, str(item.get("id", "")), f"memory[{i}].id")
            if event is not Event.UNCHANGED:
                if target.id in touched:
                    raise LlmError(f"memory[{i}] changes memory {item.get('id')!r} a second time")
                touched.add(target.id)
            given = item.get("text")
            text = given.strip() if isinstance(given, str) else ""
            if event is Event.UPDATED:
                text = _text(item, i)
                if content_hash(text) == target.content_hash:
                    event = Event.UNCHANGED
            plan.append(
                PlannedFact(event, text or target.content, target.id, etag=target.etag, before=target)
            )
        return plan

    # -- writing -----------------------------------------------------------------

    def ops(self, job: Job, plan: Sequence[PlannedFact]) -> list[WriteOp]:
        """The write of a plan: one op per fact that changes something."""
        spec = job.spec
        out: list[WriteOp] = []
        for i, fact in enumerate(plan):
            where = f"facts[{i}]"
            if fact.event is Event.ADDED:
                draft = MemoryDraft(
                    id=fact.memory_id,
                    scope=spec.scope,
                    content=fact.text,
                    metadata=dict(spec.metadata),
                    links=tuple(Link(t, LINK_RELATION, 1.0) for t in fact.links),
                )
                out.append(
                    WriteOp(
                        "create",
                        draft=draft,
                        dedup=DedupPolicy(DedupMode.EXACT),
                        field=where,
                        id_assigned=True,
                    )
                )
            elif fact.event is Event.UPDATED:
                out.append(
                    WriteOp(
                        "update",
                        draft=MemoryDraft(content=fact.text),
                        memory_id=fact.memory_id,
                        update_mask=("content",),
                        etag=fact.etag,
                        field=where,
                    )
                )
            elif fact.event is Event.DELETED:
                out.append(WriteOp("delete", memory_id=fact.memory_id, etag=fact.etag, field=where))
        return out

    @staticmethod
    def results(
        plan: Sequence[PlannedFact], outcomes: Sequence[WriteOutcome]
    ) -> tuple[list[FactResult], int]:
        """Per-fact outcomes of a successful write, and its last revision."""
        pending = iter(outcomes)
        facts: list[FactResult] = []
        for fact in plan:
            if fact.event is Event.UNCHANGED:
                facts.append(FactResult(Event.UNCHANGED, fact.text, fact.before))
                continue
            outcome = next(pending)
            if fact.event is Event.ADDED:
                if outcome.deduplicated:
                    facts.append(FactResult(Event.UNCHANGED, fact.text, outcome.memory))
                else:
                    facts.append(
                        FactResult(
                            Event.ADDED,
                            fact.text,
                            outcome.memory,
                            after=outcome.memory,
                            revision=outcome.revision,
                        )
                    )
            elif fact.event is Event.UPDATED:
                facts.append(
                    FactResult(
                        Event.UPDATED,
                        fact.text,
                        outcome.memory,
                        before=fact.before,
                        after=outcome.memory,
                        revision=outcome.revision,
                    )
                )
            else:
                facts.append(
                    FactResult(
                        Event.DELETED, fact.text, fact.before, before=fact.before, revision=outcome.revision
                    )
                )
        return facts, max((f.revision for f in facts), default=0)


def first_error(outcomes: Sequence[WriteOutcome]) -> MnemoError | None:
    """The error that failed an atomic write (not the BATCH_ABORTED of the rest)."""
    errors = [o.error for o in outcomes if o.error is not None]
    real = [e for e in errors if e.reason != "BATCH_ABORTED"]
    found = real or errors
    return found[0] if found else None


def _list_of(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise LlmError(f"the LLM's answer has no list {key!r}: keys {sorted(data)[:5]}")
    return value


def _text(item: Any, i: int) -> str:
    text = item.get("text") if isinstance(item, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise LlmError(f"memory[{i}].text is missing or empty")
    return text.strip()


def _shown(shown: dict[str, Memory], memory_id: str, where: str) -> Memory:
    found = shown.get(memory_id)
    if found is None:
        raise LlmError(
            f"{where} names memory {quote(memory_id)}, which the LLM was not shown",
            metadata={"id": memory_id[:64]},
        )
    return found


def _cut(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")
