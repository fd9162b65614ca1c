"""The panel under PySide6 (offscreen), clicked through as a user would, on the real MRML scene."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import qt
import slicer
from slicer_scenes import SHAPE, blob_frames, ijk_to_ras, node_ids, oblique_geometry, sequence_node, volume_node

import SADMModule
from SADMModule import FUTURE, MISSING, OBSERVED
from slicerharness import eventloop
from slicerharness.packaging import install_pip_installer


def settle(qapp, rounds: int = 3) -> None:
    """Run the event loop a little, including deferred deletes, as Slicer's main loop would."""
    for _ in range(rounds):
        eventloop.process_events()


def wait_until(qapp, condition, timeout: float = 120.0, on_tick=None) -> None:
    """Wait as Slicer's main thread does: event loop passes, idling with the GIL held (no time.sleep)."""
    eventloop.wait_until(condition, timeout, on_tick)


@pytest.fixture
def models_on_path(tiny_model, monkeypatch):
    """The tiny model appears in the model list as a bundled one would."""
    monkeypatch.setenv("SADM_MODEL_PATH", str(Path(tiny_model).parent))
    return "tiny"


@pytest.fixture
def panel(scene, qapp, models_on_path):
    widget = SADMModule.SADMModuleWidget()
    widget.parent.resize(430, 960)
    settle(qapp)
    yield widget
    widget.cleanup()
    widget.parent.close()
    widget.parent.deleteLater()
    settle(qapp)


def choose(combo, text: str) -> None:
    """Pick an item as the user does: the index changes, then `activated` fires."""
    index = combo.findText(text)
    assert index >= 0, f"{text!r} not in {[combo.itemText(i) for i in range(combo.count())]}"
    combo.setCurrentIndex(index)
    combo.activated.emit(index)


def table_rows(panel) -> list[tuple[str, str, str]]:
    table = panel.ui.timepointTable
    return [
        (table.item(r, 0).text(), table.item(r, 1).text(), table.cellWidget(r, 2).currentText())
        for r in range(table.rowCount())
    ]


def set_role(panel, row: int, role: str) -> None:
    combo = panel.ui.timepointTable.cellWidget(row, 2)
    combo.setCurrentIndex(combo.findText(role))


