"""Issue 19 item 9: with the warm worker, Slicer's own process never imports torch (seconds frozen on
the first panel open, and on a GPU machine a CUDA context of several hundred MB held by Slicer). The
panel describes the device from the installed package's metadata until the worker reports what its
torch runs on; the worker resolves the device and checks the GPU memory itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from SADMModuleLib import resources, workerprocess
from SADMModuleLib.dependencies import SADMDependencyError

from sadm.errors import DeviceError, InsufficientDeviceMemoryError

MODULE_TESTS = Path(__file__).resolve().parent
ROOT = MODULE_TESTS.parents[1]
WAIT_S = 300  # a generous limit for a stuck worker, never a timing assertion

PANEL_SESSION = """
import json, sys, time
sys.path[:0] = [{tests!r}, {module!r}]
import slicerharness
slicerharness.install()
import slicer
import SADMModule
from slicer_scenes import blob_frames, sequence_node

loaded = {{}}
widget = SADMModule.SADMModuleWidget()
loaded["after_panel_open"] = "torch" in sys.modules
lineBefore = widget.ui.deviceInfoLabel.text
lineBefore = lineBefore() if callable(lineBefore) else lineBefore
widget._parameterNode.inputSequence = sequence_node(blob_frames(2), "heart")
widget._parameterNode.model = {model!r}
widget._parameterNode.steps = 2
widget._parameterNode.futureCount = 1
widget._parameterNode.device = "cpu"
lineCpu = widget.ui.deviceInfoLabel.text
lineCpu = lineCpu() if callable(lineCpu) else lineCpu
widget.ui.generateButton.click()
deadline = time.monotonic() + {wait}
while widget._run is not None and time.monotonic() < deadline:
    slicer.app.processEvents()
    time.sleep(0.01)
status = widget.ui.statusLabel.text
lineAfter = widget.ui.deviceInfoLabel.text
print(json.dumps({{
    "torch_imported": "torch" in sys.modules,
    "after_panel_open": loaded["after_panel_open"],
    "outputs": [v.GetName() for v in widget.lastOutputs.volumes] if widget.lastOutputs else [],
    "status": status() if callable(status) else status,
    "line_before": lineBefore,
    "line_cpu": lineCpu,
    "line_after": lineAfter() if callable(lineAfter) else lineAfter,
    "measured": [list(k) for k in widget.logic._secondsPerStep],
}}))
widget.cleanup()
"""


def test_panel_open_and_a_worker_run_never_import_torch_in_slicers_process(tiny_model):
    """A fresh interpreter (this one has torch loaded): open the panel, generate through the worker."""
    code = PANEL_SESSION.format(tests=str(MODULE_TESTS), module=str(ROOT / "SADMModule"), model=tiny_model, wait=WAIT_S)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT_S + 60, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert report["outputs"] == ["heart_SADM_t2"], report["status"]
    assert report["after_panel_open"] is False
    assert report["torch_imported"] is False, "Slicer's process imported torch"
    assert "the auto device and its free memory are checked when Generate starts" in report["line_before"]
    assert report["line_cpu"].startswith("CPU — slow, expect ~")  # no thread count known yet
    assert report["line_after"].startswith("CPU (1 threads) — slow, expect ~")  # the worker's own torch said so
    assert report["measured"] == [[str(Path(tiny_model).resolve()), "cpu"]]  # the worker run's speed is kept


def test_device_line_before_the_worker_reports_names_the_installed_torch():
    """(That it imports nothing is the subprocess test above: removing torch from this process's
    sys.modules, even for a moment, lets a background thread import a second torch.)"""
    line = resources.describeDevice("auto")
    expected = "the auto device and its free memory are checked when Generate starts the SADM worker."
    assert line == f"PyTorch {torch.__version__}: {expected}"


GPU_FACTS = {
    "torch": "2.13.0",
    "cuda_build": "12.8",
    "cuda": [{"name": "Fake GPU", "free": 5 * 2**30, "total": 8 * 2**30}],
    "mps": False,
    "threads": 3,
}
CPU_FACTS = {"torch": "2.13.0+cpu", "cuda_build": None, "cuda": [], "mps": False, "threads": 3}


@pytest.mark.parametrize(
    ("device", "facts", "expected"),
    [
        ("auto", GPU_FACTS, "CUDA: Fake GPU, 5.0 GB free"),
        ("cuda:0", GPU_FACTS, "CUDA: Fake GPU, 5.0 GB free"),
        ("cuda:1", GPU_FACTS, "cuda:1 is not available to PyTorch 2.13.0 (CUDA build: 12.8)"),
        ("auto", CPU_FACTS, "CPU (3 threads) — slow, expect ~"),
        ("cuda", CPU_FACTS, "cuda is not available to PyTorch 2.13.0+cpu (CUDA build: none)"),
        ("cpu", GPU_FACTS, "CPU (3 threads) — slow, expect ~"),
        ("tpu", CPU_FACTS, "device 'tpu' is unknown"),
    ],
)
def test_device_line_from_the_workers_facts(device, facts, expected):
    assert resources.describeDevice(device, facts=facts).startswith(expected)


def test_worker_errors_become_the_in_process_exceptions():
    """The worker resolves the device and checks its memory; the panel shows what the in-process path would."""
    memory = workerprocess._exceptionFor({"type": InsufficientDeviceMemoryError.__name__, "message": "needs 3.0 GB"})
    assert isinstance(memory, resources.SADMResourceError) and str(memory) == "needs 3.0 GB"
    unavailable = workerprocess._exceptionFor({"type": DeviceError.__name__, "message": "no CUDA"})
    assert isinstance(unavailable, resources.SADMResourceError) and "PyTorch Util module" in str(unavailable)
    broken = workerprocess._exceptionFor({"type": "TorchLoadError", "message": "OSError: [WinError 126] c10.dll"})
    assert isinstance(broken, SADMDependencyError)
    assert "cannot be loaded (OSError: [WinError 126] c10.dll)" in str(broken) and "restart Slicer" in str(broken)


def test_a_torch_whose_dlls_fail_to_load_is_reported_by_the_worker(tiny_model, tmp_path):
    """Windows: `import torch` raises OSError when a DLL is missing; it happens in the worker now."""
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        textwrap.dedent(
            """
            raise OSError("[WinError 126] The specified module could not be found. Error loading c10.dll")
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    worker = workerprocess.WorkerProcess(sys.executable, env=env)
    try:
        from test_worker_process import request_for

        generation = workerprocess.WorkerRun(worker, request_for(tiny_model)).start()
        generation.wait(WAIT_S)
        assert generation.outcome == "failed"
        assert isinstance(generation.error, SADMDependencyError)
        assert "PyTorch is installed but cannot be loaded (OSError: [WinError 126]" in str(generation.error)
        assert worker.running  # the worker stays up; a fixed install works after a restart of Slicer
    finally:
        worker.shutdown()
