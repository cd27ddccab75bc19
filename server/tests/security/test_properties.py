"""Property-based: random sequences of creates, updates, deletes, re-used ids,
expiries, imports, forgets and restarts by several users' keys, with the
invariants checked after every step:

- no RPC answered for a key restricted to one user contains another user's
  (or another tenant's) content;
- forgetting a user leaves no content of theirs in any RPC: get, list,
  search, history, export, and the change feed replayed from the start;
- a live memory's history is exactly its own versions, newest first;
- the index equals the store (CheckConsistency).

Every content string names its owner ("alice:12"), so a response can be
checked by reading it. The server is real (gRPC over loopback, the SQLite
store, FAISS shards); vectors are sent by the client so that steps stay fast.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from mnemo.v1 import admin_service_pb2 as admin_pb
from mnemo.v1 import memory_pb2 as m
from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server.embed.base import Embedder

from ..conftest import RunningServer, error_of, start_server
from .conftest import BOOTSTRAP, As, Keyed, new_key, secure_settings

USERS = ("alice", "bob", "carol")
CHOSEN_IDS = ("m0", "m1", "m2", "m3")
OWNER = re.compile(r"\b((?:other-)?(?:alice|bob|carol)):\d+\b")
DIM = 384


def owners(message: Any) -> set[str]:
    """Whose contents a response shows."""
    return set(OWNER.findall(str(message)))


def read_stream(call: Any) -> list[Any]:
    out = []
    for response in call:
        if getattr(response, "progress_notification", False):
            break
        out.append(response)
    return out


class Model:
    """What the store should hold: per id its owner and its life's contents."""

    def __init__(self) -> None:
        self.live: dict[str, tuple[str, list[str]]] = {}
        self.forgotten: set[str] = set()
        self.written: dict[str, list[str]] = {u: [] for u in USERS}
        self.counter = 0

    def content(self, user: str) -> str:
        self.counter += 1
        text = f"{user}:{self.counter}"
        self.written[user].append(text)
        return text


