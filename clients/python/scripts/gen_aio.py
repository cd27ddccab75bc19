"""Generates the asyncio facade of the Python SDK from the blocking one.

    python clients/python/scripts/gen_aio.py           write the generated modules
    python clients/python/scripts/gen_aio.py --check   exit 1 when a committed one differs

The blocking modules are the source of truth; each async twin is the same code
with these changes, found by reading the syntax tree (no markers in the source):

- `def` becomes `async def` where the body awaits something: a call to an async
  method of the same class (or its base), `time.sleep`, `next`, a stub method
  that answers once (unary or client-streaming, from the proto descriptors),
  `<self attribute>.close()`, or a parameter listed in AWAITED_PARAMETERS;
  `__enter__`, `__exit__`, `__next__` and `close` always. A generator that
  awaits becomes an async generator, and is iterated, not awaited.
- `for` becomes `async for` over a stream call (`call`), an async generator
  method, or a parameter annotated `Iterable[...]` (wrapped in
  `mnemo._core.streams.aiter_any`, which also takes an async iterable, as the
  annotation then says); `yield from` becomes a loop; an awaited `@property`
  becomes a method.
- Names: the RENAMES table (classes, iterator types, dunders, `time` to
  `asyncio`, the modules), `close` to `aclose` in the stream classes, and
  `grpc.<channel>` to `grpc.aio.<channel>`.
- Docstrings: the DOCSTRINGS overrides; elsewhere each docstring's "Example:"
  section is dropped (the examples are the blocking client's doctests).

What the async side needs and the blocking one has no twin of lives, hand
written, in `mnemo._core.streams`. The output is sorted and formatted by ruff.
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "clients/python/src/mnemo"
RUFF = ROOT / ".venv/bin/ruff"

#: source module -> generated module, in the package.
MODULES = {
    "_calls.py": "_acalls.py",
    "_streams.py": "_astreams.py",
    "_transfer.py": "_atransfer.py",
    "_keys.py": "_akeys.py",
    "_extract.py": "_aextract.py",
    "_search.py": "_asearch.py",
    "client.py": "aio.py",
}

RENAMES = {
    "Calls": "AsyncCalls",
    "Transfer": "AsyncTransfer",
    "Keys": "AsyncKeys",
    "Extraction": "AsyncExtraction",
    "Search": "AsyncSearch",
    "MnemoClient": "AsyncMnemoClient",
    "ExportStream": "AsyncExportStream",
    "Watch": "AsyncWatch",
    "Iterator": "AsyncIterator",
    "Generator": "AsyncGenerator",
    "__enter__": "__aenter__",
    "__exit__": "__aexit__",
    "__next__": "__anext__",
    "next": "anext",
    "time": "asyncio",
    "_calls": "_acalls",
    "_streams": "_astreams",
    "_transfer": "_atransfer",
    "_keys": "_akeys",
    "_extract": "_aextract",
    "_search": "_asearch",
}
#: Renames inside these classes only.
CLASS_RENAMES = {"ExportStream": {"close": "aclose"}, "Watch": {"close": "aclose"}}
GRPC_AIO = {"insecure_channel", "secure_channel", "Channel"}
ALWAYS_ASYNC = {"__enter__", "__exit__", "__next__", "close"}
#: Parameters that are awaitable callables, by the function that calls them.
AWAITED_PARAMETERS = {"_unary": {"method"}, "_pages": {"fetch"}}
STREAM_CALLS = {"call"}
#: Classes whose methods call each other's through `self`: the client and its bases.
CLASS_GROUPS = {
    "MnemoClient": "Calls",
    "Transfer": "Calls",
    "Keys": "Calls",
    "Extraction": "Calls",
    "Search": "Calls",
}
EXTRA_IMPORTS = (
    "from collections.abc import AsyncIterable\nfrom mnemo._core.streams import aenumerate, aiter_any\n"
)

DOCSTRINGS = {
    ("aio.py", ""): '''\
"""`AsyncMnemoClient`: the asyncio client, with the methods of `MnemoClient` as coroutines.

