"""The asyncio facade is generated from the blocking one (scripts/gen_aio.py): the
committed modules are what the generator makes now, and the generator makes the
changes it promises from the blocking source alone."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).parents[1] / "scripts" / "gen_aio.py"


def gen_aio() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_aio", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_aio"] = module
    spec.loader.exec_module(module)
    return module


def transform(source: str) -> str:
    gen = gen_aio()
    t = gen.Transform(source, {}, {"GetMemory", "ImportMemories"})
    while t.update():
        pass
    t.make_edits("aio.py")
    t.renames()
    return str(t.result())


def test_the_committed_async_modules_are_what_the_generator_makes() -> None:
    for path, code in gen_aio().generate().items():
        assert path.read_text(encoding="utf-8") == code, f"{path.name} is stale: run bash .ci/generate"


def test_a_new_blocking_method_gets_its_async_twin() -> None:
    source = '''
import time
from collections.abc import Iterable, Iterator


class Calls:
    def _unary(self, method, request):
        time.sleep(0)
        return method(request)

    def _server_stream(self, method, request) -> Iterator[int]:
        call = method(request)
        for message in call:
            yield message


class MnemoClient(Calls):
    def get(self, id: str) -> str:
        """Gets.

        Example:
            >>> client.get("x")
        """
        return self._unary(self._stub.GetMemory, id).memory

    def follow(self) -> Iterator[int]:
        return self._server_stream(self._stub.WatchMemories, None)

    def load(self, items: Iterable[int]) -> int:
        def requests() -> Iterator[int]:
            for position, item in enumerate(items):
                yield item
        return self._stub.ImportMemories(requests())

    @property
    def name(self) -> str:
        return "n"
'''
    out = transform(source)
    assert "async def _unary(self, method, request):" in out
    assert "await asyncio.sleep(0)" in out and "return await method(request)" in out
    assert "async def _server_stream(self, method, request) -> AsyncIterator[int]:" in out
    assert "async for message in call:" in out
    assert "return (await self._unary(self._stub.GetMemory, id)).memory" in out
    assert "class AsyncMnemoClient(AsyncCalls):" in out
    assert "    def follow(self) -> AsyncIterator[int]:" in out  # a stream is returned, not awaited
    assert "async def load(self, items: Iterable[int] | AsyncIterable[int]) -> int:" in out
    assert "async for position, item in aenumerate(items):" in out
    assert "return await self._stub.ImportMemories(requests())" in out
    assert "Example:" not in out and '"""Gets.\n        """' in out
    assert "@property\n    def name" in out  # nothing to await: still a property
