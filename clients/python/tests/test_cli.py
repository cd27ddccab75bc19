"""The `mnemo` command against the real server: tables, --json output, files and
exit codes (0 ok, 1 server error, 2 usage, 3 no server)."""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mnemo import MnemoClient
from mnemo.cli import main


class Run:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    @property
    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def mnemo(server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MNEMO_ADDRESS", server.address)
    monkeypatch.delenv("MNEMO_API_KEY", raising=False)

    def run(*argv: str) -> Run:
        out, err = io.StringIO(), io.StringIO()
        code = main(list(argv), out=out, err=err)
        return Run(code, out.getvalue(), err.getvalue())

    return run


def test_add_get_update_delete(mnemo: Any, user: str) -> None:
    added = mnemo(
        "add",
        "Alice prefers green tea",
        "--user",
        user,
        "--kind",
        "semantic",
        "-t",
        "drink",
        "-m",
        "year=1990",
        "-m",
        "note=hi",
        "--json",
    )
    assert added.code == 0, added.err
    memory = added.json["memory"]
    assert memory["userId"] == user and memory["kind"] == "semantic" and memory["tags"] == ["drink"]
    assert memory["metadata"] == {"year": 1990, "note": "hi"}
    assert memory["version"] == 1 and memory["pinned"] is False and added.json["deduplicated"] is False

    shown = mnemo("get", memory["id"])
    assert shown.code == 0
    assert "content:  Alice prefers green tea" in shown.out and "kind:     semantic" in shown.out
    assert '{"note": "hi", "year": 1990}' in shown.out
    assert len(mnemo("get", memory["id"], "--embedding", "--json").json["embedding"]) == 384

    updated = mnemo(
        "update", memory["id"], "--content", "Alice prefers black tea", "--etag", memory["etag"], "--json"
    )
    assert updated.code == 0 and updated.json["content"] == "Alice prefers black tea"
    stale = mnemo("update", memory["id"], "--content", "x", "--etag", memory["etag"])
    assert stale.code == 1 and stale.err.startswith("error: FAILED_PRECONDITION ETAG_MISMATCH: ")
    assert mnemo("update", memory["id"]).code == 2

    deleted = mnemo("delete", memory["id"])
    assert deleted.code == 0 and deleted.out.startswith(f"deleted {memory['id']} at revision ")
    missing = mnemo("get", memory["id"])
    assert missing.code == 1 and missing.err.startswith("error: NOT_FOUND MEMORY_NOT_FOUND: ")


def test_list_search_and_history(mnemo: Any, client: MnemoClient, user: str) -> None:
    for fact in ["Alice is allergic to peanuts", "Bob plays the trumpet", "Taxes are due in April"]:
        client.create(fact, user_id=user)
    listed = mnemo("list", "-u", user)
    lines = listed.out.splitlines()
    assert listed.code == 0 and lines[0].split() == ["ID", "USER", "KIND", "CREATED", "CONTENT"]
    assert len(lines) == 4 and "Taxes are due in April" in lines[1]
    limited = mnemo("list", "-u", user, "--limit", "2", "--order-by", "create_time", "--json")
    assert [m["content"] for m in limited.json["memories"]] == [
        "Alice is allergic to peanuts",
        "Bob plays the trumpet",
    ]

    found = mnemo("search", "what is alice allergic to", "-u", user, "-k", "1", "--json")
    assert found.code == 0 and found.json["hits"][0]["memory"]["content"] == "Alice is allergic to peanuts"
    assert found.json["embeddingModel"] == "all-MiniLM-L6-v2"
    table = mnemo("search", "music", "-u", user, "-k", "1")
    assert table.out.splitlines()[0].split() == ["SCORE", "ID", "USER", "KIND", "CONTENT"]
    assert "Bob plays the trumpet" in table.out

    memory_id = limited.json["memories"][0]["id"]
    client.update(memory_id, tags=["health"])
    history = mnemo("history", memory_id)
    assert [line.split()[0] for line in history.out.splitlines()] == ["VERSION", "2", "1"]
    assert [v["changeType"] for v in mnemo("history", memory_id, "--json").json["versions"]] == [
        "update",
        "create",
    ]


def test_json_is_plain_json(mnemo: Any, user: str) -> None:
    """--json is what jq expects: native numbers, plain metadata, short enum names, RFC 3339 times."""
    meta = '{"year": 1990, "big": 4611686018427387904, "ratio": 0.5, "ok": true, "no": null, "l": [1, "a"]}'
    added = mnemo("add", "plain json", "-u", user, "--kind", "episodic", "--metadata", meta, "--json")
    assert added.code == 0, added.err
    memory = json.loads(added.out)["memory"]
    assert memory["metadata"] == json.loads(meta)
    assert type(memory["metadata"]["big"]) is int and memory["metadata"]["big"] == 2**62
    for key in ("version", "revision"):
        assert type(memory[key]) is int and memory[key] >= 1, key
    assert memory["kind"] == "episodic"
    created = datetime.fromisoformat(memory["createTime"].replace("Z", "+00:00"))
    assert created.tzinfo is not None and abs((datetime.now(UTC) - created).total_seconds()) < 300
    listed = json.loads(mnemo("list", "-u", user, "--json").out)["memories"]
    assert [(m["id"], m["metadata"]["year"]) for m in listed] == [(memory["id"], 1990)]
    found = json.loads(mnemo("search", "plain json", "-u", user, "--json").out)["hits"][0]
    assert type(found["score"]) is float and found["memory"]["kind"] == "episodic"
    stats = json.loads(mnemo("stats", "-u", user, "--json").out)
    assert type(stats["dimension"]) is int
    scope = stats["tenants"][0]["scopes"][0]
    assert scope["scope"]["userId"] == user and scope["memoryCount"] == 1


def test_search_modes(mnemo: Any, client: MnemoClient, user: str) -> None:
    for fact in ["Flight LH440 leaves at noon", "Alice flies to Boston", "Order A-7731 shipped"]:
        client.create(fact, user_id=user)
    keyword = mnemo("search", "LH440", "-u", user, "--mode", "keyword", "--json")
    assert keyword.code == 0 and [h["memory"]["content"] for h in keyword.json["hits"]] == [
        "Flight LH440 leaves at noon"
    ]
    assert keyword.json["embeddingModel"] == ""
    hybrid = mnemo("search", "A-7731", "-u", user, "--mode", "hybrid", "--rrf-k", "1", "--json")
    assert hybrid.json["hits"][0]["memory"]["content"] == "Order A-7731 shipped"
    assert hybrid.json["hits"][0]["score"] == 1.0  # first in both rankings: 1/2 + 1/2
    explained = mnemo("search", "A-7731", "-u", user, "--mode", "hybrid", "--json", "--explain")
    assert explained.json["hits"][0]["explanation"]["vectorRank"] == 1
    assert explained.json["hits"][0]["explanation"]["keywordRank"] == 1
    assert "explanation" not in hybrid.json["hits"][0]
    table = mnemo("search", "A-7731", "-u", user, "--mode", "hybrid", "--rrf-k", "1", "--explain")
    header, first, *rest = table.out.splitlines()
    assert header.split()[:3] == ["SCORE", "VECTOR", "KEYWORD"]
    assert first.split()[:5] == ["1.0000", "#1", first.split()[2], "#1", first.split()[4]]
    assert any(" - " in line for line in rest), "a hit without the query's words has no keyword part"
    assert mnemo("search", "x", "--mode", "fuzzy").code == 2
    bad = mnemo("search", "x", "--mode", "keyword", "--min-score", "0.5")
    assert bad.code == 1 and bad.err.splitlines()[1].startswith("  min_score: ")


def test_bad_input_names_the_reason_and_field(mnemo: Any, user: str) -> None:
    bad = mnemo("search", "x", "--filter", "colour = red")
    assert bad.code == 1
    assert bad.err.splitlines()[0].startswith("error: INVALID_ARGUMENT INVALID_FILTER: ")
    assert bad.err.splitlines()[1].startswith("  filter: ")
    assert mnemo("add", "x", "--meta", "novalue").code == 2
    assert mnemo("add", "x", "--metadata", "[1]").code == 2


def test_version(mnemo: Any) -> None:
    run = mnemo("--version")
    assert run.code == 0 and run.out == f"mnemo {importlib.metadata.version('mnemo-client')}\n"


def test_usage_errors_exit_2(mnemo: Any) -> None:
    for argv in [
        [],
        ["frobnicate"],
        ["list", "--bogus"],
        ["search"],
        ["forget", "-u", "someone"],
        ["forget"],
    ]:
        assert mnemo(*argv).code == 2, argv
    assert mnemo("--help").code == 0


def test_no_server_exits_3(mnemo: Any) -> None:
    run = mnemo("--address", "127.0.0.1:1", "list", "--timeout", "5")
    assert run.code == 3 and run.err.startswith("error: cannot reach a Mnemo server at 127.0.0.1:1")
    assert mnemo("health", "--address", "127.0.0.1:1").code == 3


def test_health_stats_check_snapshot(mnemo: Any, client: MnemoClient, user: str) -> None:
    client.create("for stats", user_id=user)
    assert mnemo("health").out == "SERVING\n"
    assert mnemo("health", "--json").json == {"status": "serving"}
    stats = mnemo("stats", "-u", user, "--json")
    assert stats.code == 0 and stats.json["dimension"] == 384
    assert stats.json["tenants"][0]["scopes"][0]["scope"]["userId"] == user
    assert "TENANT" in mnemo("stats").out
    assert mnemo("check", "--json").json["consistent"] is True
    assert mnemo("snapshot").out.startswith("revision:")


def test_export_forget_import_round_trip(mnemo: Any, client: MnemoClient, user: str, tmp_path: Path) -> None:
    ids = sorted(client.create(f"exported {i}", user_id=user).memory.id for i in range(3))
    path = tmp_path / "out.jsonl"
    exported = mnemo("export", "-u", user, "-o", str(path), "--progress")
    assert exported.code == 0 and f"exported 3 memories to {path}" in exported.err
    assert "exported 3" in exported.err.replace("\r", "\n")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert "header" in lines[0] and sorted(x["memory"]["id"] for x in lines[1:]) == ids
    to_stdout = mnemo("export", "-u", user, "--omit-embeddings")
    assert [json.loads(x).get("memory", {}).get("embedding") for x in to_stdout.out.splitlines()[1:]] == [
        None
    ] * 3

    dry = mnemo("forget", "-u", user, "--dry-run", "--json")
    assert dry.code == 0 and dry.json["deletedCount"] == 3 and dry.json["revision"] == 0
    gone = mnemo("forget", "-u", user, "--yes")
    assert gone.code == 0 and gone.out.startswith("deleted 3 memories")
    assert mnemo("list", "-u", user, "--json").json == {"memories": []}

    imported = mnemo("import", str(path), "--json")
    assert imported.code == 0 and imported.json["importedCount"] == 3
    again = mnemo("import", str(path), "--on-conflict", "fail")
    assert again.code == 1 and "failed:      3" in again.out and "MEMORY_ALREADY_EXISTS" in again.err
    assert mnemo("import", str(tmp_path / "missing.jsonl")).code == 2


def test_import_of_a_malformed_file_names_the_line_and_imports_nothing(
    mnemo: Any, client: MnemoClient, user: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = [
        json.dumps({"memory": {"id": f"m-{user}-{i}", "userId": user, "content": f"line {i}"}})
        for i in range(3)
    ]
    header = json.dumps({"header": {"formatVersion": 1}})
    cases = {
        "not JSON": ([header, good[0], '{"memory": {"content": "x"', good[1]], "line 3: not an export line"),
        "unknown field": (
            [header, good[0], good[1], '{"memory": {"colour": "red"}}'],
            "line 4: not an export line",
        ),
        "a second header": ([header, good[0], header, good[2]], "line 3: expected a memory line"),
        "neither": ([good[0], "{}", good[1]], "line 2: not an export line"),
    }
    for name, (lines, why) in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        run = mnemo("import", str(path))
        assert run.code == 2 and why in run.err and "nothing was imported" in run.err, (name, run.err)
        assert "UNKNOWN" not in run.err and "Exception iterating" not in run.err
        monkeypatch.setattr("sys.stdin", io.StringIO(path.read_text()))
        piped = mnemo("import", "-")
        assert piped.code == 2 and why in piped.err, (name, piped.err)
        with pytest.raises(ValueError, match=why):
            client.import_jsonl(path)
        assert client.list(user_id=user).memories == (), name


def test_watch_prints_events_as_json_lines(mnemo: Any, client: MnemoClient, user: str) -> None:
    first = client.create("one", user_id=user).memory
    client.create("two", user_id=user)
    run = mnemo("watch", "-u", user, "--from-revision", str(first.revision - 1), "--limit", "2", "--json")
    events = [json.loads(x) for x in run.out.splitlines()]
    assert run.code == 0 and [e["memory"]["content"] for e in events] == ["one", "two"]
    assert events[0]["type"] == "put"
    table = mnemo("watch", "-u", user, "--from-revision", str(first.revision - 1), "--limit", "1")
    assert table.out.split()[:3] == [str(first.revision), "put", first.id]


def test_reembed_dry_run(mnemo: Any, client: MnemoClient, user: str) -> None:
    client.create("re-embed me", user_id=user)
    run = mnemo("reembed", "-u", user, "--force", "--dry-run")
    assert run.code == 0 and run.out.startswith("would re-embed 1 memories with all-MiniLM-L6-v2")


def test_keys_create_list_revoke(mnemo: Any) -> None:
    created = mnemo("keys", "create", "--role", "reader", "--name", "cli key", "--json")
    assert created.code == 0 and created.json["secret"]
    key_id = created.json["apiKey"]["id"]
    assert key_id in mnemo("keys", "list").out
    other = mnemo("keys", "create", "--role", "reader", "--tenant", "cli-other", "--json").json["apiKey"]
    listed = mnemo("keys", "list", "--tenant", "cli-other", "--json").json["apiKeys"]
    assert [(k["id"], k["tenant"], k["role"]) for k in listed] == [(other["id"], "cli-other", "reader")]
    assert mnemo("keys", "revoke", key_id).out == f"revoked {key_id}\n"
    assert mnemo("keys", "revoke", "no-such-key").code == 1


def test_the_installed_command_uses_the_environment(server: Any, user: str) -> None:
    command = shutil.which("mnemo", path=os.path.dirname(sys.executable)) or "mnemo"
    env = {**os.environ, "MNEMO_ADDRESS": server.address}
    added = subprocess.run(
        [command, "--json", "add", "from a subprocess", "-u", user],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["memory"]["content"] == "from a subprocess"
    missing = subprocess.run([command, "get", "nope"], capture_output=True, text=True, env=env, timeout=60)
    assert missing.returncode == 1 and missing.stderr.startswith("error: NOT_FOUND MEMORY_NOT_FOUND")
    usage = subprocess.run([command, "get"], capture_output=True, text=True, env=env, timeout=60)
    assert usage.returncode == 2


def test_reads_take_min_revision(mnemo: Any, client: MnemoClient, user: str) -> None:
    written = client.create("Gil flies LH440 to Boston", user_id=user).memory
    token = str(written.revision)
    found = mnemo("search", "Boston", "-u", user, "--min-revision", token, "--json")
    assert found.code == 0 and int(found.json["revision"]) >= written.revision
    assert mnemo("get", written.id, "--min-revision", token).code == 0
    assert mnemo("list", "-u", user, "--min-revision", token).code == 0
    ahead = mnemo("search", "Boston", "-u", user, "--min-revision", str(10**15))
    assert ahead.code == 1 and ahead.err.startswith("error: OUT_OF_RANGE REVISION_AHEAD: ")