def test_user_generates_from_a_sequence_watches_progress_then_cancels_a_second_run(panel, qapp, scene, tmp_path):
    heart = sequence_node(blob_frames(4), "heart", **oblique_geometry())
    ui = panel.ui
    ui.inputSequenceSelector.setCurrentNode(heart)
    settle(qapp)
    assert table_rows(panel) == [
        ("0", "heart [0 ms]", OBSERVED),
        ("1", "heart [40 ms]", OBSERVED),
        ("2", "heart [80 ms]", OBSERVED),
        ("3", "heart [120 ms]", OBSERVED),
        ("4", "(future)", FUTURE),
    ]

    set_role(panel, 1, MISSING)
    ui.futureCountSpinBox.setValue(2)
    choose(ui.modelSelector, "tiny")
    ui.stepsSpinBox.setValue(4)
    ui.samplesSpinBox.setValue(2)
    settle(qapp)
    assert [row[2] for row in table_rows(panel)] == [OBSERVED, MISSING, OBSERVED, OBSERVED, FUTURE, FUTURE]
    assert "generating t = 1, 4, 5" in ui.rolesHintLabel.text()
    # Before the worker has run, the panel (which never imports torch) names the installed PyTorch
    assert "checked when Generate starts the SADM worker" in ui.deviceInfoLabel.text()
    assert panel._parameterNode.roles == [OBSERVED, MISSING, OBSERVED, OBSERVED]

    before = node_ids()
    ui.generateButton.click()
    assert ui.generateButton.text() == "Cancel" and panel._run is not None
    assert not ui.inputsCollapsibleButton.isEnabled()
    formats = []
    setFormat = ui.progressBar.setFormat
    ui.progressBar.setFormat = lambda text: (formats.append(text), setFormat(text))  # every text the bar showed
    wait_until(qapp, lambda: panel._run is None)
    settle(qapp)
    del ui.progressBar.setFormat

    assert formats[0] == "Frame 1 of 3 (t = 1) · step 1/4 · %p%"
    assert formats[-2:] == ["Frame 3 of 3 (t = 5) · step 4/4 · %p%", "Done · %p%"]
    assert len(formats) == 3 * 4 + 1
    assert ui.progressBar.value() == ui.progressBar.maximum() and ui.progressBar.text() == "Done · 100%"
    assert ui.generateButton.text() == "Generate" and ui.inputsCollapsibleButton.isEnabled()
    outputs = panel.lastOutputs
    assert [v.GetName() for v in outputs.volumes] == ["heart_SADM_t1", "heart_SADM_t4", "heart_SADM_t5"]
    assert [v.GetName() for v in outputs.stdMaps] == ["heart_SADM_t1_std", "heart_SADM_t4_std", "heart_SADM_t5_std"]
    assert {node.GetID() for node in outputs} <= node_ids() - before
    for volume in outputs.volumes:
        assert slicer.util.arrayFromVolume(volume).shape == SHAPE
        assert np.array_equal(ijk_to_ras(volume), ijk_to_ras(heart.GetNthDataNode(0)))
    assert "Generated heart_SADM_t1, heart_SADM_t4, heart_SADM_t5" in ui.statusLabel.text()
    assert ui.deviceInfoLabel.text().startswith("CPU (") and "expect ~" in ui.deviceInfoLabel.text()  # the worker's
    assert slicer.app.layoutManager().layout() == slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView
    assert ui.inputSequenceSelector.currentNode() is heart  # the new sequence did not steal the selection

    panel.parent.resize(430, panel.parent.sizeHint().height())
    settle(qapp)
    screenshot = tmp_path / "panel.png"  # the README's picture comes from scripts/make_panel_screenshot.py
    assert panel.parent.grab().save(str(screenshot)) and screenshot.stat().st_size > 0

    # A long run, cancelled after its first denoising step: the scene stays as it was.
    ui.samplesSpinBox.setValue(1)
    ui.stepsSpinBox.setValue(500)
    before = node_ids()
    ui.generateButton.click()
    wait_until(qapp, lambda: ui.progressBar.value() >= 1)
    ui.generateButton.click()  # "Cancel"
    assert "Cancelling" in ui.statusLabel.text()
    wait_until(qapp, lambda: panel._run is None)
    settle(qapp)
    assert node_ids() == before
    assert ui.statusLabel.text() == "Cancelled. No node was added; the scene is as before."
    assert ui.generateButton.text() == "Generate" and ui.generateButton.isEnabled()
    assert ui.progressBar.value() < ui.progressBar.maximum() or not ui.progressBar.isVisible()


def test_user_orders_a_volume_list_in_the_table(panel, qapp, scene):
    frames = blob_frames(3)
    late, early, middle = (volume_node(frames[t], name) for t, name in ((2, "knee_t2"), (0, "knee_t0"), (1, "knee_t1")))
    ui = panel.ui
    ui.volumesRadioButton.setChecked(True)
    settle(qapp)
    assert ui.inputVolumesSelector.isVisible() and not ui.inputSequenceSelector.isVisible()
    for volume in (early, middle, late):  # the user ticks them in time order
        ui.inputVolumesSelector.setCheckState(volume, qt.Qt.Checked)
    settle(qapp)
    assert [row[1] for row in table_rows(panel)] == ["knee_t0", "knee_t1", "knee_t2", "(future)"]

    ui.timepointTable.selectRow(2)
    ui.moveUpButton.click()
    settle(qapp)
    assert [row[1] for row in table_rows(panel)][:3] == ["knee_t0", "knee_t2", "knee_t1"]
    ui.timepointTable.selectRow(1)
    ui.moveDownButton.click()
    settle(qapp)
    assert [row[1] for row in table_rows(panel)][:3] == ["knee_t0", "knee_t1", "knee_t2"]

    choose(ui.modelSelector, "tiny")
    ui.stepsSpinBox.setValue(2)
    ui.generateButton.click()
    wait_until(qapp, lambda: panel._run is None)
    outputs = panel.lastOutputs
    assert [v.GetName() for v in outputs.volumes] == ["knee_SADM_t3"]
    assert np.array_equal(slicer.util.arrayFromVolume(outputs.sequence.GetNthDataNode(2)), frames[2])


