"""The JSON Lines export format of `export_jsonl`, `import_jsonl` and the command line.

Each line is the canonical proto-JSON of one ExportMemoriesResponse message:
first `{"header": {...}}`, then one `{"memory": {...}}` per memory. It is the
export stream written down as it came, so an import can send it back unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO

from mnemo._core.conversions import clamped
from mnemo._core.pb import json_format
from mnemo.v1 import memory_service_pb2 as pb


def line(message: pb.ExportMemoriesResponse) -> str:
    """One line (without its newline) for an export stream message (times clamped
    to what proto-JSON can write: a line per memory, whatever the server holds)."""
    return json.dumps(json_format.MessageToDict(clamped(message)), separators=(",", ":"), ensure_ascii=False)


def validate(stream: TextIO) -> int:
    """Checks every line of a file before anything is sent, so a bad file imports
    nothing; returns how many memories it holds and leaves it at the start.

    Raises:
        ValueError: "line N: why" for the first line that is not an export line.
    """
    _, memories = read(stream)
    count = sum(1 for _ in memories)
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
            message = json_format.Parse(text, pb.ExportMemoriesResponse())
        except json_format.ParseError as exc:
            raise ValueError(f"line {n}: not an export line: {exc}") from None
        if message.WhichOneof("item") is None:
            raise ValueError(f'line {n}: not an export line: neither {{"header": ...}} nor {{"memory": ...}}')
        return message

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
                raise ValueError(f"line {n}: expected a memory line, found a header (only line 1 may be one)")
            yield message.memory

    return (head.header if head.WhichOneof("item") == "header" else None), memories()
