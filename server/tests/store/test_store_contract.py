"""The RecordStore contract, run against every implementation in IMPLEMENTATIONS."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from mnemo_server import errors
from mnemo_server.filters import parse_filter
from mnemo_server.models import ChangeType, Link, Memory, Scope
from mnemo_server.store.base import OrderTerm, RecordStore
from mnemo_server.store.order import sort_key

from .factory import ALICE, DIM, IMPLEMENTATIONS, T0, Opener, create, delete, memory, update, vector

NOW = T0 + 10_000_000


@pytest.fixture(params=IMPLEMENTATIONS)
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], RecordStore]]:
    """Opens the test's store; call again after close() to reopen the same data."""
    opener: Opener = request.param
    opened: list[RecordStore] = []

    def open_() -> RecordStore:
        store = opener(tmp_path)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], RecordStore]) -> RecordStore:
    return open_store()


def without_key(m: Memory) -> Memory:
    return dataclasses.replace(m, key=0)


class TestWrites:
    def test_insert_then_get_returns_the_same_memory(self, store: RecordStore) -> None:
        draft = memory(
            "m1",
            scope=Scope("alice", "agent-7", "run-1"),
            tags=("x", "y"),
            metadata={"topic": "food", "n": 3, "f": 0.25, "ok": True, "none": None, "l": [1, "a"]},
            pinned=True,
            expire_time_us=T0 + 10**12,
        )
        draft = dataclasses.replace(
            draft, links=(Link("m0", "derived_from", 0.5),), last_retrieve_time_us=T0 + 5
        )
        [stored] = create(store, draft)
        assert stored.key > 0
        got = store.get("t1", "m1")
        assert got == stored
        assert got is not None and got.embedding is None
        with_vec = store.get("t1", "m1", with_embedding=True)
        assert with_vec is not None and with_vec.embedding is not None
        assert with_vec.embedding.dtype == np.float32
        assert with_vec.embedding.tobytes() == draft.embedding.tobytes()  # type: ignore[union-attr]

    def test_keys_are_unique_and_never_reused(self, store: RecordStore) -> None:
        a, b = create(store, memory("a"), memory("b"))
        with store.write() as txn:
            txn.delete(dataclasses.replace(b, revision=txn.next_revision()))
        [c] = create(store, memory("c"))
        assert len({a.key, b.key, c.key}) == 3
        assert c.key > b.key  # b's key must not come back: the index knows it as b

    def test_get_by_keys(self, store: RecordStore) -> None:
        a, b, c = create(store, memory("a"), memory("b"), memory("c"))
        got = store.get_by_keys([a.key, c.key, 999_999])
        assert got == {a.key: a, c.key: c}
        with_vec = store.get_by_keys([b.key], with_embedding=True)
        assert with_vec[b.key].embedding is not None
        assert store.get_by_keys([]) == {}

    def test_insert_taken_id_is_already_exists(self, store: RecordStore) -> None:
        create(store, memory("m1"))
        with pytest.raises(errors.AlreadyExistsError) as caught:
            create(store, memory("m1", content="other"))
        assert caught.value.reason == "MEMORY_ALREADY_EXISTS"
        create(store, memory("m1", tenant="t2"))  # ids are unique per tenant only
        assert store.count("t1") == 1 and store.count("t2") == 1

    def test_update_replaces_and_logs_history(self, store: RecordStore) -> None:
        [before] = create(store, memory("m1", tags=("a",)))
        after = update(store, before, content="new text", tags=("b",), update_time_us=T0 + 5)
        assert after.key == before.key
        got = store.get("t1", "m1")
        assert got == after and got is not None and got.content == "new text"
        [newest, first] = store.history("t1", "m1", before_version=None, limit=10)
        assert newest.change_type is ChangeType.UPDATE
        assert newest.version == 2 and newest.revision == after.revision
        assert newest.before == before and newest.after == after
        assert newest.changed_fields == ("content", "tags", "update_time_us")
        assert newest.time_us == T0 + 5
        assert first.change_type is ChangeType.CREATE
        assert first.before is None and first.after == before and first.changed_fields == ()

    def test_update_of_a_missing_memory_is_not_found(self, store: RecordStore) -> None:
        [m] = create(store, memory("m1"))
        with store.write() as txn:
            txn.delete(dataclasses.replace(m, revision=txn.next_revision()))
        with pytest.raises(errors.NotFoundError):
            update(store, m, content="x")

    def test_delete_removes_and_keeps_history(self, store: RecordStore) -> None:
        [m] = create(store, memory("m1"))
        with store.write() as txn:
            revision = txn.next_revision()
            txn.delete(dataclasses.replace(m, revision=revision), api_key_id="key-1")
        assert store.get("t1", "m1") is None
        assert store.count() == 0
        [deleted, created] = store.history("t1", "m1", before_version=None, limit=10)
        assert deleted.change_type is ChangeType.DELETE
        assert deleted.revision == revision and deleted.version == 2  # a delete is a change
        assert deleted.before == m and deleted.after is None
        assert deleted.api_key_id == "key-1"
        assert created.change_type is ChangeType.CREATE
        [change] = store.changes_since(m.revision, limit=10)
        assert (change.change_type, change.key, change.memory_id) == (
            ChangeType.DELETE,
            m.key,
            "m1",
        )
        with pytest.raises(errors.NotFoundError), store.write() as txn:
            txn.delete(dataclasses.replace(m, revision=txn.next_revision()))

    def test_expire_is_logged_as_expire(self, store: RecordStore) -> None:
        [m] = create(store, memory("m1", expire_time_us=T0))
        with store.write() as txn:
            txn.delete(dataclasses.replace(m, revision=txn.next_revision()), change_type=ChangeType.EXPIRE)
        [change] = store.changes_since(m.revision, limit=10)
        assert change.change_type is ChangeType.EXPIRE
        assert store.history("t1", "m1", before_version=None, limit=1)[0].change_type is ChangeType.EXPIRE

    def test_purge_history_forgets(self, store: RecordStore) -> None:
        [a, _, _] = create(store, memory("a"), memory("b"), memory("a", tenant="t2"))
        with store.write() as txn:
            txn.purge_history("t1", [a])
        assert store.history("t1", "a", before_version=None, limit=10) == []
        assert len(store.history("t1", "b", before_version=None, limit=10)) == 1
        assert len(store.history("t2", "a", before_version=None, limit=10)) == 1

    def test_a_history_holds_only_the_newest_life_of_an_id(self, store: RecordStore) -> None:
        bob = Scope("bob")
        [old] = create(store, memory("x", scope=bob, content="bob's secret v1"))
        for i in range(3):
            old = update(store, old, content=f"bob's secret v{i + 2}")
        delete(store, old)
        [new] = create(store, memory("x", content="alice v1"))
        entries = store.history("t1", "x", before_version=None, limit=100)
        assert [(e.version, e.after.content if e.after else None) for e in entries] == [(1, "alice v1")]
        for i in range(6):
            new = update(store, new, content=f"alice v{i + 2}")
        entries = store.history("t1", "x", before_version=None, limit=100)
        assert [e.version for e in entries] == [7, 6, 5, 4, 3, 2, 1]
        assert all(e.after is not None and e.after.scope == ALICE for e in entries)
        paged = store.history("t1", "x", before_version=5, limit=2)
        assert [e.version for e in paged] == [4, 3]
        delete(store, new)
        ended = store.history("t1", "x", before_version=None, limit=100)
        assert ended[0].change_type is ChangeType.DELETE and {e.before.scope for e in ended if e.before} == {
            ALICE
        }

    def test_purging_a_scope_erases_its_past_lives_only(self, store: RecordStore) -> None:
        bob = Scope("bob", "agent-1")
        [gone, _, kept, other] = create(
            store,
            memory("gone", scope=bob, content="bob's deleted secret"),
            memory("live", scope=bob, content="bob's live secret"),
            memory("kept", scope=Scope("carol"), content="carol's"),
            memory("gone", tenant="t2", scope=bob, content="another tenant's bob"),
        )
        delete(store, gone)
        [reused] = create(store, memory("gone", scope=Scope("carol"), content="carol re-used the id"))
        with store.write() as txn:
            assert txn.purge_scope_history("t1", Scope(agent_id="agent-1")) == ["gone", "live"]
        assert store.history("t1", "live", before_version=None, limit=10) == []
        [entry] = store.history("t1", "gone", before_version=None, limit=10)
        assert entry.after is not None and entry.after.content == "carol re-used the id"
        assert len(store.history("t1", "kept", before_version=None, limit=10)) == 1
        assert len(store.history("t2", "gone", before_version=None, limit=10)) == 1
        shown = [e.memory for e in store.feed_since(0, tenant="t1", scope=Scope("bob"), limit=100)]
        assert shown and all(m is None for m in shown)
        assert reused.key != gone.key and kept.key and other.key

    def test_history_pages_by_version(self, store: RecordStore) -> None:
        [m] = create(store, memory("m1"))
        for i in range(4):
            m = update(store, m, content=f"v{i + 2}")
        versions = [r.version for r in store.history("t1", "m1", before_version=None, limit=2)]
        assert versions == [5, 4]
        versions = [r.version for r in store.history("t1", "m1", before_version=4, limit=10)]
        assert versions == [3, 2, 1]

    def test_txn_get_sees_its_own_writes(self, store: RecordStore) -> None:
        with store.write() as txn:
            inserted = txn.insert(dataclasses.replace(memory("m1"), revision=txn.next_revision()))
            seen = txn.get("t1", "m1")
            assert seen == inserted and seen is not None and seen.embedding is not None
            assert store.get("t1", "m1") is None  # readers see only commits
        assert store.get("t1", "m1") == inserted

    def test_find_by_content_hash(self, store: RecordStore) -> None:
        scope = Scope("alice", "bot")
        old, new, other_scope = create(
            store,
            memory("old", scope=scope, content="same", create_time_us=T0),
            memory("new", scope=scope, content="same", create_time_us=T0 + 1),
            memory("wider", scope=Scope("alice"), content="same", create_time_us=T0 - 1),
        )
        digest = old.content_hash
        with store.write() as txn:
            assert txn.find_by_content_hash("t1", scope, digest) == old
            assert txn.find_by_content_hash("t1", Scope("alice"), digest) == other_scope
            assert txn.find_by_content_hash("t1", Scope("bob"), digest) is None
            assert txn.find_by_content_hash("t2", scope, digest) is None
        with store.write() as txn:  # an expired duplicate loses to a live one
            txn.update(old, dataclasses.replace(old, expire_time_us=1, revision=txn.next_revision()), [])
            assert txn.find_by_content_hash("t1", scope, digest) == new

    def test_write_is_not_reentrant(self, store: RecordStore) -> None:
        with store.write(), pytest.raises(RuntimeError), store.write():
            pass


