"""ExtractMemories end to end: a real server over gRPC, mem0ai's real prompts
and OpenAI client, the LLM a local OpenAI-compatible fake."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from mnemo.v1 import extraction_service_pb2 as ex
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb

from ..conftest import RunningServer, error_of
from .conftest import Script, extract, rpc_fails, stub, user
from .fake_llm import KEY, Call, FakeLlm, Reply, memories

pytestmark = pytest.mark.timeout(120)


def stored(server: RunningServer, user_id: str) -> list[str]:
    listed = server.memory.ListMemories(pb.ListMemoriesRequest(scope=m.Scope(user_id=user_id), page_size=100))
    return sorted(x.content for x in listed.memories)


def test_additive_extraction_adds_facts_through_the_write_path(
    xserver: RunningServer, script: Script, llm: tuple[FakeLlm, Script]
) -> None:
    alice = user()
    script.reply = lambda call: Reply(memories("Alice is allergic to peanuts", "Alice lives in Lyon"))
    op = extract(xserver, alice, "I can't eat peanuts", "Noted!", "I moved to Lyon", metadata=None)
    assert op.state == ex.OPERATION_STATE_SUCCEEDED, op.error
    assert op.mode == ex.EXTRACTION_MODE_ADDITIVE and op.attempts == 1
    assert [(f.event, f.text) for f in op.result.facts] == [
        (ex.FACT_EVENT_ADDED, "Alice is allergic to peanuts"),
        (ex.FACT_EVENT_ADDED, "Alice lives in Lyon"),
    ]
    for fact in op.result.facts:
        assert fact.memory.id and fact.memory.user_id == alice and fact.after.id == fact.memory.id
        assert fact.revision > 0 and not fact.HasField("before")
    assert op.result.revision == max(f.revision for f in op.result.facts)
    assert stored(xserver, alice) == ["Alice is allergic to peanuts", "Alice lives in Lyon"]
    history = xserver.memory.GetMemoryHistory(pb.GetMemoryHistoryRequest(id=op.result.facts[0].memory.id))
    assert len(history.versions) == 1
    # mem0's own prompt went out, with the conversation, through the configured key.
    [call] = llm[0].calls
    assert call.kind == "additive" and "user: I can't eat peanuts" in call.user
    assert call.authorization == f"Bearer {KEY}" and call.body["model"] == "fake-model"
    assert call.body["response_format"] == {"type": "json_object"}
    # The same facts again: shown to the LLM as existing, nothing written twice.
    op2 = extract(xserver, alice, "I can't eat peanuts")
    assert [f.event for f in op2.result.facts] == [ex.FACT_EVENT_UNCHANGED] * 2
    assert {f.memory.id for f in op2.result.facts} == {f.memory.id for f in op.result.facts}
    assert {e["text"] for e in llm[0].calls[-1].existing()} == set(stored(xserver, alice))
    assert stored(xserver, alice) == ["Alice is allergic to peanuts", "Alice lives in Lyon"]


def test_additive_links_name_only_memories_the_llm_was_shown(xserver: RunningServer, script: Script) -> None:
    bob = user()
    first = xserver.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(user_id=bob, content="Bob plays the cello"))
    ).memory
    script.reply = lambda call: Reply(memories("Bob joined an orchestra", links={0: ["0"]}))
    op = extract(xserver, bob, "I joined an orchestra with my cello")
    assert op.state == ex.OPERATION_STATE_SUCCEEDED, op.error
    [fact] = op.result.facts
    assert [(link.target_id, link.relation) for link in fact.memory.links] == [(first.id, "related")]


def test_reconcile_adds_updates_deletes_and_keeps(
    xserver: RunningServer, script: Script, llm: tuple[FakeLlm, Script]
) -> None:
    carol = user()
    seeded = {}
    for text in ("Carol lives in Paris", "Carol has a cat", "Carol likes tea"):
        created = xserver.memory.CreateMemory(
            pb.CreateMemoryRequest(memory=m.Memory(user_id=carol, content=text))
        )
        seeded[text] = created.memory

    def reply(call: Call) -> Reply:
        if call.kind == "facts":
            return Reply(
                json.dumps({"facts": ["Moved to Berlin", "No longer has a cat", "Likes tea", "Plays chess"]})
            )
        ids = {e["text"]: e["id"] for e in call.existing()}
        return Reply(
            json.dumps(
                {
                    "memory": [
                        {
                            "id": ids["Carol lives in Paris"],
                            "text": "Carol lives in Berlin",
                            "event": "UPDATE",
                            "old_memory": "Carol lives in Paris",
                        },
                        {"id": ids["Carol has a cat"], "text": "Carol has a cat", "event": "DELETE"},
                        {"id": ids["Carol likes tea"], "text": "Carol likes tea", "event": "NONE"},
                        {"id": "9", "text": "Carol plays chess", "event": "ADD"},
                    ]
                }
            )
        )

    script.reply = reply
    op = extract(
        xserver, carol, "I moved to Berlin and gave my cat away; chess now", mode=ex.EXTRACTION_MODE_RECONCILE
    )
    assert op.state == ex.OPERATION_STATE_SUCCEEDED, op.error
    events = [(f.event, f.text) for f in op.result.facts]
    assert events == [
        (ex.FACT_EVENT_UPDATED, "Carol lives in Berlin"),
        (ex.FACT_EVENT_DELETED, "Carol has a cat"),
        (ex.FACT_EVENT_UNCHANGED, "Carol likes tea"),
        (ex.FACT_EVENT_ADDED, "Carol plays chess"),
    ]
    updated, deleted, kept, _added = op.result.facts
    assert (
        updated.before.content == "Carol lives in Paris" and updated.after.content == "Carol lives in Berlin"
    )
    assert updated.memory.id == seeded["Carol lives in Paris"].id and updated.after.version == 2
    assert deleted.before.id == seeded["Carol has a cat"].id and deleted.revision > 0
    assert kept.memory.id == seeded["Carol likes tea"].id and kept.revision == 0
    assert stored(xserver, carol) == ["Carol likes tea", "Carol lives in Berlin", "Carol plays chess"]
    # Both of mem0's classic prompts: facts first, then the update prompt with
    # the nearest stored memories under small integer ids.
    kinds = [c.kind for c in llm[0].calls]
    assert kinds == ["facts", "update"]
    assert sorted(e["id"] for e in llm[0].calls[1].existing()) == ["0", "1", "2"]
    assert "Plays chess" in llm[0].calls[1].facts()


def test_bad_conversations_are_refused_at_once_and_store_nothing(
    xserver: RunningServer, script: Script
) -> None:
    dave = user()
    scope = m.Scope(user_id=dave)
    ok = ex.ConversationMessage(role="user", content="hello")
    cases = {
        "empty": (ex.ExtractMemoriesRequest(scope=scope), "CONVERSATION_INVALID", ["messages"]),
        "role": (
            ex.ExtractMemoriesRequest(
                messages=[ok, ex.ConversationMessage(role="robot", content="x")], scope=scope
            ),
            "CONVERSATION_INVALID",
            ["messages[1].role"],
        ),
        "blank": (
            ex.ExtractMemoriesRequest(
                messages=[ex.ConversationMessage(role="user", content="  ")], scope=scope
            ),
            "CONVERSATION_INVALID",
            ["messages[0].content"],
        ),
        "too many": (
            ex.ExtractMemoriesRequest(messages=[ok] * 101, scope=scope),
            "CONVERSATION_INVALID",
            ["messages"],
        ),
        "too long": (
            ex.ExtractMemoriesRequest(
                messages=[ex.ConversationMessage(role="user", content="x" * 40_000)] * 2, scope=scope
            ),
            "CONVERSATION_INVALID",
            ["messages"],
        ),
        "no scope": (ex.ExtractMemoriesRequest(messages=[ok]), "SCOPE_REQUIRED", ["scope.user_id"]),
        "mode": (
            ex.ExtractMemoriesRequest(messages=[ok], scope=scope, mode=7),
            "INVALID_ENUM_VALUE",
            ["mode"],
        ),  # type: ignore[arg-type]
    }
    for name, (request, reason, fields) in cases.items():
        exc = rpc_fails(lambda r=request: stub(xserver).ExtractMemories(r))
        assert error_of(exc) == (grpc.StatusCode.INVALID_ARGUMENT, reason, fields), name
    listed = stub(xserver).ListOperations(ex.ListOperationsRequest(scope=scope))
    assert list(listed.operations) == [] and stored(xserver, dave) == []


@pytest.mark.parametrize(
    ("name", "reply", "reason"),
    [
        ("down", lambda call: Reply(status=503), "LLM_UNAVAILABLE"),
        ("refuses", lambda call: Reply(status=401), "LLM_UNAVAILABLE"),
        (
            "not json",
            lambda call: Reply("Sure! Here are the memories: Alice likes tea."),
            "LLM_OUTPUT_INVALID",
        ),
        ("wrong shape", lambda call: Reply('{"facts": "tea"}'), "LLM_OUTPUT_INVALID"),
        (
            "unknown id",
            lambda call: Reply(memories("Eve likes tea", links={0: ["42"]})),
            "LLM_OUTPUT_INVALID",
        ),
        ("slow", lambda call: Reply(memories("Eve likes tea"), delay_s=8), "LLM_TIMEOUT"),
    ],
)
def test_each_llm_failure_fails_the_operation_with_its_reason_and_writes_nothing(
    xserver: RunningServer, script: Script, llm: tuple[FakeLlm, Script], name: str, reply: object, reason: str
) -> None:
    eve = user()
    xserver.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(user_id=eve, content="Eve drinks coffee"))
    )
    before = stored(xserver, eve)
    script.reply = reply  # type: ignore[assignment]
    op = extract(xserver, eve, "I like tea now")
    assert op.state == ex.OPERATION_STATE_FAILED, name
    assert op.error.reason == reason and op.error.message and not op.HasField("result")
    assert KEY not in op.error.message
    assert op.attempts == 3  # retries = 2
    assert len(llm[0].calls) == 3
    assert stored(xserver, eve) == before
    again = stub(xserver).GetOperation(ex.GetOperationRequest(id=op.id)).operation
    assert again.state == ex.OPERATION_STATE_FAILED and again.error.reason == reason


def test_reconcile_naming_an_id_it_was_not_shown_fails(xserver: RunningServer, script: Script) -> None:
    frank = user()
    xserver.memory.CreateMemory(
        pb.CreateMemoryRequest(memory=m.Memory(user_id=frank, content="Frank is a chef"))
    )

    def reply(call: Call) -> Reply:
        if call.kind == "facts":
            return Reply('{"facts": ["Is a baker"]}')
        return Reply('{"memory": [{"id": "7", "text": "Frank is a baker", "event": "UPDATE"}]}')

    script.reply = reply
    op = extract(xserver, frank, "I am a baker now", mode=ex.EXTRACTION_MODE_RECONCILE)
    assert (op.state, op.error.reason) == (ex.OPERATION_STATE_FAILED, "LLM_OUTPUT_INVALID")
    assert stored(xserver, frank) == ["Frank is a chef"]


def test_a_hanging_llm_leaves_the_server_responsive_for_others(
    xserver: RunningServer, script: Script
) -> None:
    stuck, other = user(), user()
    release = threading.Event()

    def reply(call: Call) -> Reply:
        if "I am stuck" in call.user:
            return Reply(memories("stuck"), block=release)
        return Reply(memories("Other likes jazz"))

    script.reply = reply
    try:
        hanging = extract(xserver, stuck, "I am stuck", wait=False)
        assert hanging.state in (ex.OPERATION_STATE_PENDING, ex.OPERATION_STATE_RUNNING)
        started = time.monotonic()
        xserver.memory.CreateMemory(
            pb.CreateMemoryRequest(memory=m.Memory(user_id=other, content="plain write"))
        )
        xserver.memory.SearchMemories(pb.SearchMemoriesRequest(query="jazz", scope=m.Scope(user_id=other)))
        op = extract(xserver, other, "I like jazz")
        assert op.state == ex.OPERATION_STATE_SUCCEEDED and time.monotonic() - started < 5
        now = stub(xserver).GetOperation(ex.GetOperationRequest(id=hanging.id)).operation
        assert now.state == ex.OPERATION_STATE_RUNNING
    finally:
        release.set()


def test_one_users_concurrent_conversations_run_in_order_without_duplicates(
    xserver: RunningServer, script: Script, llm: tuple[FakeLlm, Script]
) -> None:
    gina = user()

    def reply(call: Call) -> Reply:
        n = call.user.split("conversation #", 1)[1].split(" ", 1)[0].split("\\", 1)[0]
        return Reply(memories("Gina is vegetarian", f"Gina read book {n}"), delay_s=0.05)

    script.reply = reply
    with ThreadPoolExecutor(8) as pool:
        ops = list(pool.map(lambda i: extract(xserver, gina, f"conversation #{i} vegetarian"), range(8)))
    assert all(op.state == ex.OPERATION_STATE_SUCCEEDED for op in ops), [op.error for op in ops]
    contents = stored(xserver, gina)
    assert len(contents) == len(set(contents)) == 9  # the shared fact once, a book per conversation
    added = [f for op in ops for f in op.result.facts if f.text == "Gina is vegetarian"]
    assert sorted(f.event for f in added) == [ex.FACT_EVENT_ADDED] + [ex.FACT_EVENT_UNCHANGED] * 7
    # The LLM saw the conversations in the order the server accepted them.
    listed = stub(xserver).ListOperations(ex.ListOperationsRequest(scope=m.Scope(user_id=gina)))
    accepted = [op.id for op in reversed(listed.operations)]
    by_id = {op.id: op for op in ops}
    order = [f for f in (by_id[i].result.facts[-1].text for i in accepted)]
    seen = [c.user.split("conversation #", 1)[1][0] for c in llm[0].calls]
    assert [f"Gina read book {n}" for n in seen] == order


def test_jobs_of_a_scope_are_queued_in_the_order_they_were_stored(
    xserver: RunningServer, script: Script, llm: tuple[FakeLlm, Script], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A submit whose store call returns late (the first here) is still queued
    before the one stored after it: storing and queueing are one step."""
    runner = xserver.app.extraction.runner
    assert runner is not None
    create = runner.jobs.create
    first = threading.Event()

    def slow_first_create(job: Any) -> Any:
        result = create(job)
        if not first.is_set():
            first.set()
            time.sleep(0.3)  # the next submit's store call finishes meanwhile, unless it waits
        return result

    monkeypatch.setattr(runner.jobs, "create", slow_first_create)
    ines = user()
    script.reply = lambda call: Reply(memories(f"Ines said {call.user.split('#', 1)[1][0]}"))
    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(extract, xserver, ines, "conversation #1")
        assert first.wait(10)
        two = pool.submit(extract, xserver, ines, "conversation #2")
        ops = [one.result(30), two.result(30)]
    assert all(op.state == ex.OPERATION_STATE_SUCCEEDED for op in ops), [op.error for op in ops]
    seen = [c.user.split("conversation #", 1)[1][0] for c in llm[0].calls]
    assert seen == ["1", "2"]


