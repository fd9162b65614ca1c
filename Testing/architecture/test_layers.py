"""The package layout is the architecture (ARCHITECTURE.md): each layer imports only the layers below
it, no `sadm` command imports another, and the request layer works without PyTorch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "SADMExtension" / "sadm"

LAYERS = [
    {"errors", "defaults", "config", "devices"},
    {"io"},
    {"data"},
    {"phantoms"},
    {"diffusion"},
    {"networks"},
    {"storage"},
    {"generation"},
    {"evaluation"},
    {"training"},
    {"serving"},
    {"cli"},
]
"""Bottom to top. A module may import its own layer and any layer below."""

BASE_UTILITIES = {"storage.atomic"}
"""Leaf modules any layer may use (atomic file writes have no dependencies of their own)."""


def _rank(unit: str) -> int:
    return next(rank for rank, layer in enumerate(LAYERS) if unit in layer)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every `sadm` import in a file, function-level ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sadm":
            if node.module == "sadm":
                found += [(node.lineno, f"sadm.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "sadm"]
    return found


def _unit(module: str) -> str | None:
    """'sadm.io.readers' -> 'io'; the package's public names (`sadm.Engine`) -> None (top level)."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    name = parts[1]
    return name if any(name in layer for layer in LAYERS) else None


def layer_violations(package: Path = PACKAGE) -> list[str]:
    problems = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if len(relative.parts) == 1 and relative.name == "__init__.py":
            continue  # the public API re-exports from any layer
        own = relative.parts[0].removesuffix(".py")
        for line, module in _imports(path):
            target = _unit(module)
            if ".".join(module.split(".")[1:3]) in BASE_UTILITIES:
                continue
            if target is None:
                if own != "cli":
                    problems.append(f"{relative}:{line} imports {module} (the public API is for front ends)")
                continue
            if _rank(target) > _rank(own):
                problems.append(f"{relative}:{line} ({own}) imports {module} from the higher layer {target}")
    return problems


def test_every_package_and_module_belongs_to_a_layer():
    units = {
        p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()
    }
    assert units - {"__init__"} == set().union(*LAYERS)


def test_no_layer_imports_a_layer_above_it():
    assert layer_violations() == []


def test_the_check_catches_an_upward_import(tmp_path):
    """The rule can fail: a network module importing the Engine is reported."""
    fake = tmp_path / "sadm"
    (fake / "networks").mkdir(parents=True)
    (fake / "networks" / "unet.py").write_text("from sadm.generation.engine import Engine\n")
    assert layer_violations(fake) == [
        "networks/unet.py:1 (networks) imports sadm.generation.engine from the higher layer generation"
    ]


def test_no_command_imports_another():
    commands = sorted((PACKAGE / "cli").glob("*.py"))
    shared = {"sadm.cli.options"}
    offenders = []
    for path in commands:
        if path.name in ("main.py", "__init__.py", "__main__.py"):
            continue
        for line, module in _imports(path):
            if module.startswith("sadm.cli") and module not in shared:
                offenders.append(f"cli/{path.name}:{line} imports {module}")
    assert offenders == []


@pytest.mark.parametrize(
    "module", ["sadm.generation.request", "sadm.generation.context", "sadm.storage.registry", "sadm"]
)
def test_the_request_layer_imports_without_torch(module):
    """The Slicer module validates a request before PyTorch is installed."""
    code = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'numpy'):\n"
        "            raise ImportError(f'{name} blocked')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        f"import {module}\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr
