"""Issue 29: the module as it runs in real Slicer. The worker starts behind PythonSlicer (the harness's model
of CTK's launcher, with a slow cold start where the race needs one), and the PyTorch extension installs
synchronously, pumping the event loop on every output line (slicerharness/pytorchutils.py)."""

from __future__ import annotations

import sys
import time

import pytest
import slicer
from SADMModuleLib import dependencies, workerprocess
from slicer_scenes import blob_frames, sequence_node

import SADMModule
from slicerharness import eventloop, pytorchutils
from slicerharness.launcher import alive, python_real


def settle(rounds: int = 3) -> None:
    for _ in range(rounds):
        eventloop.process_events()


@pytest.fixture
def panel(scene, qapp, tiny_model, monkeypatch):
    monkeypatch.setenv("SADM_MODEL_PATH", str(__import__("pathlib").Path(tiny_model).parent))
    widget = SADMModule.SADMModuleWidget()
    settle()
    yield widget
    widget.cleanup()
    widget.parent.deleteLater()
    settle()


def start_input(panel, steps: int = 2, samples: int = 1, future: int = 1) -> None:
    panel.ui.inputSequenceSelector.setCurrentNode(sequence_node(blob_frames(2), "heart"))
    panel._parameterNode.model = "tiny"
    panel._parameterNode.steps = steps
    panel._parameterNode.samples = samples
    panel._parameterNode.futureCount = future
    panel._parameterNode.device = "cpu"
    settle()


def test_a_generation_runs_behind_python_slicer(panel, python_slicer):
    launcher = python_slicer()
    start_input(panel)
    panel.ui.generateButton.click()
    eventloop.wait_until(lambda: panel._run is None, timeout=120)
    assert [v.GetName() for v in panel.lastOutputs.volumes] == ["heart_SADM_t2"], panel.ui.statusLabel.text()
    worker = panel.logic._worker
    assert worker.pid != worker.workerPid and sys.executable == launcher  # python-real behind the launcher


def test_cancel_pressed_during_a_cold_start_stops_the_run(panel, python_slicer):
    """Defect 2 in the panel: Generate, then Cancel while PythonSlicer still starts. The cancel used to be
    dropped by the worker, and the whole run went on behind "Cancelling…"."""
    python_slicer(cold_start_s=2.0)
    start_input(panel, steps=2000, samples=16, future=3)  # hours on this machine's CPU
    panel.ui.generateButton.click()
    panel.ui.generateButton.click()  # "Cancel"
    assert "Cancelling" in panel.ui.statusLabel.text()
    eventloop.wait_until(lambda: panel._run is None, timeout=60)
    assert panel.ui.statusLabel.text() == "Cancelled. No node was added; the scene is as before."


def test_closing_the_panel_or_the_scene_during_a_run_does_not_freeze_slicer(panel, python_slicer, monkeypatch):
    """Defect 7: cleanup waited 5 s for the run, then the shutdown 5 s for the worker. Now neither blocks;
    the worker's tree is killed in the background when it does not go in time."""
    monkeypatch.setattr(workerprocess, "SHUTDOWN_GRACE_S", 0.5)
    python_slicer(cold_start_s=120)  # a worker that reads no command for two minutes
    panel.parent.isEntered = True  # the user is in the module, as when closing the scene from the menu
    start_input(panel)
    panel.ui.generateButton.click()
    real = python_real(panel.logic._worker.pid)

    started = time.monotonic()
    slicer.mrmlScene.Clear(0)  # Close Scene
    assert time.monotonic() - started < 1.0
    eventloop.wait_until(lambda: panel._run is None, timeout=30)

    panel.ui.inputSequenceSelector.setCurrentNode(sequence_node(blob_frames(2), "heart"))
    panel.ui.generateButton.click()
    second = python_real(panel.logic._worker.pid)
    started = time.monotonic()
    panel.cleanup()  # Slicer quits
    assert time.monotonic() - started < 1.0
    deadline = time.monotonic() + 20
    while (alive(real) or alive(second)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(real) and not alive(second), "a worker outlived the panel"


@pytest.fixture
def torch_missing(monkeypatch):
    """PyTorch not installed yet (not importable, so missing); the install makes it importable again."""
    real = sys.modules["torch"]
    monkeypatch.setitem(sys.modules, "torch", None)
    return lambda: sys.modules.__setitem__("torch", real)


def test_generate_cannot_start_a_second_install_while_pytorch_installs(
    panel, python_slicer, monkeypatch, torch_missing
):
    """Defects 4 and 5: the install pumps the event loop on every pip line; a second click re-entered
    and installed again into the same site-packages. Before it starts, the panel says what is coming."""
    python_slicer()
    start_input(panel)
    seen = []

    def on_line(number: int) -> None:
        seen.append((panel.ui.generateButton.isEnabled(), panel.ui.statusLabel.text()))
        panel.ui.generateButton.click()  # the impatient user
        panel.onGenerateButton()  # a click already queued before the button was disabled
        if number == len(pytorchutils.PIP_OUTPUT):
            torch_missing()  # installed

    extension = pytorchutils.install(monkeypatch, on_line=on_line)
    panel.ui.generateButton.click()
    eventloop.wait_until(lambda: panel._run is None, timeout=120)

    assert extension.calls == [["install", "torch>=2.1", "torchvision"]]
    assert all(not enabled for enabled, _ in seen)
    assert seen[0][1].startswith("Installing PyTorch through the PyTorch extension")
    assert "Slicer does not respond" in seen[0][1] and "restart Slicer afterwards" in seen[0][1]
    assert [v.GetName() for v in panel.lastOutputs.volumes] == ["heart_SADM_t2"], panel.ui.statusLabel.text()
    assert panel.ui.generateButton.isEnabled()


def test_an_outdated_pytorch_is_not_upgraded_in_place_on_windows(panel, monkeypatch):
    """Defect 5: upgrading PyTorch while its DLLs are loaded fails on Windows; the user is told what to do."""
    monkeypatch.setattr(dependencies, "isWindows", lambda: True)
    monkeypatch.setattr(dependencies, "TORCH_REQUIREMENT", ">=99.0")
    extension = pytorchutils.install(monkeypatch)
    start_input(panel)
    panel.ui.generateButton.click()
    settle()
    assert extension.calls == [] and panel._run is None
    status = panel.ui.statusLabel.text()
    assert "PyTorch 2.13.0" in status and "cannot be upgraded while it may be loaded" in status, status
    assert "Uninstall PyTorch, restart Slicer" in status