Methods that stream (`iter_memories`, `iter_history`, `iter_api_keys`,
`stream_search`, `export`, `watch`, `reembed`) return async iterators at once
instead of being awaited.
"""''',
    ("aio.py", "MnemoClient"): '''\
"""An asyncio client of a Mnemo server; the arguments are those of `MnemoClient`.

    Make it inside a running event loop, and close it with `await client.close()`
    or `async with`.

    Example:
        >>> import asyncio
        >>> async def main() -> str:
        ...     async with AsyncMnemoClient(address) as c:
        ...         created = await c.create("Carol works in Oslo", user_id="doc-async")
        ...         return (await c.get(created.memory.id)).content
        >>> asyncio.run(main())
        'Carol works in Oslo'
    """''',
    ("_acalls.py", ""): '''\
"""`AsyncCalls`: the plumbing of `AsyncMnemoClient` (see `mnemo._calls`).
"""''',
    ("_atransfer.py", ""): '''\
"""`AsyncTransfer`: `AsyncMnemoClient`'s import and export methods (see `mnemo._transfer`)."""''',
    ("_akeys.py", ""): '''\
"""`AsyncKeys`: `AsyncMnemoClient`'s API key methods (see `mnemo._keys`)."""''',
    ("_aextract.py", ""): '''\
"""`AsyncExtraction`: `AsyncMnemoClient`'s ExtractionService methods (see `mnemo._extract`)."""''',
    ("_asearch.py", ""): '''\
"""`AsyncSearch`: `AsyncMnemoClient`'s search methods (see `mnemo._search`)."""''',
    ("_astreams.py", ""): '''\
"""The two streams the asyncio client returns: `AsyncExportStream` and `AsyncWatch`.
"""''',
    ("_astreams.py", "ExportStream"): '''\
"""The memories of an export, in order; `await stream.header()` is the export's header."""\
''',
}


def answered_once() -> set[str]:
    """The RPCs whose call is awaited: those of proto/mnemo/v1 that do not stream their answer."""
    rpc = re.compile(r"^\s*rpc\s+(\w+)\s*\(\s*(?:stream\s+)?[\w.]+\s*\)\s*returns\s*\(\s*(stream\s+)?", re.M)
    return {
        match[1]
        for proto in sorted((ROOT / "proto/mnemo/v1").glob("*.proto"))
        for match in rpc.finditer(proto.read_text(encoding="utf-8"))
        if not match[2]
    }


@dataclass
class Function:
    node: ast.FunctionDef
    cls: str | None
    is_async: bool = False
    generator: bool = False
    iterable_params: set[str] = field(default_factory=set)


def own_nodes(fn: ast.AST) -> list[ast.AST]:
    """The nodes of a function's body, not those of nested functions and lambdas."""
    out: list[ast.AST] = []
    stack = list(ast.iter_child_nodes(fn))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