def test_broken_rules_show_live_and_generate_adds_nothing(panel, qapp, scene):
    heart = sequence_node(blob_frames(3), "heart")
    ui = panel.ui
    ui.inputSequenceSelector.setCurrentNode(heart)
    choose(ui.modelSelector, "tiny")
    set_role(panel, 0, MISSING)
    settle(qapp)
    assert "roles[0] must be 'observed'" in ui.rolesHintLabel.text()
    assert "c62828" in ui.rolesHintLabel.styleSheet()

    before = node_ids()
    ui.generateButton.click()
    settle(qapp)
    assert panel._run is None and node_ids() == before
    assert "roles[0] must be 'observed'" in ui.statusLabel.text() and "c62828" in ui.statusLabel.styleSheet()

    set_role(panel, 0, OBSERVED)
    ui.futureCountSpinBox.setValue(0)
    settle(qapp)
    assert "no frame to generate" in ui.rolesHintLabel.text()

    ui.inputSequenceSelector.setCurrentNode(None)
    settle(qapp)
    assert not ui.generateButton.isEnabled()
    assert ui.rolesHintLabel.text() == "Select an input sequence or volumes."


def test_user_types_times_that_label_the_output_and_bad_times_are_explained(panel, qapp, scene):
    heart = sequence_node(blob_frames(3), "heart")
    ui = panel.ui
    ui.inputSequenceSelector.setCurrentNode(heart)
    choose(ui.modelSelector, "tiny")
    ui.futureCountSpinBox.setValue(1)
    ui.stepsSpinBox.setValue(2)
    ui.timesLineEdit.setText("10; 20 30, 40")
    settle(qapp)
    assert panel._parameterNode.times == "10; 20 30, 40"

    ui.generateButton.click()
    wait_until(qapp, lambda: panel._run is None)
    (output,) = [n for n in slicer.util.getNodesByClass("vtkMRMLSequenceNode") if n.GetName() == "heart_SADM"]
    assert [output.GetNthIndexValue(i) for i in range(4)] == ["10", "20", "30", "40"]

    before = node_ids()
    for text, message in (
        ("61, 64.5, sixty", "is not a list of numbers"),
        ("61, 64.5, 70", "3 value(s) but there are 4"),
        ("61, 64.5, 70, 78", "evenly spaced"),
    ):  # the tiny model places frames by index
        ui.timesLineEdit.setText(text)
        ui.generateButton.click()
        settle(qapp)
        assert panel._run is None and node_ids() == before
        assert message in ui.statusLabel.text() and "c62828" in ui.statusLabel.styleSheet()


def test_user_loads_a_model_folder_and_a_wrong_folder_is_refused(panel, qapp, tiny_model, tmp_path, monkeypatch):
    ui = panel.ui
    monkeypatch.setattr(qt.QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(tmp_path))
    choose(ui.modelSelector, "Load folder…")
    settle(qapp)
    assert "has no config.json" in ui.statusLabel.text()
    assert panel._parameterNode.model == SADMModule.DEFAULT_MODEL

    monkeypatch.setattr(qt.QFileDialog, "getExistingDirectory", lambda *args, **kwargs: tiny_model)
    choose(ui.modelSelector, "Load folder…")
    settle(qapp)
    assert panel._parameterNode.model == tiny_model
    assert ui.modelSelector.currentText() == "tiny" and ui.modelSelector.currentData() == tiny_model


def test_missing_pytorch_is_explained_in_the_panel(panel, qapp, scene, monkeypatch):
    heart = sequence_node(blob_frames(2), "heart")
    panel.ui.inputSequenceSelector.setCurrentNode(heart)
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)  # the PyTorch extension is not installed either
    panel._updateGuiFromParameterNode()
    assert panel.ui.deviceInfoLabel.text().startswith("PyTorch is not installed")

    before = node_ids()
    panel.ui.generateButton.click()
    settle(qapp)
    assert "install the 'PyTorch' extension from the Extensions Manager" in panel.ui.statusLabel.text()
    assert node_ids() == before and panel._run is None


def test_a_model_that_fails_to_load_on_the_worker_is_reported(panel, qapp, scene, tiny_model, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 64)
    heart = sequence_node(blob_frames(2), "heart")
    panel.ui.inputSequenceSelector.setCurrentNode(heart)
    panel._parameterNode.model = str(broken)
    before = node_ids()
    panel.ui.generateButton.click()
    wait_until(qapp, lambda: panel._run is None)
    settle(qapp)
    assert "could not be read as safetensors" in panel.ui.statusLabel.text()
    assert node_ids() == before and panel.ui.generateButton.text() == "Generate"


