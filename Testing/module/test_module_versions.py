"""Defects that only a Slicer-version-faithful harness shows (issue 19, defects 2-6), each run
against the modelled 5.6, 5.8 and 5.10 (conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import slicer
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from slicer_scenes import blob_frames, sequence_node

import SADMModule
from slicerharness import eventloop, parameternode


@pytest.fixture
def models_on_path(tiny_model, monkeypatch):
    monkeypatch.setenv("SADM_MODEL_PATH", str(Path(tiny_model).parent))
    return "tiny"


@pytest.fixture
def panel(scene, qapp, models_on_path):
    widget = SADMModule.SADMModuleWidget()
    eventloop.process_events()
    yield widget
    widget.cleanup()
    widget.parent.close()
    widget.parent.deleteLater()
    eventloop.process_events()


def choose(combo, text: str) -> None:
    index = combo.findText(text)
    combo.setCurrentIndex(index)
    combo.activated.emit(index)


def test_sample_data_registers_and_loads_on_every_release(scene, slicer_version):
    """Defect 2: 5.6 has no `loadFileTypes`, so registering raised TypeError at every startup."""
    import SampleData

    SADMModule.registerSampleData()
    for name, _, _ in SADMModule.SAMPLE_DATA:
        assert SampleData.sources[name].loadFileTypes == "SequenceFile"
    sequence = SampleData.SampleDataLogic().downloadSample(SADMModule.SAMPLE_DATA[0][0])
    assert sequence.IsA("vtkMRMLSequenceNode") and sequence.GetNumberOfDataNodes() > 0


def test_settings_survive_leaving_and_entering_the_module(panel, qapp, slicer_version):
    """Defect 3: with connectGui returning None (5.6/5.8) every enter() bound the panel again and the
    rebuilt sampler box wrote its first choice back: sampler "ancestral", device "auto"."""
    ui = panel.ui
    panel.enter()
    choose(ui.samplerSelector, "dpm++2m")
    ui.stepsSpinBox.setValue(17)
    ui.deviceSelector.setCurrentIndex(ui.deviceSelector.findText("cpu"))
    eventloop.process_events()
    for _ in range(3):
        panel.exit()
        panel.enter()
        eventloop.process_events()
    parameters = panel.logic.getParameterNode()
    assert (parameters.sampler, parameters.steps, parameters.device) == ("dpm++2m", 17, "cpu")
    assert (ui.samplerSelector.currentText(), ui.stepsSpinBox.value(), ui.deviceSelector.currentText()) == (
        "dpm++2m",
        17,
        "cpu",
    )
    for widget in (ui.samplerSelector, ui.stepsSpinBox, ui.deviceSelector):
        assert parameternode.bound_connectors(widget) == 1, widget.objectName()  # bound once, no pile


def test_typing_in_the_times_field_keeps_the_cursor(panel, qapp, slicer_version):
    """Defect 4: 5.6/5.8's line-edit binding rewrote the text on every keystroke, moving the cursor to the end."""
    field = panel.ui.timesLineEdit
    field.setFocus()
    QTest.keyClicks(field, "61, 70, 78")
    field.setCursorPosition(3)  # after "61,"
    QTest.keyClicks(field, " 64")
    eventloop.process_events()
    assert field.text() == "61, 64 70, 78"
    assert field.cursorPosition() == 6
    assert panel.logic.getParameterNode().times == "61, 64 70, 78"
    QTest.keyClick(field, Qt.Key_Backspace)
    assert field.text() == "61, 6 70, 78" and field.cursorPosition() == 5


def test_closing_the_scene_during_a_run_outside_the_module_restores_the_panel(panel, qapp, scene, slicer_version):
    """Defect 5: closed while the module is not entered, the panel stayed "running" (Cancel, sections off)."""
    heart = sequence_node(blob_frames(2), "heart")
    panel.parent.isEntered = True
    panel.ui.inputSequenceSelector.setCurrentNode(heart)
    choose(panel.ui.modelSelector, "tiny")
    panel.ui.stepsSpinBox.setValue(500)
    panel.ui.generateButton.click()
    assert panel._run is not None
    panel.exit()
    panel.parent.isEntered = False  # the user went to another module

    slicer.mrmlScene.Clear(0)
    eventloop.wait_until(lambda: panel._run is None)
    eventloop.process_events()

    assert panel.ui.generateButton.text() == "Generate" and panel.ui.generateButton.isEnabled()
    assert panel.ui.inputsCollapsibleButton.isEnabled() and panel.ui.samplingCollapsibleButton.isEnabled()
    assert not panel.ui.progressBar.isVisible()
    assert slicer.util.getNodesByClass("vtkMRMLSequenceNode") == []
    panel.parent.isEntered = True
    panel.enter()
    assert panel._parameterNode is not None and panel.ui.generateButton.text() == "Generate"


def test_no_write_to_destroyed_widgets_after_a_panel_is_cleaned_up(scene, qapp, models_on_path, slicer_version):
    """Defect 6: cleanup() kept the GUI bindings, so after the self-test's second panel was deleted every
    parameter change printed "Trying to set property ... on a destroyed object"."""
    parameternode.DESTROYED_WRITES.clear()
    widget = SADMModule.SADMModuleWidget()
    eventloop.process_events()
    widget.cleanup()
    widget.parent.deleteLater()
    eventloop.process_events()
    parameters = SADMModule.SADMModuleLogic().getParameterNode()
    parameters.steps = 12
    parameters.times = "1, 2"
    parameters.sampler = "ancestral"
    assert parameternode.DESTROYED_WRITES == []


def test_the_harness_waits_like_slicers_main_thread_holding_the_gil():
    """The harness's idle keeps the GIL as Slicer's event loop does: a Python thread that runs whenever
    the main thread sleeps in time.sleep (which releases the GIL) gets nothing done during it."""
    import sys
    import threading
    import time

    counter = [0]
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            counter[0] += 1
            time.sleep(0.001)  # hands the GIL back itself: no forced switch is ever needed

    interval = sys.getswitchinterval()
    sys.setswitchinterval(10.0)  # no forced hand-over: only a GIL-releasing call lets the other thread in
    worker = threading.Thread(target=count, daemon=True)
    try:
        worker.start()
        deadline = time.monotonic() + 30
        while counter[0] < 3 and time.monotonic() < deadline:
            time.sleep(0.01)  # releases the GIL: the worker runs
        assert counter[0] >= 3
        before = counter[0]
        eventloop.hold_gil_idle(200_000)
        holding = counter[0] - before
    finally:
        stop.set()
        worker.join()
        sys.setswitchinterval(interval)
    assert holding == 0