def test_conversations_of_different_users_run_in_parallel(xserver: RunningServer, script: Script) -> None:
    """Every user's LLM call waits at one barrier for all the others: it is
    passed only if all of them are in flight at once (run one after another,
    the first call's wait breaks the barrier and every call fails)."""
    users = [user() for _ in range(8)]
    barrier = threading.Barrier(len(users))

    def reply(call: Call) -> Reply:
        try:
            barrier.wait(timeout=4)  # under the LLM timeout (5 s)
        except threading.BrokenBarrierError:
            return Reply(status=500)
        return Reply(memories("likes parallel work"))

    script.reply = reply
    with ThreadPoolExecutor(len(users)) as pool:
        ops = list(pool.map(lambda u: extract(xserver, u, "hello"), users))
    assert [op.state for op in ops] == [ex.OPERATION_STATE_SUCCEEDED] * len(users), [op.error for op in ops]
    assert not barrier.broken


def test_request_id_returns_the_first_operation(xserver: RunningServer, script: Script) -> None:
    hana = user()
    script.reply = lambda call: Reply(memories("Hana speaks Japanese"))
    first = extract(xserver, hana, "I speak Japanese", request_id="conv-1")
    again = extract(xserver, hana, "I speak Japanese", request_id="conv-1")
    assert again.id == first.id and again.request_id == "conv-1"
    assert stored(xserver, hana) == ["Hana speaks Japanese"]
    exc = rpc_fails(lambda: extract(xserver, hana, "something else", request_id="conv-1"))
    assert error_of(exc)[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "REQUEST_ID_REUSED")