def test_panel_state_lives_in_the_parameter_node(panel, qapp, scene):
    heart = sequence_node(blob_frames(3), "heart")
    ui = panel.ui
    ui.inputSequenceSelector.setCurrentNode(heart)
    choose(ui.samplerSelector, "ancestral")
    ui.seedSpinBox.setValue(42)
    set_role(panel, 2, MISSING)
    settle(qapp)
    parameters = panel.logic.getParameterNode()
    assert (parameters.sampler, parameters.steps, parameters.seed) == ("ancestral", 1000, 42)
    assert parameters.roles == [OBSERVED, OBSERVED, MISSING] and parameters.inputSequence is heart

    second = SADMModule.SADMModuleWidget()  # e.g. after "Reload": the same state comes back
    settle(qapp)
    try:
        assert second.ui.seedSpinBox.value() == 42 and second.ui.samplerSelector.currentText() == "ancestral"
        assert [row[2] for row in table_rows(second)][:3] == [OBSERVED, OBSERVED, MISSING]
    finally:
        second.cleanup()
        second.parent.deleteLater()


def test_closing_the_scene_during_a_run_cancels_it_and_adds_nothing(panel, qapp, scene):
    heart = sequence_node(blob_frames(2), "heart")
    panel.parent.isEntered = True  # the user is in the module, as when closing the scene from the menu
    panel.ui.inputSequenceSelector.setCurrentNode(heart)
    choose(panel.ui.modelSelector, "tiny")
    panel.ui.stepsSpinBox.setValue(500)
    panel.ui.generateButton.click()
    wait_until(qapp, lambda: panel.ui.progressBar.value() >= 1)

    slicer.mrmlScene.Clear(0)
    wait_until(qapp, lambda: panel._run is None)
    settle(qapp)

    assert slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode") == []
    assert slicer.util.getNodesByClass("vtkMRMLSequenceNode") == []
    assert panel.ui.statusLabel.text() == "Cancelled. No node was added; the scene is as before."
    assert panel._parameterNode is not None and panel._parameterNode.inputSequence is None
    assert panel.logic._worker is None  # the worker process ended with the scene