class TestRevisions:
    def test_every_change_takes_a_higher_revision_across_reopen(
        self, open_store: Callable[[], RecordStore]
    ) -> None:
        store = open_store()
        assert store.current_revision() == 0 and store.oldest_revision() == 0
        a, b = create(store, memory("a"), memory("b"))
        a2 = update(store, a, content="a2")
        with store.write() as txn:
            txn.delete(dataclasses.replace(b, revision=txn.next_revision()))
        store.close()
        store = open_store()
        [c] = create(store, memory("c"))
        with store.write() as txn:
            txn.delete(dataclasses.replace(c, revision=txn.next_revision()), change_type=ChangeType.EXPIRE)
        changes = store.changes_since(0, limit=100)
        revisions = [ch.revision for ch in changes]
        assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions) == 6
        assert [ch.change_type for ch in changes] == [
            ChangeType.CREATE,
            ChangeType.CREATE,
            ChangeType.UPDATE,
            ChangeType.DELETE,
            ChangeType.CREATE,
            ChangeType.EXPIRE,
        ]
        assert revisions[2] == a2.revision
        assert store.current_revision() == revisions[-1]
        assert store.oldest_revision() == revisions[0]
        assert [ch.revision for ch in store.changes_since(revisions[2], limit=2)] == revisions[3:5]
        assert changes[0].scope == Scope("alice") and changes[0].key == a.key

    def test_rollback_leaves_nothing(self, store: RecordStore) -> None:
        [kept] = create(store, memory("kept"))
        before = store.current_revision()
        with pytest.raises(ZeroDivisionError), store.write() as txn:
            txn.insert(dataclasses.replace(memory("lost"), revision=txn.next_revision()))
            update_after = dataclasses.replace(kept, content="lost", revision=txn.next_revision())
            txn.update(kept, update_after, ["content"])
            1 / 0  # noqa: B018
        assert store.get("t1", "lost") is None
        assert store.get("t1", "kept") == kept
        assert store.current_revision() == before
        assert store.changes_since(before, limit=10) == []
        assert store.history("t1", "lost", before_version=None, limit=10) == []
        assert len(store.history("t1", "kept", before_version=None, limit=10)) == 1
        [m] = create(store, memory("next"))
        assert m.revision == before + 1  # the rolled-back revisions were never taken

    def test_savepoint_undoes_only_its_own_writes(self, store: RecordStore) -> None:
        with store.write() as txn:
            txn.insert(dataclasses.replace(memory("outer"), revision=txn.next_revision()))
            with pytest.raises(KeyError), txn.savepoint():
                txn.insert(dataclasses.replace(memory("inner"), revision=txn.next_revision()))
                raise KeyError("undo inner")
            assert txn.get("t1", "inner") is None
            with txn.savepoint():
                txn.insert(dataclasses.replace(memory("kept"), revision=txn.next_revision()))
                with pytest.raises(KeyError), txn.savepoint():
                    txn.insert(dataclasses.replace(memory("nested"), revision=txn.next_revision()))
                    raise KeyError("undo nested")
            # A failed insert inside a savepoint leaves the transaction usable.
            with pytest.raises(errors.AlreadyExistsError), txn.savepoint():
                txn.insert(dataclasses.replace(memory("outer"), revision=txn.next_revision()))
        ids = {
            m.id
            for m in store.list("t1", scope=Scope(), filter=None, order=[], after=None, limit=10, now_us=NOW)
        }
        assert ids == {"outer", "kept"}
        assert store.history("t1", "inner", before_version=None, limit=10) == []
        assert {c.memory_id for c in store.changes_since(0, limit=10)} == {"outer", "kept"}
        revisions = [c.revision for c in store.changes_since(0, limit=10)]
        assert store.current_revision() >= max(revisions)

    def test_revisions_taken_in_a_rolled_back_savepoint_stay_taken(self, store: RecordStore) -> None:
        with store.write() as txn:
            with pytest.raises(KeyError), txn.savepoint():
                inner = txn.next_revision()
                raise KeyError("undo")
            outer = txn.next_revision()
            txn.insert(dataclasses.replace(memory("m1"), revision=outer))
        assert outer > inner
        assert store.current_revision() == outer

    def test_revision_must_come_from_the_transaction(self, store: RecordStore) -> None:
        with pytest.raises(ValueError), store.write() as txn:
            txn.insert(dataclasses.replace(memory("m1"), revision=store.current_revision() + 5))
        assert store.get("t1", "m1") is None


