"""What a new user of the repository meets first: the license the packages
declare is there (and ships in each package), and running the server from the
repository root leaves git status clean."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [ROOT, ROOT / "clients" / "python", ROOT / "clients" / "node"]


def declared_license(package: Path) -> str:
    if (package / "package.json").exists():
        return str(json.loads((package / "package.json").read_text())["license"])
    return str(tomllib.loads((package / "pyproject.toml").read_text())["project"]["license"])


def test_every_package_declares_apache_2_and_carries_its_text() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    for package in PACKAGES:
        assert declared_license(package) == "Apache-2.0", package
        assert (package / "LICENSE").read_text() == text, package


def test_the_default_data_directory_is_ignored() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "mnemo-data/mnemo.db"], cwd=ROOT, check=False, timeout=30
    )
    assert ignored.returncode == 0, "mnemo-data/ (the server's default --data-dir) is not git-ignored"
