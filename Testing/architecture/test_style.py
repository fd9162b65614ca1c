"""The tree stays as `ruff check` and `ruff format` want it (configured in pyproject.toml), so CI
(`.ci/run`) fails on a lint error or an unformatted file, as pre-commit does on a commit."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _ruff() -> list[str]:
    beside_python = Path(sys.executable).with_name("ruff")
    found = str(beside_python) if beside_python.is_file() else shutil.which("ruff")
    assert found is not None, "ruff is not installed: pip install -e '.[test]' installs the pinned version"
    return [found]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_the_tree_passes_ruff(command):
    result = subprocess.run([*_ruff(), *command, "--no-cache", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