def test_missing_pip_package_is_installed_only_with_consent(panel, qapp, scene, monkeypatch):
    heart = sequence_node(blob_frames(2), "heart")
    panel.ui.inputSequenceSelector.setCurrentNode(heart)
    choose(panel.ui.modelSelector, "tiny")
    panel.ui.stepsSpinBox.setValue(2)
    # Not installed: neither importable nor in the package metadata (what Slicer 5.12's pip_check reads)
    monkeypatch.setitem(sys.modules, "einops", None)
    realVersion = importlib.metadata.version
    absent = {"einops"}

    def version(name):
        if name in absent:
            raise importlib.metadata.PackageNotFoundError(name)
        return realVersion(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    installed = []

    def pip_install(requirements):
        installed.append(" ".join(requirements) if isinstance(requirements, list) else requirements)
        del sys.modules["einops"]  # now importable again, as after a real install
        absent.clear()

    install_pip_installer(monkeypatch, pip_install)
    slicer.app.confirmAnswer = False
    try:
        panel.ui.generateButton.click()
        settle(qapp)
        assert installed == [] and panel._run is None
        assert "installation of einops>=0.7 was declined" in panel.ui.statusLabel.text()  # 5.12: not "check network"
        assert slicer.app.messages[-1][0] == "confirm" and "einops>=0.7" in slicer.app.messages[-1][1]
    finally:
        slicer.app.confirmAnswer = True

    panel.ui.generateButton.click()
    assert installed == ["einops>=0.7"]
    wait_until(qapp, lambda: panel._run is None)
    assert [v.GetName() for v in panel.lastOutputs.volumes] == ["heart_SADM_t2"]


def test_device_line_says_why_cuda_cannot_be_used(panel, qapp):
    panel.ui.deviceSelector.setCurrentIndex(panel.ui.deviceSelector.findText("cuda"))
    settle(qapp)
    text = panel.ui.deviceInfoLabel.text()
    assert text.startswith("CUDA is not available to PyTorch") and "PyTorch Util" in text


def test_the_readme_screenshot_script_renders_the_panel_after_a_generation(scene, models_on_path, tmp_path):
    """scripts/make_panel_screenshot.py drives this panel; run here on the tiny model so it keeps working."""
    import importlib.util

    script = Path(__file__).resolve().parents[2] / "scripts" / "make_panel_screenshot.py"
    spec = importlib.util.spec_from_file_location("make_panel_screenshot", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    views = tmp_path / "views.png"
    out = module.render(
        tmp_path / "shot.png", models_on_path, steps=2, samples=1, timeout_s=120, frames=3, views_out=views
    )
    image = qt.QImage(str(out))
    assert image.width() == 430 and image.height() > 400
    # The slice views, resliced by Slicer's vtkMRMLSliceLogic: input (Red) beside generated (Yellow), both showing anatomy
    picture = np.asarray(PIL.Image.open(views).convert("L"), dtype=float)
    half = module.VIEW_PIXELS
    assert picture.shape == (half + 40, 2 * half + 4)
    red, yellow = picture[40:, :half], picture[40:, half + 4 :]
    assert red.std() > 10 and yellow.std() > 10  # not blank views


@pytest.fixture
def register_model_on_path(tmp_path, monkeypatch) -> str:
    """A tiny model whose own native path is `register` (as cardiac-demo's), listed as a bundled one."""
    import torch

    from sadm.config import preset
    from sadm.networks.sadm import SADM
    from sadm.storage.checkpoint import save_model

    torch.manual_seed(0)
    save_model(tmp_path / "models" / "tiny-register", SADM(preset("tiny").updated({"native": "register"})))
    monkeypatch.setenv("SADM_MODEL_PATH", str(tmp_path / "models"))
    return "tiny-register"


def test_frames_registration_makes_are_named_estimated_and_counted_as_one_step(scene, qapp, register_model_on_path):
    """With a `register` model, frames two observed frames span (or follow) take no denoising step: the hint
    says so, the estimate counts no step for them, and the bar counts one step each and reaches 100 %."""
    panel = SADMModule.SADMModuleWidget()
    try:
        ui = panel.ui
        ui.inputSequenceSelector.setCurrentNode(sequence_node(blob_frames(4), "heart"))
        settle(qapp)
        set_role(panel, 1, MISSING)
        ui.futureCountSpinBox.setValue(1)
        choose(ui.modelSelector, register_model_on_path)
        ui.stepsSpinBox.setValue(4)
        settle(qapp)
        assert "generating t = 1, 4." in ui.rolesHintLabel.text()
        assert "2 of them from the registration of the observed frames" in ui.rolesHintLabel.text()
        assert panel.logic.frameCounts([OBSERVED, MISSING, OBSERVED, OBSERVED, FUTURE], "tiny-register") == (0, 2)
        assert panel.logic.frameCounts([OBSERVED, FUTURE], "tiny-register") == (1, 0)  # one observed frame: drawn
        ui.generateButton.click()
        formats = []
        setFormat = ui.progressBar.setFormat
        ui.progressBar.setFormat = lambda text: (formats.append(text), setFormat(text))
        wait_until(qapp, lambda: panel._run is None)
        settle(qapp)
        del ui.progressBar.setFormat
        assert formats == [
            "Frame 1 of 2 (t = 1) · step 1/1 · %p%",
            "Frame 2 of 2 (t = 4) · step 1/1 · %p%",
            "Done · %p%",
        ]
        assert ui.progressBar.value() == ui.progressBar.maximum()
        assert [v.GetName() for v in panel.lastOutputs.volumes] == ["heart_SADM_t1", "heart_SADM_t4"]
    finally:
        panel.cleanup()
        panel.parent.close()
        panel.parent.deleteLater()
        settle(qapp)


def test_the_cpu_estimate_counts_a_registered_frame_without_denoising_steps(scene, logic, tiny_model):
    from SADMModuleLib import resources

    drawn = logic.estimateSeconds(tiny_model, "cpu", targets=1, steps=10, samples=1)
    both = logic.estimateSeconds(tiny_model, "cpu", targets=1, steps=10, samples=1, registered=2)
    assert both == pytest.approx(drawn + 2 * resources.REGISTERED_SECONDS)
    assert logic.estimateSeconds(tiny_model, "cpu", targets=0, steps=10, samples=1, registered=2) == pytest.approx(
        2 * resources.REGISTERED_SECONDS
    )
    assert "expect ~" in logic.describeDevice("cpu", tiny_model, targets=0, steps=10, samples=1, registered=2)