class TestTenantIsolation:
    def test_every_read_stays_in_its_tenant(self, store: RecordStore) -> None:
        scope = Scope("alice", "bot", "r1")
        one = create(store, memory("m1", scope=scope, content="hi"), memory("m2", scope=scope))
        two = create(store, memory("m1", tenant="t2", scope=scope, content="hi"))
        for tenant, mine in (("t1", one), ("t2", two)):
            assert store.get(tenant, "m1") == mine[0]
            listed = store.list(
                tenant, scope=Scope(), filter=None, order=[], after=None, limit=10, now_us=NOW
            )
            assert listed == sorted(mine, key=lambda m: m.id)
            expr = parse_filter('user_id = "alice"')
            assert store.match_keys(tenant, scope=scope, filter=expr, now_us=NOW) == sorted(
                m.key for m in mine
            )
            assert [r.after for r in store.history(tenant, "m1", before_version=None, limit=10)] == [mine[0]]
            assert store.count(tenant) == len(mine)
            [row] = store.scope_counts(tenant, scope=Scope(), limit=10)
            assert (row.tenant, row.scope, row.memory_count) == (tenant, scope, len(mine))
            with store.write() as txn:
                assert txn.get(tenant, "m1") == mine[0]
                assert txn.find_by_content_hash(tenant, scope, mine[0].content_hash) == mine[0]
        assert store.get("t3", "m1") is None
        assert store.list("t3", scope=Scope(), filter=None, order=[], after=None, limit=10, now_us=NOW) == []
        assert store.count() == 3
        counts = {r.tenant: (r.memory_count, r.content_bytes) for r in store.tenant_counts()}
        assert counts == {"t1": (2, 2 + len("content of m2")), "t2": (1, 2)}