class Transform:
    def __init__(self, source: str, methods: dict[tuple[str, str], Function], rpcs: set[str]) -> None:
        self.source = source
        self.tree = ast.parse(source)
        self.rpcs = rpcs
        self.lines = source.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))
        self.edits: list[tuple[int, int, str]] = []
        self.functions: list[Function] = []
        self.methods = methods  # (class group, name) -> Function, over every source
        self.class_spans: dict[str, tuple[int, int]] = {}
        self._collect(self.tree, None, set())

    def offset(self, line: int, col: int) -> int:
        return self.starts[line - 1] + len(self.lines[line - 1].encode()[:col].decode())

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (
            self.offset(node.lineno, node.col_offset),  # type: ignore[attr-defined]
            self.offset(node.end_lineno, node.end_col_offset),  # type: ignore[attr-defined]
        )

    def text(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.source[start:end]

    def _collect(self, node: ast.AST, cls: str | None, outer: set[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                self.class_spans[child.name] = self.span(child)
                self._collect(child, child.name, outer)
            elif isinstance(child, ast.FunctionDef):
                params = {
                    a.arg
                    for a in child.args.args + child.args.kwonlyargs
                    if isinstance(a.annotation, ast.Subscript) and dotted(a.annotation.value) == "Iterable"
                }
                fn = Function(child, cls, iterable_params=params | outer)
                fn.generator = any(isinstance(n, ast.Yield | ast.YieldFrom) for n in own_nodes(child))
                self.functions.append(fn)
                if cls is not None and isinstance(node, ast.ClassDef):
                    self.methods[(CLASS_GROUPS.get(cls, cls), child.name)] = fn
                self._collect(child, cls, params | outer)

    # -- what becomes async -----------------------------------------------------

    def awaited(self, call: ast.Call, fn: Function) -> bool:
        name = dotted(call.func)
        if name in {"next", "time.sleep"} or name in AWAITED_PARAMETERS.get(fn.node.name, ()):
            return True
        if name.startswith("self.") and name.endswith(".close") and name != "self.close":
            return True
        parts = name.split(".")
        if len(parts) == 3 and parts[:2] in (["self", "_stub"], ["self", "_admin"]):
            return parts[2] in self.rpcs
        if len(parts) == 2 and parts[0] == "self":
            target = self.method(fn, parts[1])
            return target is not None and target.is_async and not target.generator
        return False

    def method(self, fn: Function, name: str) -> Function | None:
        """The method `self.name` of the class `fn` belongs to."""
        if fn.cls is None:
            return None
        return self.methods.get((CLASS_GROUPS.get(fn.cls, fn.cls), name))

    def async_iter(self, loop: ast.For, fn: Function) -> bool:
        it = loop.iter
        if isinstance(it, ast.Name):
            return it.id in STREAM_CALLS or it.id in fn.iterable_params
        if isinstance(it, ast.Call):
            name = dotted(it.func)
            if name == "enumerate" and it.args and dotted(it.args[0]) in fn.iterable_params:
                return True
            if name.startswith("self.") and name.count(".") == 1:
                target = self.method(fn, name[5:])
                return target is not None and target.is_async and target.generator
        return False

    def update(self) -> bool:
        changed = False
        for fn in self.functions:
            if fn.is_async:
                continue
            nodes = own_nodes(fn.node)
            if (
                (fn.node.name in ALWAYS_ASYNC and fn.cls is not None)
                or any(isinstance(n, ast.Call) and self.awaited(n, fn) for n in nodes)
                or any(isinstance(n, ast.For) and self.async_iter(n, fn) for n in nodes)
            ):
                fn.is_async = changed = True
        return changed

    # -- the edits --------------------------------------------------------------

    def edit(self, start: int, end: int, text: str) -> None:
        self.edits.append((start, end, text))

    def make_edits(self, out_name: str) -> None:
        parents = {child: node for node in ast.walk(self.tree) for child in ast.iter_child_nodes(node)}
        self._docstrings(out_name)
        for fn in self.functions:
            if not fn.is_async:
                continue
            start = self.offset(fn.node.lineno, fn.node.col_offset)
            self.edit(start, start, "async ")
            for deco in fn.node.decorator_list:
                if dotted(deco) == "property":
                    _, e = self.span(deco)
                    self.edit(self.offset(deco.lineno, 0), self.source.index("\n", e) + 1, "")
            for node in own_nodes(fn.node):
                if isinstance(node, ast.Call) and self.awaited(node, fn):
                    s, _ = self.span(node)
                    wrap = isinstance(parents.get(node), ast.Attribute | ast.Subscript)
                    self.edit(s, s, "(await " if wrap else "await ")
                    if wrap:
                        _, e = self.span(node)
                        self.edit(e, e, ")")
                elif isinstance(node, ast.For) and self.async_iter(node, fn):
                    s = self.offset(node.lineno, node.col_offset)
                    self.edit(s, s, "async ")
                    it = node.iter
                    if isinstance(it, ast.Name) and it.id in fn.iterable_params:
                        s, e = self.span(it)
                        self.edit(s, e, f"aiter_any({it.id})")
                    elif isinstance(it, ast.Call) and dotted(it.func) == "enumerate":
                        s, e = self.span(it.func)
                        self.edit(s, e, "aenumerate")
                elif isinstance(node, ast.Expr) and isinstance(node.value, ast.YieldFrom):
                    s, e = self.span(node)
                    pad = " " * node.col_offset
                    inner = self.text(node.value.value)
                    self.edit(s, e, f"for _item in {inner}:\n{pad}    yield _item")
        for node in ast.walk(self.tree):
            if isinstance(node, ast.arg) and isinstance(node.annotation, ast.Subscript):
                if dotted(node.annotation.value) == "Iterable":
                    inner = self.text(node.annotation.slice)
                    s, e = self.span(node.annotation)
                    self.edit(s, e, f"Iterable[{inner}] | AsyncIterable[{inner}]")
            elif isinstance(node, ast.Subscript) and dotted(node.value) == "Generator":
                first = self.text(node.slice.elts[0])  # type: ignore[attr-defined]
                s, e = self.span(node)
                self.edit(s, e, f"AsyncGenerator[{first}, None]")
            elif isinstance(node, ast.Attribute) and dotted(node.value) == "grpc" and node.attr in GRPC_AIO:
                _, e = self.span(node)
                self.edit(e - len(node.attr), e - len(node.attr), "aio.")

    def _docstrings(self, out_name: str) -> None:
        owners: list[tuple[str, ast.AST]] = [("", self.tree)]
        owners += [(n.name, n) for n in ast.walk(self.tree) if isinstance(n, ast.ClassDef | ast.FunctionDef)]
        for name, owner in owners:
            body = getattr(owner, "body", [])
            if not (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)):
                continue
            if not isinstance(body[0].value.value, str):
                continue
            s, e = self.span(body[0])
            overridable = isinstance(owner, ast.Module | ast.ClassDef)
            override = DOCSTRINGS.get((out_name, name)) if overridable else None
            if override is not None:
                self.edit(s, e, override)
                continue
            text = self.source[s:e]
            cut = text.find("\n\n" + " " * body[0].col_offset + "Example:")
            if cut >= 0:
                self.edit(s, e, text[:cut] + "\n" + " " * body[0].col_offset + '"""')

    def renames(self) -> None:
        edited = sorted((s, e) for s, e, _ in self.edits if e > s)
        tokens = tokenize.generate_tokens(io.StringIO(self.source).readline)
        for tok in tokens:
            if tok.type != tokenize.NAME:
                continue
            start = self.offset(*tok.start)
            end = self.offset(*tok.end)
            if any(s <= start < e for s, e in edited):
                continue
            new = RENAMES.get(tok.string)
            for cls, table in CLASS_RENAMES.items():
                s, e = self.class_spans.get(cls, (0, 0))
                if s <= start < e and tok.string in table:
                    new = table[tok.string]
            if new is not None:
                self.edit(start, end, new)

    def result(self) -> str:
        out, last = [], 0
        for start, end, text in sorted(self.edits, key=lambda edit: (edit[0], edit[1])):
            if start < last:
                raise SystemExit(f"gen_aio: overlapping edits at offset {start}")
            out.append(self.source[last:start])
            out.append(text)
            last = end
        out.append(self.source[last:])
        return "".join(out)


def with_imports(code: str) -> str:
    marker = "from __future__ import annotations\n"
    return code.replace(marker, marker + EXTRA_IMPORTS, 1)


def ruff(code: str, path: Path) -> str:
    name = str(path.relative_to(ROOT))
    fix = [str(RUFF), "check", "--fix", "--quiet", "--select", "I,F401", "--stdin-filename", name, "-"]
    code = subprocess.run(fix, input=code, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    fmt = [str(RUFF), "format", "--quiet", "--stdin-filename", name, "-"]
    return subprocess.run(fmt, input=code, capture_output=True, text=True, check=True, cwd=ROOT).stdout


def generate() -> dict[Path, str]:
    rpcs = answered_once()
    methods: dict[tuple[str, str], Function] = {}
    transforms = {
        out: Transform((PACKAGE / src).read_text(encoding="utf-8"), methods, rpcs)
        for src, out in MODULES.items()
    }
    while any([t.update() for t in transforms.values()]):
        pass
    result = {}
    for out, transform in transforms.items():
        transform.make_edits(out)
        transform.renames()
        header = f"# Generated from mnemo/{_source(out)} by clients/python/scripts/gen_aio.py; do not edit.\n"
        result[PACKAGE / out] = ruff(header + with_imports(transform.result()), PACKAGE / out)
    return result


def _source(out: str) -> str:
    return next(src for src, o in MODULES.items() if o == out)


def main(argv: list[str]) -> int:
    check = argv[1:] == ["--check"]
    stale = []
    for path, code in generate().items():
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != code:
                stale.append(path.relative_to(ROOT))
        else:
            path.write_text(code, encoding="utf-8")
    if stale:
        names = ", ".join(map(str, stale))
        print(f"gen_aio: {names} differ from what gen_aio.py makes of the blocking modules", file=sys.stderr)
        print("  run 'bash .ci/generate' and commit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
