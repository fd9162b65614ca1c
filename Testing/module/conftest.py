"""Fixtures of the SADM module tests: the Slicer harness, a fresh scene per test, a tiny model.

The harness (slicerharness/) is installed before SADMModule is imported, so the module runs on the
real MRML scene of the slicer-core wheel with PySide6 standing in for PythonQt.

Every test runs against a modelled Slicer release (slicerharness/versions.py): the tests of the
files in VERSIONED_FILES against each of 5.6, 5.8, 5.10 and 5.12, the rest against 5.10 only (what they
check does not differ between releases). `--slicer-version=5.6` runs everything against one release.
"""

from __future__ import annotations

import sys

import pytest

import slicerharness

slicerharness.install()

import slicer  # noqa: E402

import SADMModule  # noqa: E402  (needs the harness)
from slicerharness import versions  # noqa: E402

VERSIONED_FILES = {
    "test_module_panel.py",
    "test_module_logic.py",
    "test_module_versions.py",
}
VERSIONED_TESTS = {"test_self_test_runs_the_user_workflow"}  # in files run against 5.10 only


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--slicer-version",
        choices=versions.SLICER_VERSIONS,
        default=None,
        help="run every module test against this modelled Slicer release only",
    )


def pytest_generate_tests(metafunc) -> None:
    if "slicer_version" not in metafunc.fixturenames:
        return
    chosen = metafunc.config.getoption("--slicer-version")
    if chosen:
        releases = [chosen]
    elif metafunc.definition.path.name in VERSIONED_FILES or metafunc.definition.originalname in VERSIONED_TESTS:
        releases = list(versions.SLICER_VERSIONS)
    else:
        releases = [versions.DEFAULT_VERSION]
    metafunc.parametrize("slicer_version", releases, indirect=True, ids=[f"slicer{r}" for r in releases])


@pytest.fixture(autouse=True)
def slicer_version(request) -> str:
    """The Slicer release the harness models for this test."""
    version = getattr(request, "param", versions.DEFAULT_VERSION)
    versions.set_version(version)
    yield version
    versions.set_version(versions.DEFAULT_VERSION)


@pytest.fixture
def scene():
    """A fresh scene laid out as Slicer starts one; it becomes slicer.mrmlScene."""
    return slicerharness.new_scene()


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


@pytest.fixture
def python_slicer(tmp_path_factory, monkeypatch):
    """Make `sys.executable` PythonSlicer, as in Slicer: the harness's model of CTK's launcher, which runs
    this interpreter as python-real behind it (slicerharness/launcher.py). Call it with the cold start to
    model; it returns the launcher's path."""
    from slicerharness.launcher import write_launcher

    def make(cold_start_s: float = 0.0) -> str:
        launcher = write_launcher(tmp_path_factory.mktemp("PythonSlicer"), cold_start_s)
        monkeypatch.setattr(sys, "executable", launcher)
        return launcher

    return make