ORDERS = [
    [],
    [OrderTerm("create_time")],
    [OrderTerm("create_time", descending=True)],
    [OrderTerm("update_time")],
    [OrderTerm("update_time", descending=True)],
    [OrderTerm("id")],
    [OrderTerm("id", descending=True)],
    [OrderTerm("create_time", descending=True), OrderTerm("update_time")],
    [OrderTerm("update_time"), OrderTerm("create_time", descending=True)],
    [OrderTerm("create_time"), OrderTerm("id", descending=True)],
    [OrderTerm("update_time", descending=True), OrderTerm("id")],
]


def expected_order(memories: list[Memory], order: list[OrderTerm]) -> list[str]:
    """The documented order: the terms, then id in the last term's direction."""
    rows = list(memories)
    terms = [*order, OrderTerm("id", order[-1].descending if order else False)]
    for term in reversed(terms):  # stable sorts, least significant first
        rows.sort(key=lambda m: sort_key(m, [term])[0], reverse=term.descending)  # type: ignore[arg-type,return-value]
    return [m.id for m in rows]


class TestListing:
    @pytest.fixture
    def corpus(self, store: RecordStore) -> list[Memory]:
        # Few distinct times, so many rows tie on create_time and update_time.
        drafts = [
            memory(f"m{i:02d}", create_time_us=T0 + (i * 7) % 4, update_time_us=T0 + (i * 5) % 3 + 10)
            for i in range(37)
        ]
        drafts.append(memory("other-scope", scope=Scope("bob")))
        drafts.append(memory("expired", expire_time_us=NOW))
        drafts.append(memory("later", expire_time_us=NOW + 1))
        create(store, memory("x", tenant="t2"))
        return create(store, *drafts)

    @pytest.mark.parametrize(
        "order",
        ORDERS,
        ids=lambda o: ",".join(f"{t.field}{'-' if t.descending else ''}" for t in o) or "none",
    )
    @pytest.mark.parametrize("page", [1, 7, 100])
    def test_pages_return_every_row_once_in_order(
        self, store: RecordStore, corpus: list[Memory], order: list[OrderTerm], page: int
    ) -> None:
        live = [m for m in corpus if m.scope == Scope("alice") and not m.is_expired(NOW)]
        seen: list[str] = []
        after = None
        for _ in range(len(live) + 2):  # bounded: a broken keyset could loop forever
            rows = store.list(
                "t1",
                scope=Scope("alice"),
                filter=None,
                order=order,
                after=after,
                limit=page,
                now_us=NOW,
            )
            seen.extend(m.id for m in rows)
            if len(rows) < page:
                break
            after = sort_key(rows[-1], order)
        assert seen == expected_order(live, order)

    def test_filter_and_scope_combine(self, store: RecordStore, corpus: list[Memory]) -> None:
        expr = parse_filter('id >= "m30" OR id = "other-scope"')
        rows = store.list(
            "t1", scope=Scope("alice"), filter=expr, order=[], after=None, limit=100, now_us=NOW
        )
        assert [m.id for m in rows] == [f"m{i}" for i in range(30, 37)]
        keys = store.match_keys("t1", scope=Scope(), filter=expr, now_us=NOW)
        assert sorted(keys) == sorted(m.key for m in corpus if m.id >= "m30" or m.id == "other-scope")

    def test_expired_memories_are_hidden_but_reachable(
        self, store: RecordStore, corpus: list[Memory]
    ) -> None:
        listed = store.list("t1", scope=Scope(), filter=None, order=[], after=None, limit=100, now_us=NOW)
        ids = {m.id for m in listed}
        assert "expired" not in ids and "later" in ids
        keys = set(store.match_keys("t1", scope=Scope(), filter=None, now_us=NOW))
        expired = next(m for m in corpus if m.id == "expired")
        assert expired.key not in keys
        assert store.get("t1", "expired") == expired  # get does not hide expired memories
        assert store.expiring_keys(NOW) == [expired.key]
        assert store.expired(NOW, limit=10) == [expired]
        assert store.expired(NOW - 1, limit=10) == []
        later = store.list("t1", scope=Scope(), filter=None, order=[], after=None, limit=100, now_us=NOW + 1)
        assert "later" not in {m.id for m in later}

    def test_scope_counts_largest_first(self, store: RecordStore) -> None:
        create(
            store,
            *[memory(f"a{i}", scope=Scope("alice", "bot")) for i in range(3)],
            *[memory(f"b{i}", scope=Scope("bob")) for i in range(2)],
            memory("c", scope=Scope("carol", "bot")),
        )
        rows = store.scope_counts("t1", scope=Scope(), limit=2)
        assert [(r.scope, r.memory_count) for r in rows] == [
            (Scope("alice", "bot"), 3),
            (Scope("bob"), 2),
        ]
        rows = store.scope_counts("t1", scope=Scope(agent_id="bot"), limit=10)
        assert [(r.scope, r.memory_count) for r in rows] == [
            (Scope("alice", "bot"), 3),
            (Scope("carol", "bot"), 1),
        ]


