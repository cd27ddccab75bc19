"""The server tests' fake OpenAI-compatible LLM (server/tests/extraction/fake_llm.py),
loaded by path: that folder is another package's."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[3] / "server" / "tests" / "extraction" / "fake_llm.py"
_spec = importlib.util.spec_from_file_location("mnemo_fake_llm", _PATH)
assert _spec is not None and _spec.loader is not None
fake_llm = importlib.util.module_from_spec(_spec)
sys.modules["mnemo_fake_llm"] = fake_llm
_spec.loader.exec_module(fake_llm)

FakeLlm = fake_llm.FakeLlm
Reply = fake_llm.Reply
Call = fake_llm.Call
KEY = fake_llm.KEY
memories = fake_llm.memories