def test_operations_list_newest_first_page_by_page_and_filter_by_state(
    xserver: RunningServer, script: Script
) -> None:
    ivan = user()
    script.reply = lambda call: Reply(memories(f"fact {len(call.user)}"))
    ids = [extract(xserver, ivan, f"message {'x' * i}").id for i in range(5)]
    script.reply = lambda call: Reply("nope")
    failed = extract(xserver, ivan, "fails")
    seen, token = [], ""
    while True:
        page = stub(xserver).ListOperations(
            ex.ListOperationsRequest(scope=m.Scope(user_id=ivan), page_size=2, page_token=token)
        )
        seen += [op.id for op in page.operations]
        token = page.next_page_token
        if not token:
            break
    assert seen == [failed.id, *reversed(ids)]
    only = stub(xserver).ListOperations(
        ex.ListOperationsRequest(scope=m.Scope(user_id=ivan), state=ex.OPERATION_STATE_FAILED)
    )
    assert [op.id for op in only.operations] == [failed.id]
    exc = rpc_fails(lambda: stub(xserver).GetOperation(ex.GetOperationRequest(id="0" * 32)))
    assert error_of(exc)[:2] == (grpc.StatusCode.NOT_FOUND, "OPERATION_NOT_FOUND")


def test_a_server_without_an_llm_says_extraction_is_not_configured(server: RunningServer) -> None:
    request = ex.ExtractMemoriesRequest(
        messages=[ex.ConversationMessage(role="user", content="hi")], scope=m.Scope(user_id="x")
    )
    exc = rpc_fails(lambda: stub(server).ExtractMemories(request))
    assert error_of(exc)[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "EXTRACTION_NOT_CONFIGURED")
    assert list(stub(server).ListOperations(ex.ListOperationsRequest()).operations) == []


def test_wait_answers_from_the_finished_job_as_stored_without_reading_it_back(
    xserver: RunningServer, script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = xserver.app.extraction.jobs
    assert jobs is not None
    reads: list[str] = []
    real_get = jobs.get

    def counted_get(tenant: str, job_id: str) -> Any:
        reads.append(job_id)
        return real_get(tenant, job_id)

    monkeypatch.setattr(jobs, "get", counted_get)
    script.reply = lambda call: Reply(memories("Bea plays the oboe", "Bea lives in Ghent"))
    op = extract(xserver, user(), "I play the oboe in Ghent")
    assert op.state == ex.OPERATION_STATE_SUCCEEDED, op.error
    assert reads == []  # answered from the job the runner finished
    # ... and that answer is the row as stored.
    stored_op = stub(xserver).GetOperation(ex.GetOperationRequest(id=op.id)).operation
    assert reads == [op.id]
    assert stored_op == op
