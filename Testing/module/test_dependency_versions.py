"""Issue 19 item 7: torch is checked by version (< 2.1 lacks scaled_dot_product_attention), and a
DLL-load OSError on `import torch` (Windows) becomes a clear message instead of escaping."""

from __future__ import annotations

import sys
import types

import pytest


@pytest.fixture
def dependencies():
    from SADMModuleLib import dependencies

    return dependencies


def test_old_torch_is_reported_with_versions_and_fix(monkeypatch, dependencies) -> None:
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(__version__="2.0.1+cu118"))
    assert "torch" in dependencies.missingPackages()
    with pytest.raises(dependencies.SADMDependencyError) as caught:
        dependencies.checkDependencies()
    message = str(caught.value)
    assert "2.0.1" in message and ">=2.1" in message and "installTorch" in message


def test_dll_load_error_is_a_clear_message(monkeypatch, dependencies) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    real_import = __import__

    def failing_import(name, *args, **kwargs):
        if name == "torch":
            raise OSError("[WinError 126] The specified module could not be found: c10.dll")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr("builtins.__import__", failing_import)
    monkeypatch.setattr(dependencies.importlib, "import_module", lambda name: failing_import(name))
    assert "torch" in dependencies.missingPackages()
    with pytest.raises(dependencies.SADMDependencyError, match="cannot be loaded"):
        dependencies.checkDependencies()


def test_current_torch_passes(monkeypatch, dependencies) -> None:
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(__version__="2.13.0"))
    assert dependencies.torchProblem() is None


def test_panel_device_line_says_torch_is_too_old(monkeypatch, dependencies) -> None:
    from SADMModuleLib import resources

    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(__version__="2.0.1"))
    line = resources.describeDevice()
    assert "2.0.1" in line and ">=2.1" in line
