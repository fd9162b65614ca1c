"""Issue 29 defect 11: one engine host for the worker and the console path, the module's errors under the
engine's SADMError, keyword arguments through the Logic, the panel's guidance the model's own, and a
SADMModule.py that reads as the module (its jobs in SADMModuleLib)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import SADMModuleLib
from SADMModuleLib import dependencies, resources, volumes, workerprocess
from slicer_scenes import blob_frames, sequence_node

import SADMModule
from sadm.errors import SADMError
from sadm.serving import host as engine_host
from sadm.serving import worker as worker_module

MODULE_FILE = Path(SADMModule.__file__)


def test_the_worker_and_the_console_path_share_one_engine_host(scene, logic, tiny_model):
    assert type(logic._host) is engine_host.EngineHost
    assert type(worker_module.Worker(io.StringIO()).host) is engine_host.EngineHost
    source = MODULE_FILE.read_text(encoding="utf-8") + Path(resources.__file__).read_text(encoding="utf-8")
    assert "Engine.load" not in source and "empty_cache" not in source  # no second cache or OOM recovery


def test_new_weights_are_loaded_even_within_the_same_microsecond(scene, logic, tiny_model, tmp_path):
    """The two caches had drifted: the console's key read st_mtime (a float, ~0.2 µs apart here), the
    worker's st_mtime_ns. One key now, in nanoseconds."""
    import shutil

    folder = Path(shutil.copytree(tiny_model, tmp_path / "model"))
    weights = folder / "model.safetensors"
    stamp = 1_700_000_000_000_000_000
    os.utime(weights, ns=(stamp, stamp))
    first = logic.engineFor(str(folder), "cpu")
    assert logic.engineFor(str(folder), "cpu") is first
    os.utime(weights, ns=(stamp + 1, stamp + 1))  # rewritten: a newer modification time
    assert logic.engineFor(str(folder), "cpu") is not first


@pytest.mark.parametrize(
    "error",
    [
        volumes.SADMInputError,
        dependencies.SADMDependencyError,
        resources.SADMResourceError,
        workerprocess.WorkerError,
        workerprocess.WorkerCrashed,
        engine_host.OutOfDeviceMemory,
    ],
)
def test_the_modules_errors_are_sadm_errors(error):
    assert issubclass(error, SADMError)


def test_generate_passes_its_options_by_name(scene, logic, monkeypatch):
    seen = {}

    def prepare(*args, **kwargs):
        seen.update(args=args, kwargs=kwargs)
        raise SADMError("stop here")

    monkeypatch.setattr(logic, "prepareRequest", prepare)
    with pytest.raises(SADMError):
        logic.generate("input", ["observed", "future"], model="m", guidance=0.3, times=[1, 2], native="warp")
    assert seen["args"] == ("input", ["observed", "future"])
    assert seen["kwargs"]["guidance"] == 0.3 and seen["kwargs"]["native"] == "warp"
    assert seen["kwargs"]["times"] == [1, 2] and seen["kwargs"]["model"] == "m"


def test_the_panel_takes_the_models_guidance_as_the_console_does(scene, qapp, tiny_model, monkeypatch):
    monkeypatch.setenv("SADM_MODEL_PATH", str(Path(tiny_model).parent))
    widget = SADMModule.SADMModuleWidget()
    try:
        seen = []

        def spy(*args, **kwargs):
            seen.append(kwargs["guidance"])
            raise SADMError("stop here")

        monkeypatch.setattr(widget.logic, "prepareRequest", spy)
        widget._parameterNode.inputSequence = sequence_node(blob_frames(2), "heart")
        widget._parameterNode.model = "tiny"
        assert widget.ui.guidanceSpinBox.text() == "model's default"
        widget.ui.generateButton.click()
        widget.ui.guidanceSpinBox.setValue(0.2)
        widget.ui.generateButton.click()
        assert seen == [None, 0.2]
    finally:
        widget.cleanup()


def test_sadmmodule_py_reads_as_the_module():
    lines = MODULE_FILE.read_text(encoding="utf-8").count("\n")
    assert lines <= 900, f"SADMModule.py has {lines} lines; move a job into SADMModuleLib"
    assert SADMModule.SADMModuleTest.__module__ == "SADMModuleLib.selftest"  # Slicer finds it by name here
    listed = (MODULE_FILE.parent / "CMakeLists.txt").read_text(encoding="utf-8")
    for path in sorted(Path(SADMModuleLib.__file__).parent.glob("*.py")):
        assert f"${{MODULE_NAME}}Lib/{path.name}" in listed