class Isolation(RuleBasedStateMachine):
    server: RunningServer
    settings_: Any
    embedder: Embedder

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.rng = np.random.default_rng(0)

    # -- set-up --------------------------------------------------------------

    @initialize()
    def keys(self) -> None:
        tenant = f"t-{id(self):x}-{Isolation.run}"
        Isolation.run += 1
        self.full = new_key(self.server, "writer", tenant=tenant)
        self.users = {u: new_key(self.server, "writer", tenant=tenant, user_ids=(u,)) for u in USERS}
        # Another tenant writes the same ids for the same user names.
        self.other = new_key(self.server, "writer", tenant=tenant + "-other")

    run = 0

    def vector(self) -> list[float]:
        return self.rng.standard_normal(DIM).astype(np.float32).tolist()

    # -- rules ---------------------------------------------------------------

    @rule(user=st.sampled_from(USERS), chosen=st.sampled_from((None, *CHOSEN_IDS)))
    def create(self, user: str, chosen: str | None) -> None:
        content = self.model.content(user)
        who = self.users[user] if chosen is None else self.full
        try:
            created = who.memory.CreateMemory(
                pb.CreateMemoryRequest(
                    memory=m.Memory(id=chosen or "", user_id=user, content=content, embedding=self.vector())
                )
            ).memory
        except grpc.RpcError as exc:
            assert chosen is not None and chosen in self.model.live
            assert error_of(exc)[1] == "MEMORY_ALREADY_EXISTS"
            return
        assert chosen is None or chosen not in self.model.live
        self.model.live[created.id] = (user, [content])

    @rule(user=st.sampled_from(USERS), chosen=st.sampled_from(CHOSEN_IDS))
    def other_tenant_writes(self, user: str, chosen: str) -> None:
        with_id = pb.CreateMemoryRequest(
            memory=m.Memory(
                id=chosen,
                user_id=user,
                content=f"other-{user}:{CHOSEN_IDS.index(chosen)}",
                embedding=self.vector(),
            )
        )
        try:
            self.other.memory.CreateMemory(with_id)
        except grpc.RpcError as exc:
            assert error_of(exc)[1] == "MEMORY_ALREADY_EXISTS"

    @precondition(lambda self: bool(self.model.live))
    @rule(data=st.data(), own_key=st.booleans())
    def update(self, data: st.DataObject, own_key: bool) -> None:
        memory_id = data.draw(st.sampled_from(list(self.model.live)))
        user, versions = self.model.live[memory_id]
        content = self.model.content(user)
        who = self.users[user] if own_key else self.full
        who.memory.UpdateMemory(
            pb.UpdateMemoryRequest(
                memory=m.Memory(id=memory_id, content=content, embedding=self.vector()),
                update_mask={"paths": ["content", "embedding"]},
            )
        )
        versions.append(content)

    @precondition(lambda self: bool(self.model.live))
    @rule(data=st.data(), intruder=st.sampled_from(USERS))
    def others_cannot_touch(self, data: st.DataObject, intruder: str) -> None:
        memory_id = data.draw(st.sampled_from(list(self.model.live)))
        owner, _ = self.model.live[memory_id]
        if owner == intruder:
            return
        who = self.users[intruder]
        for call in (
            lambda: who.memory.GetMemory(pb.GetMemoryRequest(id=memory_id)),
            lambda: who.memory.GetMemoryHistory(pb.GetMemoryHistoryRequest(id=memory_id)),
            lambda: who.memory.DeleteMemory(pb.DeleteMemoryRequest(id=memory_id)),
            lambda: who.memory.UpdateMemory(
                pb.UpdateMemoryRequest(
                    memory=m.Memory(id=memory_id, content=f"{intruder}:0"), update_mask={"paths": ["content"]}
                )
            ),
        ):
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert error_of(err.value)[:2] == (grpc.StatusCode.NOT_FOUND, "MEMORY_NOT_FOUND")

    @precondition(lambda self: bool(self.model.live))
    @rule(data=st.data(), own_key=st.booleans())
    def delete(self, data: st.DataObject, own_key: bool) -> None:
        memory_id = data.draw(st.sampled_from(list(self.model.live)))
        user, _ = self.model.live.pop(memory_id)
        (self.users[user] if own_key else self.full).memory.DeleteMemory(pb.DeleteMemoryRequest(id=memory_id))

    @precondition(lambda self: bool(self.model.live))
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        memory_id = data.draw(st.sampled_from(list(self.model.live)))
        user, _ = self.model.live.pop(memory_id)
        self.users[user].memory.UpdateMemory(
            pb.UpdateMemoryRequest(
                memory=m.Memory(id=memory_id), ttl={"nanos": 1000}, update_mask={"paths": ["expire_time"]}
            )
        )

    @rule(user=st.sampled_from(USERS), chosen=st.sampled_from(CHOSEN_IDS))
    def import_one(self, user: str, chosen: str) -> None:
        content = self.model.content(user)
        response = self.full.memory.ImportMemories(
            iter(
                [
                    pb.ImportMemoriesRequest(options={"on_conflict": pb.IMPORT_CONFLICT_POLICY_SKIP}),
                    pb.ImportMemoriesRequest(header={"format_version": 1}),
                    pb.ImportMemoriesRequest(memory=m.Memory(id=chosen, user_id=user, content=content)),
                ]
            )
        )
        if chosen in self.model.live:
            assert (response.imported_count, response.skipped_count) == (0, 1)
        else:
            assert response.imported_count == 1, response
            self.model.live[chosen] = (user, [content])

    @rule(user=st.sampled_from(USERS))
    def forget(self, user: str) -> None:
        self.users[user].memory.DeleteMemories(pb.DeleteMemoriesRequest(scope={"user_id": user}))
        self.model.forgotten.update(self.model.written[user])
        self.model.written[user] = []
        for memory_id in [i for i, (u, _) in self.model.live.items() if u == user]:
            del self.model.live[memory_id]

    @rule(roll=st.integers(0, 7))
    def restart(self, roll: int) -> None:
        if roll:
            return
        self.server.stop()
        Isolation.server = start_server(self.settings_, self.embedder)
        self.rebind()

    def rebind(self) -> None:
        for who in (self.full, self.other, *self.users.values()):
            who.memory = Keyed(self.server.memory, who.secret)
            who.admin = Keyed(self.server.admin, who.secret)

    # -- invariants ----------------------------------------------------------

    @invariant()
    def each_user_sees_exactly_their_own(self) -> None:
        if not hasattr(self, "full"):
            return
        for user, key in self.users.items():
            mine = {i: v for i, (u, v) in self.model.live.items() if u == user}
            listed = key.memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": user}, page_size=1000))
            assert {x.id: x.content for x in listed.memories} == {i: v[-1] for i, v in mine.items()}
            assert owners(listed) <= {user}
            hits = key.memory.SearchMemories(
                pb.SearchMemoriesRequest(vector=self.vector(), scope={"user_id": user}, top_k=100)
            )
            assert owners(hits) <= {user} and {h.memory.id for h in hits.hits} == set(mine)
            for memory_id in sorted({*CHOSEN_IDS, *self.model.live}):
                try:
                    got = key.memory.GetMemory(pb.GetMemoryRequest(id=memory_id)).memory
                    assert memory_id in mine and got.content == mine[memory_id][-1]
                except grpc.RpcError as exc:
                    assert memory_id not in mine and error_of(exc)[1] == "MEMORY_NOT_FOUND"
                try:
                    history = key.memory.GetMemoryHistory(
                        pb.GetMemoryHistoryRequest(id=memory_id, page_size=1000)
                    )
                except grpc.RpcError as exc:
                    assert memory_id not in mine and error_of(exc)[1] == "MEMORY_NOT_FOUND"
                    continue
                assert owners(history) <= {user}
                if memory_id in mine:
                    shown = [v.after.content for v in history.versions if v.HasField("after")]
                    assert shown == mine[memory_id][::-1]

    @invariant()
    def forgotten_content_is_nowhere(self) -> None:
        if not hasattr(self, "full") or not self.model.forgotten:
            return
        forgotten = self.model.forgotten
        full = self.full
        seen: list[Any] = [
            full.memory.ListMemories(pb.ListMemoriesRequest(page_size=1000)),
            *full.memory.ExportMemories(pb.ExportMemoriesRequest()),
            *read_stream(full.memory.WatchMemories(pb.WatchMemoriesRequest(start_revision=0))),
            full.memory.SearchMemories(pb.SearchMemoriesRequest(vector=self.vector(), top_k=1000)),
        ]
        for memory_id in sorted({*CHOSEN_IDS, *self.model.live}):
            try:
                seen.append(full.memory.GetMemoryHistory(pb.GetMemoryHistoryRequest(id=memory_id)))
            except grpc.RpcError as exc:
                assert error_of(exc)[1] == "MEMORY_NOT_FOUND"
        text = " ".join(str(s) for s in seen)
        leaked = {f"{u}:{n}" for u, n in re.findall(r"\b(alice|bob|carol):(\d+)\b", text)} & forgotten
        assert not leaked, leaked

    @invariant()
    def the_index_equals_the_store(self) -> None:
        report = Keyed(self.server.admin, BOOTSTRAP).CheckConsistency(admin_pb.CheckConsistencyRequest())
        assert report.consistent, report


@pytest.fixture
def machine_server(tmp_path: Path, embedder: Embedder) -> Iterator[None]:
    Isolation.settings_ = secure_settings(tmp_path)
    Isolation.embedder = embedder
    Isolation.server = start_server(Isolation.settings_, embedder)
    yield
    Isolation.server.stop()


def test_random_histories_keep_users_apart_and_forget_completely(machine_server: None) -> None:
    run = Isolation.TestCase
    run.settings = settings(
        max_examples=int(os.environ.get("MNEMO_PROPERTY_EXAMPLES", "12")),
        stateful_step_count=int(os.environ.get("MNEMO_PROPERTY_STEPS", "25")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        derandomize=True,
    )
    run().runTest()


def test_the_owner_pattern_reads_what_the_machine_writes() -> None:
    assert owners("content: 'alice:12' and other-bob:1 carol:3") == {"alice", "other-bob", "carol"}
    assert owners("no owners here: alice12") == set()


_ = As  # the key type the rules use
