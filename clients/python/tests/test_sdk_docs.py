"""The examples of the docstrings and of the README, run against the real server."""

from __future__ import annotations

import doctest
import re
from pathlib import Path
from typing import Any

import pytest

import mnemo
from mnemo import _requests, _retry, _search, aio, client, errors

README = Path(__file__).parents[1] / "README.md"
MODULES = [mnemo, client, _search, aio, errors, _retry, _requests]
FINDER = doctest.DocTestFinder(exclude_empty=True)
DOCTESTS = sorted(
    {test.name: test for module in MODULES for test in FINDER.find(module) if test.examples}.values(),
    key=lambda test: test.name,
)


def test_the_public_methods_have_examples() -> None:
    # The client's methods, whether written in client.py or in a part it inherits (_search.py).
    names = {test.name.removeprefix("mnemo.client.").removeprefix("mnemo._search.") for test in DOCTESTS}
    names |= {name.replace("Search.", "MnemoClient.", 1) for name in names}
    for method in [
        "create",
        "get",
        "update",
        "iter_memories",
        "search",
        "batch_write",
        "history",
        "get_stats",
    ]:
        assert f"MnemoClient.{method}" in names


@pytest.mark.parametrize("test", DOCTESTS, ids=[t.name for t in DOCTESTS])
def test_docstring_examples(test: doctest.DocTest, server: Any) -> None:
    with mnemo.MnemoClient(server.address) as c:
        test.globs = {**vars(mnemo), "client": c, "address": server.address}
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        runner.run(test, out=lambda text: pytest.fail(text, pytrace=False))
        assert runner.summarize(verbose=False).failed == 0


TEXT = README.read_text()
# Each block padded with the lines above it, so that a failure names its README line.
BLOCKS = [
    "\n" * TEXT.count("\n", 0, m.start(1)) + m.group(1)
    for m in re.finditer(r"```python\n(.*?)```", TEXT, flags=re.S)
]


@pytest.mark.parametrize("source", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_examples(source: str, server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNEMO_ADDRESS", server.address)
    monkeypatch.delenv("MNEMO_API_KEY", raising=False)
    exec(compile(source, str(README), "exec"), {"__name__": "readme"})
