"""The JSON Lines export format of `export_jsonl`, `import_jsonl` and the command line.

Each line is the canonical proto-JSON of one ExportMemoriesResponse message:
first `{"header": {...}}`, then one `{"memory": {...}}` per memory. It is the
export stream written down as it came, so an import can send it back unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO

from mnemo._convert import clamped
from mnemo._pb import json_format
from mnemo.v1 import memory_service_pb2 as pb


def line(message: pb.ExportMemoriesResponse) -> str:
    """One line (without its newline) for an export stream message (times clamped
    to what proto-JSON can write: a line per memory, whatever the server holds)."""
    return json.dumps(json_format.MessageToDict(clamped(message)), separators=(",", ":"), ensure_ascii=False)


def count_memories(stream: TextIO) -> int:
    """How many memory lines a file holds (for progress), leaving it at the start."""
    count = sum(1 for text in stream if text.strip() and '"memory"' in text)
    stream.seek(0)
    return count


def read(stream: TextIO) -> tuple[Any, Iterator[Any]]:
    """(the header message or None, an iterator of the memory messages) of a file.

    Raises:
        ValueError: a line is not an export stream message.
    """
    lines = ((n, text) for n, text in enumerate(stream, 1) if text.strip())

    def parse(n: int, text: str) -> Any:
        try:
            return json_format.Parse(text, pb.ExportMemoriesResponse())
        except json_format.ParseError as exc:
            raise ValueError(f"line {n}: not an export line: {exc}") from None

    first = next(lines, None)
    if first is None:
        return None, iter(())
    head = parse(*first)

    def memories() -> Iterator[Any]:
        if head.WhichOneof("item") == "memory":
            yield head.memory
        for n, text in lines:
            message = parse(n, text)
            if message.WhichOneof("item") != "memory":
                raise ValueError(f"line {n}: expected a memory line")
            yield message.memory

    return (head.header if head.WhichOneof("item") == "header" else None), memories()
