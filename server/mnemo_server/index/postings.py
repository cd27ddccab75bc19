"""Scope postings of one shard: which positions hold a given user, agent or run.

A shard belongs to one tenant, so the tenant posting is simply "every live
position" and is not stored. For each scope field the shard keeps

* a string table (value -> small int code; code 0 is the empty value, which
  a query never asks for because an empty query field means "any"),
* the code of every position (`codes`, shape (capacity, 3)), and
* per code, the positions holding it, as a static CSR block built in one
  vectorized pass (on load and on compaction) plus a growable "delta" array
  for positions appended since. Loading 1M vectors is therefore an argsort,
  not a Python loop over vectors or over distinct values.

Postings are append-only: removals only flip the shard's `alive` flag and the
readers filter by it. Dead positions disappear when the shard compacts (after
~30% tombstones), which bounds the waste.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from mnemo_server.models import Scope

Positions = npt.NDArray[np.int64]
_EMPTY: Positions = np.zeros(0, dtype=np.int64)


class _Growable:
    """An int64 array with amortized O(1) appends."""

    __slots__ = ("data", "size")

    def __init__(self) -> None:
        self.data: Positions = np.empty(8, dtype=np.int64)
        self.size = 0

    def extend(self, values: Positions) -> None:
        end = self.size + values.shape[0]
        if end > self.data.shape[0]:
            grown = np.empty(max(end, 2 * self.data.shape[0]), dtype=np.int64)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : end] = values
        self.size = end

    def view(self) -> Positions:
        return self.data[: self.size]


class FieldPostings:
    """Postings of one scope field."""

    __slots__ = ("_base_offsets", "_base_order", "_delta", "strings", "table")

    def __init__(self, strings: Sequence[str], codes: npt.NDArray[np.int32]) -> None:
        """Builds the postings from a string table and the codes of positions 0..n.

        Args:
            strings: code i+1 is strings[i]; code 0 is "".
            codes: the code of each existing position.
        """
        self.strings: list[str] = list(strings)
        self.table: dict[str, int] = dict(zip(self.strings, range(1, len(self.strings) + 1), strict=True))
        self.table[""] = 0
        # Stable sort: positions within one code stay ascending, which keeps
        # the bitmaps and gathers of a posting cache-friendly.
        self._base_order: Positions = np.argsort(codes, kind="stable").astype(np.int64)
        counts = np.bincount(codes, minlength=len(self.strings) + 1)
        self._base_offsets: Positions = np.zeros(counts.shape[0] + 1, dtype=np.int64)
        np.cumsum(counts, out=self._base_offsets[1:])
        self._delta: dict[int, _Growable] = {}

    def encode(self, values: list[str]) -> list[int]:
        """The codes of values, adding new ones to the table (writer only)."""
        get = self.table.get
        codes = [get(v, -1) for v in values]
        if -1 in codes:
            for i, code in enumerate(codes):
                if code < 0:
                    value = values[i]
                    code = self.table.get(value, -1)  # repeated within the batch
                    if code < 0:
                        self.strings.append(value)
                        code = self.table[value] = len(self.strings)
                    codes[i] = code
        return codes

    def append(self, positions: Positions, codes: npt.NDArray[np.int32]) -> None:
        """Records newly appended positions (ascending, above every existing one)."""
        if codes.shape[0] == 0:
            return
        first = int(codes[0])
        if (codes == first).all():  # the common batch: one user, agent or run
            if first:
                self._delta_of(first).extend(positions)
            return
        order = np.argsort(codes, kind="stable")
        sorted_codes = codes[order]
        starts = np.flatnonzero(np.diff(sorted_codes, prepend=-1))
        ends = np.append(starts[1:], sorted_codes.shape[0])
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            code = int(sorted_codes[start])
            if code:
                self._delta_of(code).extend(positions[order[start:end]])

    def positions(self, value: str) -> Positions:
        """Every position ever given `value` (live or dead), ascending."""
        code = self.table.get(value)
        if not code:  # unknown, or "" (never asked: an empty field means any)
            return _EMPTY
        base = _EMPTY
        if code + 1 < self._base_offsets.shape[0]:
            base = self._base_order[self._base_offsets[code] : self._base_offsets[code + 1]]
        delta = self._delta.get(code)
        if delta is None:
            return base
        if base.shape[0] == 0:
            return delta.view()
        return np.concatenate((base, delta.view()))

    def _delta_of(self, code: int) -> _Growable:
        delta = self._delta.get(code)
        if delta is None:
            delta = self._delta[code] = _Growable()
        return delta


class ScopePostings:
    """The three field postings of one shard."""

    __slots__ = ("fields",)

    def __init__(self, strings: Sequence[Sequence[str]], codes: npt.NDArray[np.int32]) -> None:
        self.fields = tuple(FieldPostings(strings[i], np.ascontiguousarray(codes[:, i])) for i in range(3))

    @classmethod
    def empty(cls) -> ScopePostings:
        return cls(([], [], []), np.zeros((0, 3), dtype=np.int32))

    def encode(self, scopes: Sequence[Scope]) -> npt.NDArray[np.int32]:
        """Codes (shape (n, 3)) for the scopes of entries being written."""
        codes = np.empty((len(scopes), 3), dtype=np.int32)
        codes[:, 0] = self.fields[0].encode([s.user_id for s in scopes])
        codes[:, 1] = self.fields[1].encode([s.agent_id for s in scopes])
        codes[:, 2] = self.fields[2].encode([s.run_id for s in scopes])
        return codes

    def append(self, positions: Positions, codes: npt.NDArray[np.int32]) -> None:
        for i, field in enumerate(self.fields):
            field.append(positions, codes[:, i])

    def narrowest(self, scope: Scope) -> tuple[int, Positions] | None:
        """The shortest posting among the scope's set fields and that field's
        index, or None when the scope sets no field (the whole tenant)."""
        best: tuple[int, Positions] | None = None
        for i, value in enumerate((scope.user_id, scope.agent_id, scope.run_id)):
            if value:
                posting = self.fields[i].positions(value)
                if best is None or posting.shape[0] < best[1].shape[0]:
                    best = (i, posting)
        return best

    def query_codes(self, scope: Scope) -> list[tuple[int, int]] | None:
        """(field index, code) for each set field; None if some value is unknown
        to this shard (then nothing in the shard can match)."""
        out = []
        for i, value in enumerate((scope.user_id, scope.agent_id, scope.run_id)):
            if value:
                code = self.fields[i].table.get(value)
                if code is None:
                    return None
                out.append((i, code))
        return out

    def strings(self) -> list[list[str]]:
        return [list(f.strings) for f in self.fields]


def prune_strings(
    strings: list[list[str]], old_codes: npt.NDArray[np.int32], out: npt.NDArray[np.int32]
) -> list[list[str]]:
    """Drops scope values no live position uses and renumbers the codes into
    `out`, so string tables do not grow forever with short-lived run ids."""
    pruned = []
    for field in range(3):
        column = old_codes[:, field]
        used = np.unique(column)
        used = used[used > 0]
        remap = np.zeros(len(strings[field]) + 1, dtype=np.int32)
        remap[used] = np.arange(1, used.shape[0] + 1, dtype=np.int32)
        out[:, field] = remap[column]
        pruned.append([strings[field][c - 1] for c in used.tolist()])
    return pruned
