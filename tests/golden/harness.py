"""Runs the golden cases: a fresh server per SDK (same start, same state),
a runner per SDK, and the canonical transcripts and wire logs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CASES = HERE / "cases"
EXPECTED = HERE / "expected"

sys.path.insert(0, str(HERE))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from canonical import Placeholders, canonical  # noqa: E402
from recorder import RequestRecorder  # noqa: E402

from mnemo_server.app import App  # noqa: E402
from mnemo_server.config import load_settings  # noqa: E402


def topics() -> dict[str, list[dict[str, Any]]]:
    """Cases by topic (file stem), in file order."""
    return {path.stem: yaml.safe_load(path.read_text())["cases"] for path in sorted(CASES.glob("*.yaml"))}


@dataclass
class Server:
    app: App
    address: str
    recorder: RequestRecorder
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    data: tempfile.TemporaryDirectory[str]
    llm: Any

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.app.stop(grace=1), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()
        self.data.cleanup()
        self.llm.close()


def _fake_llm_module() -> Any:
    """server/tests/extraction/fake_llm.py, loaded by path (it belongs to another test package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "golden_fake_llm", ROOT / "server/tests/extraction/fake_llm.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["golden_fake_llm"] = module
    spec.loader.exec_module(module)
    return module


LLM_KEY_ENV = "MNEMO_GOLDEN_LLM_KEY"


def replay_llm() -> Any:
    """The extraction LLM of golden servers: recorded chat.completion answers
    (llm_replies.json), chosen by a text the prompt contains; an unrecorded
    prompt gets HTTP 500."""
    fake = _fake_llm_module()
    recorded = json.loads((HERE / "llm_replies.json").read_text())["replies"]

    def script(call: Any) -> Any:
        for entry in recorded:
            if entry["match"] in call.user:
                return fake.Reply(completion=entry["completion"])
        return fake.Reply(status=500)

    os.environ[LLM_KEY_ENV] = fake.KEY
    return fake.FakeLlm(script)


def start_server(embedder: Any = None) -> Server:
    data = tempfile.TemporaryDirectory(prefix="mnemo-golden-")
    llm = replay_llm()
    settings = load_settings(
        env={},
        overrides={
            "server.address": "127.0.0.1:0",
            "server.data_dir": data.name,
            "index.snapshot_interval_s": 0,
            "server.sweep_interval_s": 0.1,
            "extraction.provider": "openai",
            "extraction.model": "golden-model",
            "extraction.base_url": llm.base_url,
            "extraction.api_key_env": LLM_KEY_ENV,
            "extraction.retries": 0,
        },
    )
    recorder = RequestRecorder()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    app = App(settings, embedder=embedder, interceptors=[recorder])

    async def boot() -> int:
        port = await app.start()
        await app.ready(timeout=120)
        return port

    port = asyncio.run_coroutine_threadsafe(boot(), loop).result(180)
    return Server(app, f"127.0.0.1:{port}", recorder, loop, thread, data, llm)


def run_python(cases: list[dict[str, Any]], address: str) -> dict[str, Any]:
    return _run([sys.executable, str(HERE / "runner_python.py")], cases, address)


def run_node(cases: list[dict[str, Any]], address: str) -> dict[str, Any]:
    return _run(["node", str(HERE / "runner_node.mjs")], cases, address)


def _run(command: list[str], cases: list[dict[str, Any]], address: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cases_file, out_file = Path(tmp) / "cases.json", Path(tmp) / "out.json"
        cases_file.write_text(json.dumps(cases))
        done = subprocess.run(
            [*command, str(cases_file), address, str(out_file)],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=ROOT,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} runner failed:\n{done.stdout}\n{done.stderr}")
        return json.loads(out_file.read_text())  # type: ignore[no-any-return]


def canonical_transcripts(raw: dict[str, Any]) -> dict[str, Any]:
    """Each case's transcript with placeholders numbered per case."""
    return {name: canonical(steps, Placeholders()) for name, steps in raw.items()}


def canonical_wire(recorder: RequestRecorder) -> dict[str, Any]:
    return {name: canonical(calls, Placeholders()) for name, calls in recorder.calls.items()}


def expected_path(topic: str) -> Path:
    return EXPECTED / f"{topic}.json"


def dump(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
