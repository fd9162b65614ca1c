"""Issue 19 item 7: every package is checked by installed version against its minimum (torch < 2.1
lacks scaled_dot_product_attention), read from metadata without importing. A DLL-load OSError on
`import torch` (Windows) is seen by the worker: test_main_process_without_torch.py."""

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


def test_old_einops_is_reported_and_its_requirement_installs_the_update(monkeypatch, dependencies) -> None:
    monkeypatch.setitem(sys.modules, "einops", types.SimpleNamespace(__version__="0.6.1"))
    assert dependencies.missingPackages() == ["einops"]
    with pytest.raises(dependencies.SADMDependencyError) as caught:
        dependencies.checkDependencies()
    message = str(caught.value)
    assert "too old (einops 0.6.1)" in message and "pip_install('einops>=0.7')" in message


def test_a_package_without_metadata_is_taken_as_it_is(monkeypatch, dependencies) -> None:
    """Slicer's own SimpleITK may carry no version: importable is enough, never refused."""
    monkeypatch.setattr(dependencies, "installedVersion", lambda name: "unknown" if name == "SimpleITK" else "99")
    assert dependencies.missingPackages() == []


def test_requirements_file_gives_every_minimum(dependencies) -> None:
    assert dependencies.minimumVersions() == {"torch": "2.1", "safetensors": "0.4", "einops": "0.7"}


def test_versions_are_read_without_importing(monkeypatch, dependencies) -> None:
    monkeypatch.delitem(sys.modules, "einops", raising=False)
    assert dependencies.installedVersion("einops") is not None
    assert "einops" not in sys.modules


def test_current_torch_passes(monkeypatch, dependencies) -> None:
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(__version__="2.13.0"))
    assert dependencies.torchProblem() is None


def test_panel_device_line_says_torch_is_too_old(monkeypatch, dependencies) -> None:
    from SADMModuleLib import resources

    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(__version__="2.0.1"))
    line = resources.describeDevice()
    assert "2.0.1" in line and ">=2.1" in line
