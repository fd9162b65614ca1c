"""Fixtures of the SADM module tests: the Slicer harness, a fresh scene per test, a tiny model.

The harness (slicerharness/) is installed before SADMModule is imported, so the module runs on the
real MRML scene of the slicer-core wheel with PySide6 standing in for PythonQt.
"""

from __future__ import annotations

import pytest

import slicerharness

slicerharness.install()

import slicer  # noqa: E402

import SADMModule  # noqa: E402  (needs the harness)


@pytest.fixture
def scene():
    """A fresh scene laid out as Slicer starts one; it becomes slicer.mrmlScene."""
    return slicerharness.new_scene()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """An untrained tiny SADM model folder (grid 8×16×16, up to 6 frames): fast, and enough to test
    everything but image quality."""
    import torch

    from sadm.config import preset
    from sadm.networks.sadm import SADM
    from sadm.storage.checkpoint import save_model

    torch.manual_seed(0)
    return str(save_model(tmp_path_factory.mktemp("models") / "tiny", SADM(preset("tiny"))))


@pytest.fixture(scope="session")
def continuous_time_model(tmp_path_factory) -> str:
    """A tiny model that places frames by time (ages), like brain-demo."""
    import torch

    from sadm.config import preset
    from sadm.networks.sadm import SADM
    from sadm.storage.checkpoint import save_model

    torch.manual_seed(0)
    config = preset("tiny").updated({"attention": {"time_embedding": "continuous", "time_scale": 100.0}})
    return str(save_model(tmp_path_factory.mktemp("models") / "ages", SADM(config)))


@pytest.fixture
def logic():
    return SADMModule.SADMModuleLogic()


@pytest.fixture
def qapp():
    return slicer.app.qapp
