"""RecordTable (service/record_table.py): an LRU of decoded memories that a
change empties of its keys, and that refuses a fill which raced a change."""

from __future__ import annotations

import numpy as np

from mnemo_server.models import Memory, Scope
from mnemo_server.service.record_table import RecordTable


def memory(key: int, content: str = "x") -> Memory:
    return Memory(
        key=key,
        tenant="t",
        id=f"id{key}",
        scope=Scope(user_id="u"),
        content=content,
        embedding=np.ones(4, dtype=np.float32),
    )


def test_found_and_missing_and_embeddings_left_out() -> None:
    table = RecordTable(10)
    table.fill([memory(1), memory(2)], epoch=table.epoch)
    found, missing = table.get_many([1, 2, 3])
    assert sorted(found) == [1, 2] and missing == [3]
    assert found[1].embedding is None and found[1].content == "x"


def test_a_change_drops_its_key() -> None:
    table = RecordTable(10)
    table.fill([memory(1), memory(2)], epoch=table.epoch)
    table.invalidate([1])
    found, missing = table.get_many([1, 2])
    assert list(found) == [2] and missing == [1]


def test_a_fill_read_before_a_change_is_not_kept() -> None:
    table = RecordTable(10)
    epoch = table.epoch  # a search reads the epoch, then the store ...
    table.invalidate([1])  # ... a write changes memory 1 meanwhile ...
    table.fill([memory(1, "old")], epoch=epoch)  # ... and the search's read is older
    assert table.get_many([1]) == ({}, [1])


def test_least_recently_used_leave_first() -> None:
    table = RecordTable(2)
    table.fill([memory(1), memory(2)], epoch=table.epoch)
    table.get_many([1])
    table.fill([memory(3)], epoch=table.epoch)
    assert sorted(table.get_many([1, 2, 3])[0]) == [1, 3]
    table.clear()
    assert len(table) == 0
