"""The layer contracts ([tool.importlinter] in pyproject.toml, run by
`lint-imports` in .ci/test) hold on the real tree and fail on a wrong import:
each case copies both packages to a temporary directory, adds one import that
breaks one contract, and runs lint-imports on the copy. Plus what
import-linter cannot see: no server module imports a private name from
another server package."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
SERVER = ROOT / "server" / "mnemo_server"
SDK = ROOT / "clients" / "python" / "src" / "mnemo"


def lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "400"}  # no wrapped lines
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_real_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
    for contract in ("server layers", "generated mnemo.v1", "the API reaches", "the SDK never"):
        assert contract in result.stdout


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both packages and the config, copied once; each case edits one file and restores it."""
    root = tmp_path_factory.mktemp("layers")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(SERVER, root / "mnemo_server", ignore=skip)
    shutil.copytree(SDK, root / "mnemo", ignore=skip)
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


# (file in the copy, the line added, what the report must say)
WRONG = {
    "store imports api": (
        "mnemo_server/store/base.py",
        "from mnemo_server.api import status as _wrong",
        "mnemo_server.store.base -> mnemo_server.api.status",
    ),
    "models import service": (
        "mnemo_server/models.py",
        "import mnemo_server.service as _wrong",
        "mnemo_server.models -> mnemo_server.service",
    ),
    "index imports store": (
        "mnemo_server/index/base.py",
        "from mnemo_server.store import base as _wrong",
        "mnemo_server.index.base -> mnemo_server.store.base",
    ),
    "embed imports cache": (
        "mnemo_server/embed/cached.py",
        "from mnemo_server.cache import layers as _wrong",
        "mnemo_server.embed.cached -> mnemo_server.cache.layers",
    ),
    "store imports generated code": (
        "mnemo_server/store/base.py",
        "from mnemo.v1 import memory_pb2 as _wrong",
        "mnemo_server.store.base -> mnemo.v1.memory_pb2",
    ),
    "api imports the index": (
        "mnemo_server/api/status.py",
        "from mnemo_server.index import base as _wrong",
        "mnemo_server.api.status -> mnemo_server.index.base",
    ),
    "SDK imports the server": (
        "mnemo/errors.py",
        "import mnemo_server.errors as _wrong",
        "mnemo.errors -> mnemo_server.errors",
    ),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_a_wrong_import_breaks_a_contract(copy: Path, case: str) -> None:
    relative, line, reported = WRONG[case]
    target = copy / relative
    original = target.read_text()
    target.write_text(original + f"\n{line}  # noqa\n")
    try:
        result = lint_imports(copy, pythonpath=copy)
    finally:
        target.write_text(original)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
    assert reported in result.stdout, result.stdout  # the copy was analysed, not the installed tree


def test_an_ignore_entry_that_matches_nothing_is_an_error(copy: Path) -> None:
    """A stale ignore_imports entry (its import removed) fails, so it cannot stay."""
    config = copy / "pyproject.toml"
    original = config.read_text()
    anchor = '  "mnemo.mcp.schema -> mnemo.v1.*",\n'
    assert anchor in original
    config.write_text(
        original.replace(anchor, anchor + '  "mnemo_server.api.status -> mnemo_server.store.base",\n')
    )
    try:
        result = lint_imports(copy, pythonpath=copy)
    finally:
        config.write_text(original)
    assert result.returncode != 0
    assert "mnemo_server.api.status -> mnemo_server.store.base" in result.stdout + result.stderr


# ---------------------------------------------------------------- private names

# Imports of a private name across server packages today, with the change that
# removes each: delete the entry when it lands.
PRIVATE_ALLOWED: set[tuple[str, str, str]] = set()


def module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def private_imports(package: Path) -> set[tuple[str, str, str]]:
    """(importer, module, name) for each `from module import _name` where
    module lies in another top-level subpackage of the server than the importer."""
    found = set()
    for path in package.rglob("*.py"):
        importer = module_name(path, package)
        here = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = here[: len(here) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if not module.startswith("mnemo_server"):
                continue
            if module.split(".")[:2] == importer.split(".")[:2]:
                continue  # inside one package: its own business
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.add((importer, module, alias.name))
    return found


def test_no_server_module_imports_a_private_name_from_another_package() -> None:
    found = private_imports(SERVER)
    assert found - PRIVATE_ALLOWED == set(), "a private name crosses packages: make it public"
    assert PRIVATE_ALLOWED - found == set(), "fixed: delete its PRIVATE_ALLOWED entry"


def test_the_private_name_check_sees_a_relative_import(tmp_path: Path) -> None:
    package = tmp_path / "mnemo_server"
    (package / "cache").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "cache" / "__init__.py").write_text("")
    (package / "cache" / "redis.py").write_text("_secret = 1\n")
    (package / "ratelimit.py").write_text("from .cache.redis import _secret\n")
    (package / "cache" / "local.py").write_text("from .redis import _secret\n")  # same package: fine
    assert private_imports(package) == {("mnemo_server.ratelimit", "mnemo_server.cache.redis", "_secret")}
