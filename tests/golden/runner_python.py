"""Runs the golden cases through the Python SDK's public methods.

    python tests/golden/runner_python.py CASES.json ADDRESS OUT.json

CASES.json is the list of cases (the YAML files, merged); OUT.json receives,
per case, the raw proto-JSON result (or the error's code and reason) of
every step. canonical.py turns it into the golden form.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from mnemo import MnemoClient, SearchQuery, WriteOp
from mnemo.errors import MnemoError
from mnemo.types import DedupPolicy


def resolve(value: Any, saved: dict[str, Any]) -> Any:
    """Replaces {"$ref": "name.path", "as": "int"} by the saved value."""
    if isinstance(value, dict) and "$onehot" in value:
        # A unit vector of the server's dimension: 1.0 at index $onehot.
        vector = [0.0] * value.get("dim", 384)
        vector[value["$onehot"]] = 1.0
        return vector
    if isinstance(value, dict) and "$int64" in value:
        return int(value["$int64"])  # Node passes a BigInt: exact beyond 2**53
    if isinstance(value, dict) and "$ref" in value:
        name, *path = value["$ref"].split(".")
        found: Any = saved[name]
        for part in path:
            found = found[int(part)] if isinstance(found, list) else found[part]
        return int(found) if value.get("as") == "int" else found
    if isinstance(value, dict):
        return {k: resolve(v, saved) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, saved) for v in value]
    return value


def to_json(result: Any) -> Any:
    """Raw proto-JSON of an SDK result: its `.raw`, element by element."""
    if isinstance(result, Message):
        return json_format.MessageToDict(result)
    raw = getattr(result, "raw", None)
    if isinstance(raw, Message):
        return json_format.MessageToDict(raw)
    if isinstance(result, (list, tuple)):
        return [to_json(r) for r in result]
    if result is None or isinstance(result, (str, int, float, bool)):
        return result
    raise TypeError(f"no raw message on {type(result).__name__}")


def build_args(call: str, args: dict[str, Any]) -> dict[str, Any]:
    """SDK value types the YAML spells as plain maps."""
    args = dict(args)
    if "dedup" in args and isinstance(args["dedup"], dict):
        args["dedup"] = DedupPolicy(**args["dedup"])
    if call in ("batch_search", "stream_search"):
        args["queries"] = [q if isinstance(q, str) else SearchQuery(**q) for q in args["queries"]]
    if call == "batch_write":
        ops = []
        for op in args["operations"]:
            ((kind, fields),) = op.items()
            fields = dict(fields)
            first = fields.pop("content") if kind == "create" else fields.pop("id")
            if "dedup" in fields and isinstance(fields["dedup"], dict):
                fields["dedup"] = DedupPolicy(**fields["dedup"])
            ops.append(getattr(WriteOp, kind)(first, **fields))
        args["operations"] = ops
    return args


POSITIONAL = {
    "create": "content",
    "get": "id",
    "update": "id",
    "delete": "id",
    "search": "query",
    "batch_search": "queries",
    "stream_search": "queries",
    "batch_write": "operations",
    "import_memories": "memories",
    "history": "id",
    "iter_history": "id",
    "revoke_api_key": "id",
    "create_api_key": "role",
    "extract": "messages",
    "get_operation": "id",
}


def run_step(client: MnemoClient, step: dict[str, Any], saved: dict[str, Any]) -> Any:
    call = step["call"]
    args = build_args(call, resolve(step.get("args", {}), saved))
    method = getattr(client, call)
    positional = POSITIONAL.get(call)
    result = method(args.pop(positional), **args) if positional in args else method(**args)
    if call == "export":
        return {"header": to_json(result.header), "memories": [to_json(m) for m in result]}
    if call == "stream_search":
        # Answers come back as each query completes: compare them by query id.
        return sorted((to_json(r) for r in result), key=lambda r: r.get("queryId", ""))
    if call == "watch":
        with result as events:
            return [to_json(e) for e in take(events, step["take"])]
    if isinstance(result, Iterator) or (
        isinstance(result, Iterable)
        and not isinstance(result, (list, tuple, str))
        and not hasattr(result, "raw")
    ):
        return [to_json(r) for r in take(result, step.get("take"))]
    return to_json(result)


def take(items: Iterable[Any], n: int | None) -> list[Any]:
    out = []
    for item in items:
        out.append(item)
        if n is not None and len(out) >= n:
            break
    return out


def run_case(address: str, case: dict[str, Any]) -> list[dict[str, Any]]:
    saved: dict[str, Any] = {}
    transcript = []
    with MnemoClient(address, metadata={"x-golden-case": case["name"]}, timeout=60) as client:
        for step in case["steps"]:
            if "sleep" in step:
                time.sleep(step["sleep"])
                continue
            entry: dict[str, Any] = {"call": step["call"]}
            try:
                entry["result"] = run_step(client, step, saved)
            except MnemoError as err:
                entry["error"] = {"code": err.code, "reason": err.reason}
            if "save" in step:
                saved[step["save"]] = entry.get("result")
            transcript.append(entry)
    return transcript


def main() -> None:
    cases_path, address, out_path = sys.argv[1:4]
    cases = json.loads(Path(cases_path).read_text())
    results = {case["name"]: run_case(address, case) for case in cases}
    Path(out_path).write_text(json.dumps(results, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