class TestVectorsAndValues:
    def test_iter_vectors_returns_every_vector_exactly(self, store: RecordStore) -> None:
        drafts = [memory(f"m{i}", tenant=f"t{i % 3}", scope=Scope(f"u{i % 4}"), seed=i) for i in range(25)]
        stored = create(store, *drafts)
        batches = list(store.iter_vectors(batch_size=7))
        assert [len(b) for b in batches] == [7, 7, 7, 4]
        rows = [row for batch in batches for row in batch]
        assert [r.key for r in rows] == sorted(m.key for m in stored)
        by_key = {m.key: m for m in stored}
        for row in rows:
            m = by_key[row.key]
            assert (row.tenant, row.scope) == (m.tenant, m.scope)
            assert row.vector.dtype == np.float32 and row.vector.shape == (DIM,)
            assert row.vector.tobytes() == m.embedding.tobytes()  # type: ignore[union-attr]
        some = [stored[3].key, stored[1].key, 10**9]
        got = store.vectors_by_keys(some)
        assert [r.key for r in got] == sorted(some[:2])
        assert got[0].vector.tobytes() == vector(1).tobytes()

    def test_vectors_of_different_dimensions_stream_too(self, store: RecordStore) -> None:
        a = memory("a")
        b = dataclasses.replace(memory("b"), embedding=vector(3, dim=DIM * 2))
        create(store, a, b)
        rows = [row for batch in store.iter_vectors() for row in batch]
        assert [r.vector.shape for r in rows] == [(DIM,), (DIM * 2,)]

    def test_metadata_values_keep_their_type_exactly(self, store: RecordStore) -> None:
        metadata = {
            "max": 2**63 - 1,
            "min": -(2**63),
            "float": 0.1,
            "whole_float": 3.0,
            "text": 'naïve ☃ "quoted" \\ \n',
            "flag": False,
            "nothing": None,
            "list": [1, 1.5, "a", True, None, [2], {"k": "v"}],
            "nested": {"deeper": {"n": 2**62}},
            "key with.dots and spaces": "ok",
        }
        [m] = create(store, memory("m1", metadata=metadata))
        got = store.get("t1", "m1")
        assert got is not None and got.metadata == metadata
        assert type(got.metadata["max"]) is int and type(got.metadata["whole_float"]) is float
        assert got.metadata["max"] == 9223372036854775807
        [record] = store.history("t1", "m1", before_version=None, limit=1)
        assert record.after is not None and record.after.metadata == metadata
        for text in ("metadata.max = 9223372036854775807", "metadata.min = -9223372036854775808"):
            assert store.match_keys("t1", scope=Scope(), filter=parse_filter(text), now_us=NOW) == [m.key]
        near = parse_filter("metadata.max = 9223372036854775806")
        assert store.match_keys("t1", scope=Scope(), filter=near, now_us=NOW) == []

    def test_everything_persists_across_reopen(self, open_store: Callable[[], RecordStore]) -> None:
        store = open_store()
        a, b = create(store, memory("a", metadata={"n": 1}), memory("b", tenant="t2"))
        a2 = update(store, a, content="changed")
        store.set_meta("embedding_model", "model-x")
        revision = store.current_revision()
        store.close()
        store = open_store()
        assert store.get("t1", "a") == a2
        assert store.get("t2", "b") == b
        assert len(store.history("t1", "a", before_version=None, limit=10)) == 2
        assert store.current_revision() == revision
        assert store.get_meta("embedding_model") == "model-x"
        assert store.get_meta("missing") is None
        [c] = create(store, memory("c"))
        assert c.revision == revision + 1 and c.key > b.key

    def test_meta_names_of_the_store_are_reserved(self, store: RecordStore) -> None:
        with pytest.raises(ValueError):
            store.set_meta("revision", "0")
        store.set_meta("x", "1")
        store.set_meta("x", "2")
        assert store.get_meta("x") == "2"


class TestConcurrency:
    def test_reads_run_while_writes_commit(self, store: RecordStore) -> None:
        stop = threading.Event()
        failures: list[BaseException] = []
        observed: list[int] = []

        def reader() -> None:
            try:
                last = 0
                while not stop.is_set():
                    rows = store.list(
                        "t1",
                        scope=Scope(),
                        filter=None,
                        order=[],
                        after=None,
                        limit=1000,
                        now_us=NOW,
                    )
                    revision = store.current_revision()
                    assert len(rows) >= last  # commits only add rows here
                    last = len(rows)
                    observed.append(revision)
            except BaseException as exc:  # reported below; a thread cannot fail the test itself
                failures.append(exc)

        threads = [threading.Thread(target=reader) for _ in range(3)]
        for t in threads:
            t.start()
        for i in range(30):
            create(store, *[memory(f"m{i}-{j}") for j in range(10)])
        stop.set()
        for t in threads:
            t.join()
        assert failures == []
        assert observed and store.count() == 300
