"""SADM in 3D Slicer: generate the missing and future frames of a longitudinal 3D image.

The four classes of Slicer's scripted-module template: SADMModule (metadata), SADMModuleWidget (the
panel: collects the inputs, shows progress, displays results), SADMModuleLogic (all the work and the
console API, usable without the GUI) and SADMModuleTest (the self-test). The method itself lives in
the pure-Python `sadm` engine, installed beside this file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib
import logging
import math
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Callable

import numpy as np
import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSequenceNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin


def _ensureEngineImportable() -> None:
    """Installed extension: CMake puts the `sadm` package beside this file (already on sys.path).
    Source checkout: the package lives in ../SADMExtension."""
    try:
        importlib.import_module("sadm")
    except ImportError:
        checkout = Path(__file__).resolve().parent.parent / "SADMExtension"
        if (checkout / "sadm" / "__init__.py").is_file():
            sys.path.insert(0, str(checkout))


_ensureEngineImportable()

from sadm.defaults import DEFAULT_NATIVE_PATH, DEFAULT_SAMPLER
from sadm.defaults import DEFAULT_STEPS as SAMPLER_DEFAULT_STEPS
from sadm.errors import CheckpointError, GenerationCancelled, InvalidRolesError, SADMError
from sadm.generation import request as engineRequest  # torch-free: the one set of request rules
from sadm.generation.request import FUTURE, MISSING, OBSERVED, ROLES

DEVICES = ("auto", "cuda", "cpu")
DEFAULT_MODEL = "cardiac-demo"
TORCH_REQUIREMENT = ">=2.1"
ATTRIBUTE_PREFIX = "SADM."
SAMPLE_DATA = (
    # (sample name, file in Resources/SampleData, SHA256 of that file)
    # Written by Testing/module/make_sample_data.py from the engine's synthetic generators.
    (
        "SADMCardiacSynthetic",
        "SADMCardiacSynthetic.seq.nrrd",
        "cfc0b726a4eb350a4737eb9d41d053870de746a741754a43381061144c824f95",
    ),
    (
        "SADMBrainSynthetic",
        "SADMBrainSynthetic.seq.nrrd",
        "c7a6479acc84bef293ad1cdada7d58efbd39ba69b7d84fdfec189b673f2e6f32",
    ),
)


class SADMInputError(ValueError):
    """The selected nodes cannot be read as one sequence of scalar volumes."""


class SADMDependencyError(RuntimeError):
    """A Python package SADM needs is missing; the message says how to install it."""


class SADMResourceError(RuntimeError):
    """The chosen device cannot run the request (no CUDA, too little GPU memory)."""


#
# SADMModule
#


class SADMModule(ScriptedLoadableModule):
    """Module metadata shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SADM Sequence Generation")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Sequences")]
        self.parent.dependencies = ["Sequences"]
        self.parent.contributors = ["SADM for 3D Slicer contributors"]
        self.parent.helpText = _("""
Generates missing and future frames of a longitudinal 3D image (a Sequence of scalar volumes, or a
list of volumes) with SADM, the Sequence-Aware Diffusion Model (Yoon et al., IPMI 2023).
Mark each timepoint observed, missing or future, pick a model and press Generate; the results are new
volumes and a new Sequence shown side by side with the input. The input is never modified.
Scripting: <code>slicer.util.getModuleLogic("SADMModule").generate(sequenceNode, roles)</code>.
See the <a href="https://github.com/sadm-slicer/SlicerSADM/blob/main/README.md#in-3d-slicer">module documentation</a>.
""")
        self.parent.acknowledgementText = _("""
SADM: Sequence-Aware Diffusion Model for Longitudinal Medical Image Generation, J. S. Yoon et al.,
IPMI 2023. This module follows the 3D Slicer scripted-module template.
""")
        slicer.app.startupCompleted.connect(registerSampleData)


#
# Register sample data sets in Sample Data module
#


def registerSampleData() -> None:
    """Add the synthetic cardiac and brain sequences shipped with the module to Sample Data."""
    import SampleData

    resources = Path(__file__).resolve().parent / "Resources"
    if hasattr(SampleData.SampleDataLogic, "registerCustomSampleDataCategory"):
        SampleData.SampleDataLogic.registerCustomSampleDataCategory("SADM", title=_("SADM"))
    for sampleName, fileName, checksum in SAMPLE_DATA:
        path = resources / "SampleData" / fileName
        if not path.is_file():
            logging.warning(f"SADM sample data {path} is missing; {sampleName} is not offered in Sample Data")
            continue
        SampleData.SampleDataLogic.registerCustomSampleDataSource(
            category="SADM",
            sampleName=sampleName,
            thumbnailFileName=str(resources / "Icons" / f"{sampleName}.png"),
            uris=path.as_uri(),
            fileNames=fileName,
            checksums=f"SHA256:{checksum}",
            nodeNames=sampleName,
            loadFileTypes="SequenceFile",
        )


#
# SADMModuleParameterNode
#


@parameterNodeWrapper
class SADMModuleParameterNode:
    """The panel's state, saved with the scene.

    inputSequence / inputVolumes - the input, as a Sequence node or an ordered list of volumes
    useVolumeList - which of the two is the input
    roles - observed / missing / future, one per input frame
    futureCount - timepoints to predict after the last input frame
    times - optional, one time per timepoint ("61, 64.5, 70, 78"); empty = the input's index values
    model - a bundled model name or a model folder
    """

    inputSequence: vtkMRMLSequenceNode
    inputVolumes: list[vtkMRMLScalarVolumeNode]
    useVolumeList: bool = False
    roles: list[str]
    futureCount: Annotated[int, WithinRange(0, 32)] = 1
    times: str = ""
    model: str = DEFAULT_MODEL
    device: Annotated[str, Choice(list(DEVICES))] = "auto"
    sampler: Annotated[str, Choice(list(SAMPLER_DEFAULT_STEPS))] = DEFAULT_SAMPLER
    steps: Annotated[int, WithinRange(1, 2000)] = SAMPLER_DEFAULT_STEPS[DEFAULT_SAMPLER]
    guidance: Annotated[float, WithinRange(0.0, 10.0)] = 0.1
    seed: Annotated[int, WithinRange(0, 2**31 - 1)] = 0
    samples: Annotated[int, WithinRange(1, 32)] = 1
    showResult: bool = True


#
# SADMModuleWidget
#


class SADMModuleWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel. It only collects inputs, starts the Logic, shows progress and results."""

    POLL_INTERVAL_MS = 100
    WORKER_SLICE_S = 0.02  # per poll, the main thread waits this long on the worker, releasing the GIL
    ERROR_STYLE = "color: #c62828;"
    HINT_STYLE = "color: #6d6d6d;"

    def __init__(self, parent=None) -> None:
        # State first: without a parent the base class calls setup() from its __init__.
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run = None
        self._updatingGui = False
        self.lastOutputs = None
        VTKObservationMixin.__init__(self)
        ScriptedLoadableModuleWidget.__init__(self, parent)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SADMModule.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SADMModuleLogic()

        table = self.ui.timepointTable
        table.horizontalHeader().setSectionResizeMode(0, qt.QHeaderView.ResizeToContents)
        table.horizontalHeader().setSectionResizeMode(1, qt.QHeaderView.Stretch)
        table.horizontalHeader().setSectionResizeMode(2, qt.QHeaderView.ResizeToContents)
        table.verticalHeader().setVisible(False)
        self.ui.rolesHintLabel.setStyleSheet(self.HINT_STYLE)
        self.ui.progressBar.setVisible(False)

        self._pollTimer = qt.QTimer()
        self._pollTimer.setInterval(self.POLL_INTERVAL_MS)
        self._pollTimer.timeout.connect(self._onPollTimer)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.sequenceRadioButton.toggled.connect(self._onInputTypeToggled)
        self.ui.inputVolumesSelector.checkedNodesChanged.connect(self._onCheckedVolumesChanged)
        self.ui.moveUpButton.clicked.connect(lambda: self._moveSelectedVolume(-1))
        self.ui.moveDownButton.clicked.connect(lambda: self._moveSelectedVolume(+1))
        self.ui.modelSelector.activated.connect(self._onModelActivated)
        self.ui.samplerSelector.activated.connect(self._onSamplerActivated)
        self.ui.generateButton.clicked.connect(self.onGenerateButton)

        self._fillModelSelector()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._run is not None:
            self._run.cancel()
            self._run.wait(timeout=5.0)
            self._run = None
        self._pollTimer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGuiFromParameterNode)

    def onSceneStartClose(self, caller, event) -> None:
        if self._run is not None:
            self._run.cancel()  # its nodes would land in the next scene
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if getattr(self.parent, "isEntered", True):
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputSequence and not self._parameterNode.useVolumeList:
            firstSequence = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSequenceNode")
            if firstSequence:
                self._parameterNode.inputSequence = firstSequence

    def setParameterNode(self, inputParameterNode: SADMModuleParameterNode | None) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGuiFromParameterNode)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGuiFromParameterNode)
            self._updateGuiFromParameterNode()

    # --- parameter node -> GUI -------------------------------------------------------------

    def _updateGuiFromParameterNode(self, caller=None, event=None) -> None:
        """Rebuild the parts of the panel that connectGui cannot bind (table, model list, hints)."""
        if self._updatingGui or not self._parameterNode:
            return
        self._updatingGui = True
        try:
            parameters = self._parameterNode
            self._syncRolesWithInput()
            self.ui.sequenceRadioButton.setChecked(not parameters.useVolumeList)
            self.ui.volumesRadioButton.setChecked(parameters.useVolumeList)
            for widget in (self.ui.inputSequenceLabel, self.ui.inputSequenceSelector):
                widget.setVisible(not parameters.useVolumeList)
            for widget in (
                self.ui.inputVolumesLabel,
                self.ui.inputVolumesSelector,
                self.ui.moveUpButton,
                self.ui.moveDownButton,
            ):
                widget.setVisible(parameters.useVolumeList)
            self._checkVolumesInSelector(parameters.inputVolumes)
            self._fillTimepointTable()
            self._selectModelInSelector(parameters.model)
            self._showRolesHint()
            self._showDeviceInfo()
            self.ui.generateButton.setEnabled(self._run is not None or self._currentInput() is not None)
        finally:
            self._updatingGui = False

    def _currentInput(self):
        parameters = self._parameterNode
        if parameters.useVolumeList:
            volumes = [node for node in parameters.inputVolumes if node is not None]
            return volumes or None
        return parameters.inputSequence

    def _inputFrameNames(self) -> list[str]:
        return SADMModuleLogic.frameNames(self._currentInput())

    def _syncRolesWithInput(self) -> None:
        """One role per input frame; a new input starts with every frame observed."""
        count = len(self._inputFrameNames())
        roles = list(self._parameterNode.roles)
        if len(roles) != count:
            self._parameterNode.roles = (roles + [OBSERVED] * count)[:count]

    def _allRoles(self) -> list[str]:
        return list(self._parameterNode.roles) + [FUTURE] * self._parameterNode.futureCount

    def _fillTimepointTable(self) -> None:
        names = self._inputFrameNames()
        roles = self._allRoles()
        table = self.ui.timepointTable
        table.setRowCount(len(roles))
        for row, role in enumerate(roles):
            isInputFrame = row < len(names)
            self._setReadOnlyItem(row, 0, str(row))
            self._setReadOnlyItem(row, 1, names[row] if isInputFrame else _("(future)"))
            choices = ",".join(ROLES if isInputFrame else (FUTURE,))
            combo = table.cellWidget(row, 2)
            if combo is None or combo.property("roleChoices") != choices:
                # Reuse role boxes across updates; only a row whose kind changed gets a new one.
                combo = qt.QComboBox()
                for choice in choices.split(","):
                    combo.addItem(choice)
                combo.setProperty("roleChoices", choices)
                combo.currentIndexChanged.connect(lambda *args, row=row, combo=combo: self._onRoleChanged(row, combo))
                table.setCellWidget(row, 2, combo)
            combo.blockSignals(True)
            combo.setCurrentIndex(combo.findText(role))
            combo.blockSignals(False)
            combo.setEnabled(isInputFrame and self._run is None)
        self._fitTableHeight(len(roles))

    def _fitTableHeight(self, rows: int, maximumRows: int = 8) -> None:
        """Show every row without an empty band below (a scroll bar beyond `maximumRows`)."""
        table = self.ui.timepointTable
        shown = max(1, min(rows, maximumRows))
        height = int(table.horizontalHeader().property("sizeHint").height()) + 2 * int(table.property("frameWidth"))
        height += sum(table.rowHeight(row) for row in range(min(rows, shown))) + (shown - min(rows, shown)) * 30
        table.setMinimumHeight(height)
        table.setMaximumHeight(height)

    def _setReadOnlyItem(self, row: int, column: int, text: str) -> None:
        item = qt.QTableWidgetItem(text)
        item.setFlags(qt.Qt.ItemIsSelectable | qt.Qt.ItemIsEnabled)
        self.ui.timepointTable.setItem(row, column, item)

    def _showRolesHint(self) -> None:
        """Say live what the roles mean, or which rule they break, before the user presses Generate."""
        roles = self._allRoles()
        if not self._inputFrameNames():
            hint, style = _("Select an input sequence or volumes."), self.HINT_STYLE
        else:
            problem = self.logic.rolesProblem(roles, self._parameterNode.model)
            if problem:
                hint, style = problem, self.ERROR_STYLE
            else:
                targets = [str(i) for i, role in enumerate(roles) if role != OBSERVED]
                hint = _("{observed} observed frame(s) condition the model; generating t = {targets}.").format(
                    observed=roles.count(OBSERVED), targets=", ".join(targets)
                )
                style = self.HINT_STYLE
        self.ui.rolesHintLabel.setText(hint)
        self.ui.rolesHintLabel.setStyleSheet(style)

    def _showDeviceInfo(self) -> None:
        parameters = self._parameterNode
        targets = max(1, sum(1 for role in self._allRoles() if role != OBSERVED))
        self.ui.deviceInfoLabel.setText(
            self.logic.describeDevice(
                parameters.device, parameters.model, targets, parameters.steps, parameters.samples
            )
        )

    def _fillModelSelector(self) -> None:
        selector = self.ui.modelSelector
        selector.clear()
        for name, folder in self.logic.availableModels().items():
            selector.addItem(name, name)
            selector.setItemData(self._count(selector) - 1, str(folder), qt.Qt.ToolTipRole)
        selector.addItem(_("Load folder…"), "")

    def _selectModelInSelector(self, model: str) -> None:
        selector = self.ui.modelSelector
        index = selector.findData(model)
        if index < 0:
            # A folder loaded earlier, or a bundled name that is not installed: list it before "Load folder…".
            label = (
                Path(model).name if os.sep in model or "/" in model else _("{name} (not installed)").format(name=model)
            )
            index = max(0, self._count(selector) - 1)
            selector.insertItem(index, label, model)
            selector.setItemData(index, model, qt.Qt.ToolTipRole)
        selector.setCurrentIndex(index)

    @staticmethod
    def _count(widget) -> int:
        """Item count of a combo box: read as a Qt property, which every Python binding of Qt can do."""
        return int(widget.property("count"))

    def _checkVolumesInSelector(self, volumes) -> None:
        selector = self.ui.inputVolumesSelector
        wanted = {node.GetID() for node in volumes if node is not None}
        selector.blockSignals(True)
        for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
            state = qt.Qt.Checked if node.GetID() in wanted else qt.Qt.Unchecked
            if selector.checkState(node) != state:
                selector.setCheckState(node, state)
        selector.blockSignals(False)

    # --- GUI -> parameter node --------------------------------------------------------------

    def _onInputTypeToggled(self, *args) -> None:
        if self._updatingGui or not self._parameterNode:
            return
        self._parameterNode.useVolumeList = self.ui.volumesRadioButton.isChecked()

    def _onCheckedVolumesChanged(self, *args) -> None:
        """Keep the user's order for volumes still checked; append newly checked ones in scene order."""
        if self._updatingGui or not self._parameterNode:
            return
        checked = list(self.ui.inputVolumesSelector.checkedNodes())
        checkedIds = {node.GetID() for node in checked}
        kept = [node for node in self._parameterNode.inputVolumes if node is not None and node.GetID() in checkedIds]
        keptIds = {node.GetID() for node in kept}
        self._parameterNode.inputVolumes = kept + [node for node in checked if node.GetID() not in keptIds]

    def _moveSelectedVolume(self, offset: int) -> None:
        row = self.ui.timepointTable.currentRow()
        volumes = list(self._parameterNode.inputVolumes)
        target = row + offset
        if not (0 <= row < len(volumes) and 0 <= target < len(volumes)):
            return
        volumes[row], volumes[target] = volumes[target], volumes[row]
        roles = list(self._parameterNode.roles)
        with slicer.util.NodeModify(self._parameterNode):
            self._parameterNode.inputVolumes = volumes
            self._parameterNode.roles = roles
        self.ui.timepointTable.selectRow(target)

    def _onRoleChanged(self, row: int, combo) -> None:
        if self._updatingGui:
            return
        roles = list(self._parameterNode.roles)
        if row < len(roles):
            roles[row] = str(combo.property("currentText"))
            self._parameterNode.roles = roles

    def _onModelActivated(self, *args) -> None:
        selector = self.ui.modelSelector
        model = selector.itemData(int(selector.property("currentIndex")))
        if model:
            self._parameterNode.model = model
            return
        folder = qt.QFileDialog.getExistingDirectory(
            self.parent, _("Select an SADM model folder (config.json + model.safetensors)")
        )
        if not folder:
            self._selectModelInSelector(self._parameterNode.model)
            return
        problem = self.logic.modelProblem(folder)
        if problem:
            self._selectModelInSelector(self._parameterNode.model)
            self._showStatus(problem, error=True)
            return
        self._parameterNode.model = folder
        self._showStatus(_("Model folder {folder} loaded.").format(folder=folder))

    def _onSamplerActivated(self, *args) -> None:
        """Each sampler has its own sensible number of steps (DDIM: tens, ancestral: hundreds)."""
        self._parameterNode.steps = SAMPLER_DEFAULT_STEPS[self._parameterNode.sampler]

    # --- running ----------------------------------------------------------------------------

    def onGenerateButton(self) -> None:
        """Start a run, or cancel the running one."""
        if self._run is not None:
            self._run.cancel()
            self.ui.generateButton.setEnabled(False)
            self._showStatus(_("Cancelling: stopping after the current denoising step…"))
            return
        parameters = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("SADM could not start."), waitCursor=True):
            try:
                self.logic.installDependencies(askConfirmation=True)
                request = self.logic.prepareRequest(
                    self._currentInput(),
                    self._allRoles(),
                    model=parameters.model,
                    device=parameters.device,
                    sampler=parameters.sampler,
                    steps=parameters.steps,
                    guidance=parameters.guidance,
                    seed=parameters.seed,
                    samples=parameters.samples,
                    times=parseTimes(parameters.times),
                )
            except (SADMError, SADMInputError, SADMDependencyError, SADMResourceError, ValueError) as error:
                self._showStatus(str(error), error=True)
                return
            self._run = self.logic.startGeneration(request)
            self._setRunning(True)
            self._showStatus(self._runningMessage(request))
            self._pollTimer.start()

    def _runningMessage(self, request) -> str:
        targets = ", ".join(str(i) for i in request.targets)
        lines = [
            _("Generating t = {targets} with {model} on {device}…").format(
                targets=targets, model=request.modelName, device=request.device
            )
        ]
        return "\n".join(lines + request.notes)

    def _setRunning(self, running: bool) -> None:
        self.ui.generateButton.setText(_("Cancel") if running else _("Generate"))
        self.ui.generateButton.setEnabled(True)
        for section in (
            self.ui.inputsCollapsibleButton,
            self.ui.modelCollapsibleButton,
            self.ui.samplingCollapsibleButton,
        ):
            section.setEnabled(not running)
        self.ui.futureCountSpinBox.setEnabled(not running)
        for row in range(int(self.ui.timepointTable.property("rowCount"))):
            combo = self.ui.timepointTable.cellWidget(row, 2)
            if combo is not None and row < len(self._parameterNode.roles):
                combo.setEnabled(not running)
        if running:
            self.ui.progressBar.setVisible(True)
            self.ui.progressBar.setRange(0, 0)
            self.ui.progressBar.setFormat(_("Loading model…"))

    def _onPollTimer(self) -> None:
        """Main thread: drain the run's queue, then create nodes once it succeeded."""
        run = self._run
        if run is None:
            self._pollTimer.stop()
            return
        # Where the embedding keeps the GIL while Qt idles, Python threads only run while the main
        # thread runs Python: give the worker a guaranteed slice (free if it runs anyway).
        run.wait(timeout=self.WORKER_SLICE_S)
        for kind, payload in run.poll():
            if kind == "progress":
                self._showProgress(run.request, *payload)
        if not run.finished:
            return
        self._pollTimer.stop()
        self._run = None
        if self._parameterNode is None:
            return  # the scene was closed while running; the run was cancelled and nothing is added
        self._setRunning(False)
        if run.outcome == "done" and not run.cancelRequested:
            self._finishRun(run)
        elif run.outcome == "cancelled" or run.cancelRequested:  # a run may finish just as Cancel is pressed
            self.ui.progressBar.setVisible(False)
            self._showStatus(_("Cancelled. No node was added; the scene is as before."))
        else:
            self.ui.progressBar.setVisible(False)
            self._showStatus(str(run.error), error=True)
        self._updateGuiFromParameterNode()

    def _showProgress(self, request, done: int, total: int, frameIndex: int) -> None:
        targets = request.targets
        stepsPerFrame = max(1, total // max(1, len(targets)))
        position = targets.index(frameIndex) + 1 if frameIndex in targets else 1
        step = done - (position - 1) * stepsPerFrame
        self.ui.progressBar.setRange(0, total)
        self.ui.progressBar.setValue(done)
        self.ui.progressBar.setFormat(
            _("Frame {position} of {count} (t = {frame}) · step {step}/{steps} · %p%").format(
                position=position, count=len(targets), frame=frameIndex, step=step, steps=stepsPerFrame
            )
        )

    def _finishRun(self, run) -> None:
        with slicer.util.tryWithErrorDisplay(_("SADM could not add the results to the scene."), waitCursor=True):
            outputs = self.logic.createOutputNodes(run.request, run.result)
            if self._parameterNode.showResult:
                self.logic.showResult(outputs)
            self.lastOutputs = outputs
            self.ui.progressBar.setRange(0, 100)
            self.ui.progressBar.setValue(100)
            self.ui.progressBar.setFormat(_("Done · %p%"))
            names = ", ".join(node.GetName() for node in outputs.volumes)
            message = _("Generated {names} in {seconds:.1f} s; sequence {sequence}.").format(
                names=names, seconds=run.seconds, sequence=outputs.sequence.GetName()
            )
            self._showStatus("\n".join([message, *run.request.notes]))

    def _showStatus(self, text: str, error: bool = False) -> None:
        self.ui.statusLabel.setText(text)
        self.ui.statusLabel.setStyleSheet(self.ERROR_STYLE if error else "")
        (logging.error if error else logging.info)(f"SADM: {text}")


#
# SADMModuleLogic
#


@dataclass
class SequenceInput:
    """The input as the Logic understood it: its frames in order, and how they are indexed."""

    name: str
    frameNodes: list  # scalar volume nodes: data nodes of the sequence, or the listed volumes
    sequenceNode: vtkMRMLSequenceNode | None
    indexName: str = "frame"
    indexUnit: str = ""
    indexValues: list[str] = field(default_factory=list)
    numericIndex: bool = True
    explicitTimes: bool = False  # index values are times the caller gave (console `times=`)


@dataclass
class PreparedRequest:
    """Everything a run needs, read from the scene on the main thread (arrays are copies), so the
    worker thread never touches MRML: the engine's one `PreparedRequest` (roles, times, sampling)
    plus the frames and what the outputs need from the scene."""

    input: SequenceInput
    request: engineRequest.GenerationRequest
    frames: list  # np.ndarray (k, j, i) on frame 0's grid for observed frames, None otherwise
    resampled: set[int]
    geometry: vtkMRMLScalarVolumeNode  # detached node holding frame 0's origin, spacing, directions
    transformNodeID: str | None
    modelFolder: str
    modelName: str
    device: str
    indexValues: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def roles(self) -> tuple[str, ...]:
        return self.request.roles

    @property
    def targets(self) -> list[int]:
        return self.request.targets

    @property
    def times(self) -> tuple[float, ...] | None:
        return self.request.times

    @property
    def sampling(self) -> engineRequest.SamplingOptions:
        return self.request.sampling


class GenerationOutputs(list):
    """The nodes one run added, as a list (so `for n in outputs: slicer.mrmlScene.RemoveNode(n)`
    undoes it) with named parts: volumes (one per generated frame, index order), stdMaps (samples > 1),
    sequence (observed + generated frames), inputSequence (the list input, as a sequence), browser,
    and the browser's proxy nodes."""

    def __init__(self) -> None:
        super().__init__()
        self.volumes: list = []
        self.stdMaps: list = []
        self.sequence = None
        self.inputSequence = None
        self.browser = None
        self.outputProxy = None
        self.inputProxy = None


class GenerationRun:
    """One generation on a worker thread. The main thread calls `poll()` (from a QTimer) to receive
    progress and the outcome, and creates nodes itself; nothing here touches the scene."""

    def __init__(self, logic: SADMModuleLogic, request: PreparedRequest) -> None:
        self.request = request
        self.outcome: str | None = None  # "done" | "cancelled" | "failed"
        self.result = None
        self.error: BaseException | None = None
        self.seconds = 0.0
        self._logic = logic
        self._cancel = threading.Event()
        self._events: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="SADM generation", daemon=True)

    def start(self) -> GenerationRun:
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def cancelRequested(self) -> bool:
        return self._cancel.is_set()

    def poll(self) -> list[tuple]:
        """Events since the last poll: ("progress", (done, total, frame)), then ("done" | "cancelled" | "failed", payload)."""
        events = []
        while True:
            try:
                kind, payload = self._events.get_nowait()
            except queue.Empty:
                return events
            events.append((kind, payload))
            if kind == "done":
                self.outcome, self.result = kind, payload
            elif kind in ("cancelled", "failed"):
                self.outcome, self.error = kind, payload

    def _work(self) -> None:
        started = time.monotonic()
        try:
            result = self._logic.runRequest(
                self.request, progress=lambda *step: self._events.put(("progress", step)), cancel=self._cancel
            )
            self.seconds = time.monotonic() - started
            self._events.put(("done", result))
        except GenerationCancelled as error:
            self._events.put(("cancelled", error))
        except BaseException as error:  # reported on the main thread; never lost in a worker
            logging.exception("SADM generation failed")
            self._events.put(("failed", error))


class SADMModuleLogic(ScriptedLoadableModuleLogic):
    """All the work: read the input nodes, run the engine, create the output nodes.

    Console use (the same path the panel takes):

        logic = slicer.util.getModuleLogic("SADMModule")
        outputs = logic.generate(sequenceNode, ["observed", "missing", "observed", "future"])
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._engine = None
        self._engineKey = None
        self._engineLock = threading.Lock()
        self._secondsPerStep: dict[tuple[str, str], float] = {}

    def getParameterNode(self) -> SADMModuleParameterNode:
        return SADMModuleParameterNode(super().getParameterNode())

    # --- console API ------------------------------------------------------------------------

    def generate(
        self,
        inputSequenceOrVolumes,
        roles: Sequence[str],
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        sampler: str = DEFAULT_SAMPLER,
        steps: int | None = None,
        guidance: float | None = None,
        seed: int = 0,
        samples: int = 1,
        progress: Callable[[int, int, int], None] | None = None,
        cancel: threading.Event | None = None,
        showResult: bool = True,
        times: Sequence[float] | None = None,
        native: str = DEFAULT_NATIVE_PATH,
    ) -> GenerationOutputs:
        """Generate every missing and future frame and add the results to the scene.

        inputSequenceOrVolumes: a vtkMRMLSequenceNode of scalar volumes, or a list of
        vtkMRMLScalarVolumeNode in time order. roles: one of "observed" / "missing" / "future" per
        input frame, then "future" once per timepoint to add. steps None: the sampler's default;
        guidance None: the model's. samples > 1 returns the mean and adds "_std" maps.
        progress(doneSteps, totalSteps, frameIndex) is called after every denoising step; setting
        `cancel` stops within one step (GenerationCancelled is raised, no node is added).
        times: one time per timepoint (input and future), e.g. ages [61, 64.5, 70, 78]; they become the
        output sequence's index values, and place the frames for continuous-time models (brain-demo),
        which otherwise read them from a sequence's numeric index values.
        native: "warp" (the nearest observed frame moved by the model's motion, keeping the input's
        detail) or "resample" (the model's frame resampled up, as in the paper).
        Runs in the calling thread. Raises with a message naming the bad value; the scene is then
        unchanged. Returns the new nodes (see GenerationOutputs).
        """
        request = self.prepareRequest(
            inputSequenceOrVolumes, roles, model, device, sampler, steps, guidance, seed, samples, times, native
        )
        for note in request.notes:
            logging.warning(f"SADM: {note}")
        result = self.runRequest(request, progress, cancel)
        outputs = self.createOutputNodes(request, result)
        if showResult:
            self.showResult(outputs)
        return outputs

    def startGeneration(self, request: PreparedRequest) -> GenerationRun:
        """Run a prepared request on a worker thread (the panel's path)."""
        return GenerationRun(self, request).start()

    # --- dependencies -----------------------------------------------------------------------

    @staticmethod
    def missingPackages() -> list[str]:
        """Import names of the packages the engine needs that cannot be imported."""
        missing = []
        for name in ("torch", "safetensors", "einops", "SimpleITK"):
            try:
                importlib.import_module(name)
            except ImportError:
                missing.append(name)
        return missing

    def checkDependencies(self) -> None:
        """Raise with the exact fix when a package is missing (the console path; the panel installs)."""
        missing = self.missingPackages()
        if "torch" in missing:
            raise SADMDependencyError(
                "PyTorch is not installed. Install the PyTorch extension from the Extensions Manager, then run "
                f"`import PyTorchUtils; PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True, "
                f"torchVersionRequirement='{TORCH_REQUIREMENT}')` in the Python console (or press Generate in the SADM "
                "panel, which offers to do it), and restart Slicer."
            )
        if missing:
            raise SADMDependencyError(
                f"the Python package(s) {', '.join(missing)} are not installed; run "
                f"`slicer.util.pip_install('{' '.join(self._requirementsFor(missing))}')` in the Python console "
                "(or press Generate in the SADM panel, which offers to do it)."
            )

    def installDependencies(self, askConfirmation: bool = True) -> None:
        """Install what is missing, with consent: torch through the PyTorch extension, the rest with pip."""
        missing = self.missingPackages()
        if "torch" in missing:
            self._installTorch(askConfirmation)
            missing.remove("torch")
        if missing:
            requirements = self._requirementsFor(missing)
            try:
                try:
                    from slicer.packaging import pip_ensure  # Slicer >= 5.12: asks, installs, offers a restart
                except ImportError:
                    pip_ensure = None
                if pip_ensure is not None:
                    pip_ensure(requirements, requester="SADM", prompt_install=askConfirmation)
                else:
                    if askConfirmation and not slicer.util.confirmOkCancelDisplay(
                        _("SADM needs the Python packages {packages}. Install them now with pip?").format(
                            packages=", ".join(requirements)
                        )
                    ):
                        raise SADMDependencyError(
                            f"installation of {', '.join(requirements)} was declined; SADM cannot run without them"
                        )
                    slicer.util.pip_install(" ".join(requirements))
            except SADMDependencyError:
                raise
            except Exception as error:
                raise SADMDependencyError(
                    f"installing {', '.join(requirements)} failed ({error}). Run "
                    f"`slicer.util.pip_install('{' '.join(requirements)}')` in the Python console, check the "
                    "network or proxy settings, and restart Slicer."
                ) from error
        self.checkDependencies()

    def _installTorch(self, askConfirmation: bool) -> None:
        try:
            import PyTorchUtils
        except ModuleNotFoundError as error:
            raise SADMDependencyError(
                "PyTorch is not installed and the PyTorch extension is missing: install the 'PyTorch' extension "
                "from the Extensions Manager, restart Slicer, and press Generate again."
            ) from error
        try:
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
                askConfirmation=askConfirmation, torchVersionRequirement=TORCH_REQUIREMENT
            )
        except Exception as error:
            raise SADMDependencyError(
                f"installing PyTorch failed ({error}). Open the PyTorch Util module, install PyTorch "
                f"{TORCH_REQUIREMENT} there, and restart Slicer."
            ) from error
        if torch is None:
            raise SADMDependencyError(
                f"PyTorch was not installed (declined). SADM needs PyTorch {TORCH_REQUIREMENT}: install it from the "
                "PyTorch Util module, then press Generate again."
            )

    @staticmethod
    def _requirementsFor(importNames: Sequence[str]) -> list[str]:
        """pip requirement lines (Resources/requirements.txt) for the given import names."""
        path = Path(__file__).resolve().parent / "Resources" / "requirements.txt"
        lines = (
            [line.split("#")[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
            if path.is_file()
            else []
        )
        lines = [line for line in lines if line]
        chosen = []
        for name in importNames:
            match = next((line for line in lines if re.split(r"[<>=!~\[; ]", line)[0].lower() == name.lower()), name)
            chosen.append(match)
        return chosen

    # --- input ------------------------------------------------------------------------------

    @staticmethod
    def frameNames(inputSequenceOrVolumes) -> list[str]:
        """Names of the input's frames, for the timepoint table (empty when nothing is selected)."""
        if inputSequenceOrVolumes is None:
            return []
        if isinstance(inputSequenceOrVolumes, slicer.vtkMRMLNode):
            if inputSequenceOrVolumes.IsA("vtkMRMLSequenceNode"):
                sequence = inputSequenceOrVolumes
                unit = f" {sequence.GetIndexUnit()}" if sequence.GetIndexUnit() else ""
                return [
                    f"{sequence.GetName()} [{sequence.GetNthIndexValue(i)}{unit}]"
                    for i in range(sequence.GetNumberOfDataNodes())
                ]
            return [inputSequenceOrVolumes.GetName()]
        return [node.GetName() if node is not None else "(none)" for node in inputSequenceOrVolumes]

    def readInput(self, inputSequenceOrVolumes) -> SequenceInput:
        """Understand the input: its frames (scalar volumes only), name and index values."""
        if inputSequenceOrVolumes is None or (
            not isinstance(inputSequenceOrVolumes, slicer.vtkMRMLNode) and len(inputSequenceOrVolumes) == 0
        ):
            raise SADMInputError(
                "no input selected: choose a Sequence node of scalar volumes, or a list of scalar volume nodes "
                "(one per timepoint)"
            )
        if isinstance(inputSequenceOrVolumes, slicer.vtkMRMLNode) and inputSequenceOrVolumes.IsA("vtkMRMLSequenceNode"):
            sequence = inputSequenceOrVolumes
            frames = [sequence.GetNthDataNode(i) for i in range(sequence.GetNumberOfDataNodes())]
            if not frames:
                raise SADMInputError(
                    f"sequence {sequence.GetName()!r} has no items; it needs at least one observed volume"
                )
            sequenceInput = SequenceInput(
                name=sequence.GetName(),
                frameNodes=frames,
                sequenceNode=sequence,
                indexName=sequence.GetIndexName() or "frame",
                indexUnit=sequence.GetIndexUnit() or "",
                indexValues=[sequence.GetNthIndexValue(i) for i in range(len(frames))],
                numericIndex=sequence.GetIndexType() == vtkMRMLSequenceNode.NumericIndex,
            )
            if sequenceInput.numericIndex and not all(_isNumber(v) for v in sequenceInput.indexValues):
                sequenceInput.numericIndex = False
        else:
            volumes = (
                [inputSequenceOrVolumes]
                if isinstance(inputSequenceOrVolumes, slicer.vtkMRMLNode)
                else list(inputSequenceOrVolumes)
            )
            sequenceInput = SequenceInput(
                name=_commonName([v.GetName() if v is not None else "" for v in volumes]),
                frameNodes=volumes,
                sequenceNode=None,
                indexValues=[str(i) for i in range(len(volumes))],
            )
        for position, node in enumerate(sequenceInput.frameNodes):
            _checkScalarVolume(node, position)
        return sequenceInput

    # --- models -----------------------------------------------------------------------------

    @staticmethod
    def availableModels() -> dict:
        """Bundled model names -> folders; empty when the engine cannot be imported yet (no torch)."""
        try:
            from sadm.storage.registry import available_models
        except ImportError:
            return {}
        return available_models()

    @staticmethod
    def resolveModel(model: str):
        """(folder, config) of a bundled model name or a model folder; CheckpointError says why not."""
        from sadm.storage.checkpoint import read_config
        from sadm.storage.registry import resolve_model

        if not model:
            raise CheckpointError("no model selected: choose a bundled model or load a model folder")
        folder = resolve_model(model)
        return folder, read_config(folder)

    def modelProblem(self, model: str) -> str | None:
        """Why `model` cannot be used, or None (cheap: reads config.json only)."""
        try:
            self.resolveModel(model)
        except (CheckpointError, ImportError) as error:
            return str(error)
        return None

    def rolesProblem(self, roles: Sequence[str], model: str) -> str | None:
        """The rule `roles` break for `model`, or None; quiet when the engine is not importable yet."""
        maxFrames = None
        with contextlib.suppress(CheckpointError, ImportError):
            maxFrames = self.resolveModel(model)[1].max_frames
        try:
            engineRequest.validate_roles(roles, maxFrames)
        except InvalidRolesError as error:
            return str(error)
        return None

    # --- request ----------------------------------------------------------------------------

    def prepareRequest(
        self,
        inputSequenceOrVolumes,
        roles,
        model=DEFAULT_MODEL,
        device="auto",
        sampler=DEFAULT_SAMPLER,
        steps=None,
        guidance=None,
        seed=0,
        samples=1,
        times=None,
        native=DEFAULT_NATIVE_PATH,
    ) -> PreparedRequest:
        """Check everything before any work, in the order a user would fix it, and copy the frames.
        Roles, times and sampling options go through the engine's `build_request`, the rules
        `sadm generate` applies too."""
        self.checkDependencies()
        sequenceInput = self.readInput(inputSequenceOrVolumes)
        request = engineRequest.build_request(
            roles,
            len(sequenceInput.frameNodes),
            input_times=_inputTimes(sequenceInput),
            times=times,
            sampler=sampler,
            steps=steps,
            guidance=guidance,
            seed=seed,
            samples=samples,
            native=native,
        )
        if times is not None:
            sequenceInput = _withTimes(sequenceInput, request.times)
        modelFolder, config = self.resolveModel(model)
        request.positions_for(config.max_frames, config.attention.time_embedding, f"model {model}")
        frames, resampled, notes = self._observedFrames(sequenceInput, list(request.roles))
        resolvedDevice = self.resolveDevice(device)
        if resolvedDevice.startswith("cuda"):
            self._checkGpuMemory(modelFolder, config, request.sampling.samples, resolvedDevice)
        reference = sequenceInput.frameNodes[0]
        geometry = vtkMRMLScalarVolumeNode()
        geometry.CopyOrientation(reference)
        return PreparedRequest(
            input=sequenceInput,
            request=request,
            frames=frames,
            resampled=resampled,
            geometry=geometry,
            transformNodeID=reference.GetTransformNodeID() if sequenceInput.sequenceNode is None else None,
            modelFolder=str(modelFolder),
            modelName=str(model) if not os.path.isdir(str(model)) else Path(model).name,
            device=resolvedDevice,
            indexValues=_outputIndexValues(sequenceInput, request),
            notes=notes,
        )

    def _observedFrames(self, sequenceInput: SequenceInput, roles: list[str]):
        """Copies of the observed frames on frame 0's grid; frames on another grid are resampled."""
        reference = sequenceInput.frameNodes[0]
        frames, resampled, notes = [], set(), []
        for index, role in enumerate(roles):
            node = sequenceInput.frameNodes[index] if index < len(sequenceInput.frameNodes) else None
            if role != OBSERVED:
                frames.append(None)
                continue
            difference = _gridDifference(node, reference) if index > 0 else None
            if difference is None:
                frames.append(np.array(slicer.util.arrayFromVolume(node), copy=True))
                continue
            frames.append(resampleOntoGrid(node, reference, index))
            resampled.add(index)
            notes.append(
                f"Frame {index} ({node.GetName()}) is on another voxel grid than frame 0 ({reference.GetName()}): "
                f"{difference}. It was resampled onto frame 0's grid (linear interpolation)."
            )
        return frames, resampled, notes

    # --- device -----------------------------------------------------------------------------

    @staticmethod
    def resolveDevice(device: str) -> str:
        """ "auto" -> cuda / mps / cpu; an unusable explicit choice raises with what to do."""
        from sadm.devices import resolve_device

        name = str(device).strip().lower()
        if name not in DEVICES and not re.fullmatch(r"cuda:\d+|mps", name):
            raise SADMResourceError(f"device {device!r} is unknown; choose 'auto', 'cuda', 'cuda:<index>' or 'cpu'")
        try:
            return str(resolve_device(name))
        except RuntimeError as error:
            raise SADMResourceError(
                f"{error}. In Slicer, open the PyTorch Util module and reinstall PyTorch with the CUDA computation "
                "backend that matches your NVIDIA driver (check the driver with nvidia-smi), or set Device to 'auto' "
                "or 'cpu'."
            ) from error

    def describeDevice(
        self, device: str = "auto", model: str = DEFAULT_MODEL, targets: int = 1, steps: int = 50, samples: int = 1
    ) -> str:
        """One line for the panel: what will run, with free GPU memory or the expected CPU time."""
        if "torch" in self.missingPackages():
            return _("PyTorch is not installed: Generate will offer to install it (PyTorch extension).")
        import torch

        try:
            resolved = self.resolveDevice(device)
        except SADMResourceError as error:
            if str(device).startswith("cuda") and not torch.cuda.is_available():
                return _(
                    "CUDA is not available to PyTorch {version} (CUDA build: {build}): reinstall PyTorch with CUDA in "
                    "the PyTorch Util module, or choose auto / cpu."
                ).format(version=torch.__version__, build=torch.version.cuda or "none")
            return str(error)

        if resolved.startswith("cuda"):
            index = torch.device(resolved).index or 0
            free, _total = torch.cuda.mem_get_info(index)
            return _("CUDA: {name}, {free:.1f} GB free").format(
                name=torch.cuda.get_device_name(index), free=free / 2**30
            )
        if resolved == "mps":
            return _("Apple MPS")
        seconds = self.estimateSeconds(model, resolved, targets, steps, samples)
        expected = _("expect ~{seconds}").format(seconds=_formatDuration(seconds)) if seconds else _("time unknown")
        return _("CPU ({threads} threads) — slow, {expected}").format(
            threads=torch.get_num_threads(), expected=expected
        )

    def estimateSeconds(self, model: str, device: str, targets: int, steps: int, samples: int) -> float | None:
        """Rough run time: measured speed of this model on this device, else a CPU cost model."""
        try:
            folder, config = self.resolveModel(model)
        except (CheckpointError, ImportError):
            return None
        perStep = self._secondsPerStep.get((str(Path(folder).resolve()), device))
        if perStep is None:
            import torch

            # the default native path also redraws each target's anchor in the same batch: about twice the work
            redraw = 2.0 if DEFAULT_NATIVE_PATH == "warp" else 1.0
            perStep = redraw * _cpuSecondsPerStep(config, torch.get_num_threads())
        return perStep * steps * targets * samples

    def _checkGpuMemory(self, modelFolder, config, samples: int, device: str) -> None:
        """Refuse before starting when even a low estimate does not fit in the free GPU memory."""
        import torch

        index = torch.device(device).index or 0
        free, total = torch.cuda.mem_get_info(index)
        needed = estimateGpuMemoryBytes(modelFolder, config, samples)
        if needed > free:
            perSample = estimateGpuMemoryBytes(modelFolder, config, 2) - estimateGpuMemoryBytes(modelFolder, config, 1)
            fitting = int((free - estimateGpuMemoryBytes(modelFolder, config, 0)) // max(perSample, 1))
            advice = (
                f"Lower Samples to {fitting} or less, close other programs that use the GPU, or set Device to "
                "'cpu' (slower)."
                if fitting >= 1
                else "Even one sample does not fit: close other programs that use the GPU, or set Device to 'cpu' (slower)."
            )
            raise SADMResourceError(
                f"this run needs about {needed / 2**30:.1f} GB of GPU memory but {torch.cuda.get_device_name(index)} has "
                f"{free / 2**30:.1f} GB free of {total / 2**30:.1f} GB. {advice}"
            )

    # --- running ----------------------------------------------------------------------------

    def engineFor(self, modelFolder: str, device: str):
        """The loaded engine; reloaded only when the model (folder or weights) or the device changes."""
        weights = Path(modelFolder) / "model.safetensors"
        key = (str(Path(modelFolder).resolve()), device, weights.stat().st_mtime if weights.exists() else 0.0)
        with self._engineLock:
            if self._engineKey != key:
                self._engine, self._engineKey = None, None
                _freeGpuMemory()
                from sadm.generation.engine import Engine

                self._engine = Engine.load(modelFolder, device)
                self._engineKey = key
            return self._engine

    def runRequest(self, request: PreparedRequest, progress=None, cancel: threading.Event | None = None):
        """Run the engine (any thread): its `Generation` (mean, std and every draw per frame). Touches no node."""
        engine = self.engineFor(request.modelFolder, request.device)
        started = time.monotonic()
        try:
            result = engine.generate(request.frames, request.request, progress=progress, cancel=cancel)
        except GenerationCancelled:
            raise
        except Exception as error:
            if _isOutOfMemory(error):
                _freeGpuMemory()
                raise SADMResourceError(
                    f"the GPU ran out of memory while generating {request.sampling.samples} sample(s); the memory was "
                    f"freed. Lower Samples (now {request.sampling.samples}), close other programs that use the GPU, or set Device to "
                    "'cpu' (slower)."
                ) from error
            raise
        sampling = request.sampling
        perStep = (time.monotonic() - started) / max(1, sampling.steps * len(request.targets) * sampling.samples)
        self._secondsPerStep[(str(Path(request.modelFolder).resolve()), request.device)] = perStep
        return result

    # --- outputs ----------------------------------------------------------------------------

    def createOutputNodes(self, request: PreparedRequest, result) -> GenerationOutputs:
        """Main thread: one volume per generated frame (+ std maps), the output sequence and its
        browser. If anything fails, every node added so far is removed again."""
        outputs = GenerationOutputs()
        try:
            self._addVolumes(request, result, outputs)
            self._addSequences(request, outputs)
            self._addBrowser(request, outputs)
        except Exception:
            for node in reversed(outputs):
                _removeWithDisplayAndStorage(node)
            raise
        with contextlib.suppress(AttributeError):  # no sequence toolbar (Slicer started without main window)
            slicer.modules.sequences.toolBar().setActiveBrowserNode(outputs.browser)
        return outputs

    def _addVolumes(self, request: PreparedRequest, result, outputs: GenerationOutputs) -> None:
        name = request.input.name
        statistic = "mean" if request.sampling.samples > 1 else "sample"
        for index in request.targets:
            volume = self._addVolume(f"{name}_SADM_t{index}", result.mean[index], request, index, statistic)
            outputs.volumes.append(volume)
            outputs.append(volume)
        if result.std is not None:
            for index in request.targets:
                stdMap = self._addVolume(f"{name}_SADM_t{index}_std", result.std[index], request, index, "std")
                outputs.stdMaps.append(stdMap)
                outputs.append(stdMap)

    def _addVolume(self, name: str, array: np.ndarray, request: PreparedRequest, index: int, statistic: str):
        volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
        volume.CopyOrientation(request.geometry)
        slicer.util.updateVolumeFromArray(volume, np.ascontiguousarray(array, dtype=np.float32))
        if request.transformNodeID:
            volume.SetAndObserveTransformNodeID(request.transformNodeID)
        volume.CreateDefaultDisplayNodes()
        self._tag(volume, request, {"Timepoint": str(index), "Role": request.roles[index], "Statistic": statistic})
        return volume

    def _tag(self, node, request: PreparedRequest, extra: dict | None = None) -> None:
        """Record how a node was made, so a saved scene says which model and settings produced it."""
        attributes = {
            "Generated": "true",
            "Model": request.modelName,
            "ModelFolder": request.modelFolder,
            "Device": request.device,
            "Sampler": request.sampling.sampler,
            "Steps": str(request.sampling.steps),
            "Guidance": "model default" if request.sampling.guidance is None else f"{request.sampling.guidance:g}",
            "Seed": str(request.sampling.seed),
            "Samples": str(request.sampling.samples),
            "Input": request.input.name,
            "Roles": ",".join(request.roles),
        }
        attributes.update(extra or {})
        for key, value in attributes.items():
            node.SetAttribute(ATTRIBUTE_PREFIX + key, value)

    def _addSequences(self, request: PreparedRequest, outputs: GenerationOutputs) -> None:
        """The output sequence (observed + generated frames in order) and, for a volume-list input, the
        input as a sequence so that one browser shows both at the same timepoint."""
        source = request.input
        sequence = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSequenceNode", f"{source.name}_SADM")
        outputs.append(sequence)
        outputs.sequence = sequence
        _copyIndexing(sequence, source)
        generated = dict(zip(request.targets, outputs.volumes))
        for index, value in enumerate(request.indexValues):
            if index in generated:
                frame = generated[index]
            elif index in request.resampled:
                frame = vtkMRMLScalarVolumeNode()  # detached: never enters the scene
                frame.SetName(f"{source.frameNodes[index].GetName()}_resampled")
                frame.CopyOrientation(request.geometry)
                slicer.util.updateVolumeFromArray(frame, request.frames[index].astype(np.float32))
            else:
                frame = source.frameNodes[index]
            sequence.SetDataNodeAtValue(frame, value)  # a deep copy: the input node is only read
        self._tag(sequence, request)
        if source.sequenceNode is None:
            inputSequence = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSequenceNode", f"{source.name}_SADM_input")
            outputs.append(inputSequence)
            outputs.inputSequence = inputSequence
            _copyIndexing(inputSequence, source)
            for node, value in zip(source.frameNodes, source.indexValues):
                inputSequence.SetDataNodeAtValue(node, value)

    def _addBrowser(self, request: PreparedRequest, outputs: GenerationOutputs) -> None:
        browser = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", f"{request.input.name}_SADM_browser")
        outputs.append(browser)
        outputs.browser = browser
        browser.SetAndObserveMasterSequenceNodeID(outputs.sequence.GetID())
        comparison = request.input.sequenceNode or outputs.inputSequence
        if comparison is not None and (request.input.numericIndex or request.input.sequenceNode is None):
            browser.AddSynchronizedSequenceNodeID(comparison.GetID())
            # Show the input as it is: never write proxy edits back, never add items to it.
            browser.SetSaveChanges(comparison, False)
            browser.SetMissingItemMode(comparison, slicer.vtkMRMLSequenceBrowserNode.MissingItemCreateFromPrevious)
        browser.SetSelectedItemNumber(request.targets[0])
        slicer.modules.sequences.logic().UpdateProxyNodesFromSequences(browser)
        outputs.outputProxy = browser.GetProxyNode(outputs.sequence)
        if request.transformNodeID and outputs.outputProxy is not None:
            outputs.outputProxy.SetAndObserveTransformNodeID(request.transformNodeID)  # where frame 0 is shown
        outputs.inputProxy = browser.GetProxyNode(comparison) if comparison is not None else None
        for proxy in (outputs.outputProxy, outputs.inputProxy):
            if proxy is not None and proxy not in outputs:
                outputs.append(proxy)

    def showResult(self, outputs: GenerationOutputs) -> None:
        """Side-by-side layout: the input (Red) and the generated sequence (Yellow) at the same timepoint."""
        layoutManager = slicer.app.layoutManager() if hasattr(slicer.app, "layoutManager") else None
        if layoutManager is None:
            return  # no views (Slicer without main window)
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView)
        views = {"Red": outputs.inputProxy or outputs.outputProxy, "Yellow": outputs.outputProxy}
        for composite in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode"):
            volume = views.get(composite.GetLayoutName())
            if volume is not None:
                composite.SetBackgroundVolumeID(volume.GetID())
                composite.SetForegroundVolumeID(None)
        slicer.util.resetSliceViews()


#
# Helpers (module level so the Logic reads as the workflow)
#


def _removeWithDisplayAndStorage(node) -> None:
    """Remove a node and the display/storage nodes it brought into the scene."""
    if node is None or node.GetScene() is None:
        return
    dependents = []
    for getCount, getNth in (
        ("GetNumberOfDisplayNodes", "GetNthDisplayNode"),
        ("GetNumberOfStorageNodes", "GetNthStorageNode"),
    ):
        if hasattr(node, getCount):
            dependents += [getattr(node, getNth)(i) for i in range(getattr(node, getCount)())]
    slicer.mrmlScene.RemoveNode(node)
    for dependent in dependents:
        if dependent is not None and dependent.GetScene() is not None:
            slicer.mrmlScene.RemoveNode(dependent)


def _isNumber(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _commonName(names: list[str]) -> str:
    """ "heart_t0", "heart_t1" -> "heart": the shared prefix without a trailing frame counter."""
    names = [n for n in names if n]
    if not names:
        return "SADM"
    prefix = os.path.commonprefix(names) if len(names) > 1 else names[0]  # noqa: RUF071  (characters, not paths)
    stem = re.sub(r"(?:[\s_\-.]+(?:t|tp|frame|time|timepoint))?[\s_\-.]*\d*$", "", prefix, flags=re.IGNORECASE)
    return stem or names[0]


def _checkScalarVolume(node, position: int) -> None:
    """Frames must be single-component scalar volumes with voxels (not label maps, not RGB)."""
    if node is None:
        raise SADMInputError(f"frame {position} is empty (no node); remove it or select a scalar volume")
    name, kind = node.GetName(), node.GetClassName()
    if node.IsA("vtkMRMLLabelMapVolumeNode"):
        raise SADMInputError(
            f"frame {position} ({name}) is a label map ({kind}); SADM generates intensity images: give scalar "
            "volumes (Volumes module > Volume information > Convert to scalar volume)"
        )
    if (
        not node.IsA("vtkMRMLScalarVolumeNode")
        or node.IsA("vtkMRMLVectorVolumeNode")
        or node.IsA("vtkMRMLTensorVolumeNode")
    ):
        raise SADMInputError(
            f"frame {position} ({name}) is a {kind}, not a scalar volume; give single-component scalar volumes "
            "(convert RGB/vector images with the Vector to Scalar Volume module)"
        )
    image = node.GetImageData()
    if image is None or image.GetNumberOfPoints() == 0:
        raise SADMInputError(f"frame {position} ({name}) has no voxels; load its image first")
    if image.GetNumberOfScalarComponents() != 1:
        raise SADMInputError(
            f"frame {position} ({name}) has {image.GetNumberOfScalarComponents()} components per voxel; "
            "SADM needs one (use the Vector to Scalar Volume module)"
        )


def _ijkToWorld(node) -> vtk.vtkMatrix4x4:
    """IJK -> world RAS of a volume, through its parent transform when it has a linear one."""
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    parent = node.GetParentTransformNode()
    if parent is not None:
        if not parent.IsTransformToWorldLinear():
            raise SADMInputError(
                f"{node.GetName()} is under the non-linear transform {parent.GetName()}; it cannot be resampled onto "
                "frame 0's grid here: harden the transform first (Transforms module > Apply transform)"
            )
        toWorld = vtk.vtkMatrix4x4()
        parent.GetMatrixTransformToWorld(toWorld)
        vtk.vtkMatrix4x4.Multiply4x4(toWorld, matrix, matrix)
    return matrix


def _gridDifference(node, reference) -> str | None:
    """How the voxel grid of `node` differs from `reference` in world space, or None if it is the same."""
    dims, referenceDims = node.GetImageData().GetDimensions(), reference.GetImageData().GetDimensions()
    if tuple(dims) != tuple(referenceDims):
        return f"size {'×'.join(map(str, dims))} vs {'×'.join(map(str, referenceDims))} voxels (i×j×k)"
    spacing, referenceSpacing = np.array(node.GetSpacing()), np.array(reference.GetSpacing())
    if not np.allclose(spacing, referenceSpacing, rtol=1e-5, atol=1e-8):
        return f"spacing {_mm(spacing)} vs {_mm(referenceSpacing)} mm"
    matrix, referenceMatrix = (
        slicer.util.arrayFromVTKMatrix(_ijkToWorld(node)),
        slicer.util.arrayFromVTKMatrix(_ijkToWorld(reference)),
    )
    tolerance = 1e-4 * float(referenceSpacing.max())
    if not np.allclose(matrix[:3, :3], referenceMatrix[:3, :3], atol=tolerance):
        return "different axis directions"
    if not np.allclose(matrix[:3, 3], referenceMatrix[:3, 3], atol=tolerance):
        return f"origin {_mm(matrix[:3, 3])} vs {_mm(referenceMatrix[:3, 3])} mm (RAS)"
    return None


def _mm(values) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def resampleOntoGrid(node, reference, position: int = 0) -> np.ndarray:
    """`node`'s voxels sampled (linearly) on `reference`'s voxel grid, as a (k, j, i) float32 copy.
    Refuses when the two volumes do not overlap in space."""
    referenceToWorld = _ijkToWorld(reference)
    worldToNode = vtk.vtkMatrix4x4()
    vtk.vtkMatrix4x4.Invert(_ijkToWorld(node), worldToNode)
    referenceToNode = vtk.vtkMatrix4x4()
    vtk.vtkMatrix4x4.Multiply4x4(worldToNode, referenceToWorld, referenceToNode)
    dims = reference.GetImageData().GetDimensions()
    nodeDims = node.GetImageData().GetDimensions()
    corners = np.array([[i, j, k, 1.0] for i in (0, dims[0] - 1) for j in (0, dims[1] - 1) for k in (0, dims[2] - 1)])
    mapped = corners @ slicer.util.arrayFromVTKMatrix(referenceToNode).T
    low, high = mapped[:, :3].min(axis=0), mapped[:, :3].max(axis=0)
    if np.any(high < -0.5) or np.any(low > np.array(nodeDims) - 0.5):
        raise SADMInputError(
            f"frame {position} ({node.GetName()}) does not overlap frame 0 ({reference.GetName()}) in space, so it "
            "cannot be resampled onto frame 0's grid; check the volumes' origins and transforms"
        )
    image = vtk.vtkImageData()
    image.ShallowCopy(node.GetImageData())
    image.SetOrigin(0, 0, 0)
    image.SetSpacing(1, 1, 1)
    reslice = vtk.vtkImageReslice()
    reslice.SetInputData(image)
    reslice.SetResliceAxes(referenceToNode)
    reslice.SetInterpolationModeToLinear()
    reslice.SetOutputScalarType(vtk.VTK_FLOAT)
    reslice.SetOutputOrigin(0, 0, 0)
    reslice.SetOutputSpacing(1, 1, 1)
    reslice.SetOutputExtent(0, dims[0] - 1, 0, dims[1] - 1, 0, dims[2] - 1)
    reslice.SetBackgroundLevel(float(image.GetScalarRange()[0]))
    reslice.Update()
    from vtk.util.numpy_support import vtk_to_numpy

    voxels = vtk_to_numpy(reslice.GetOutput().GetPointData().GetScalars())
    return np.array(voxels.reshape(dims[2], dims[1], dims[0]), dtype=np.float32, copy=True)


parseTimes = engineRequest.parse_times  # the panel's Times field


def _inputTimes(sequenceInput: SequenceInput) -> list[float] | None:
    """The input frames' own times: a sequence's numeric index values (a volume list carries none)."""
    if sequenceInput.sequenceNode is None or not sequenceInput.numericIndex:
        return None
    return [float(v) for v in sequenceInput.indexValues]


def _withTimes(sequenceInput: SequenceInput, times) -> SequenceInput:
    """The input indexed by the caller's times (they also label the future timepoints)."""
    return dataclasses.replace(
        sequenceInput,
        indexValues=[f"{t:.10g}" for t in times],
        numericIndex=True,
        explicitTimes=True,
        indexName=sequenceInput.indexName if sequenceInput.sequenceNode is not None else "time",
    )


def _outputIndexValues(sequenceInput: SequenceInput, request) -> list[str]:
    """Index values of the output: the input's, then the request's times of the future timepoints
    (the engine's one rule for continuing the input's times); a numeric index without times (a
    volume list) continues by the same rule, a text index gets "future k"."""
    length = len(request.roles)
    values = list(sequenceInput.indexValues)[:length]
    if len(values) == length:
        return values
    extended = request.times
    if extended is None and sequenceInput.numericIndex:
        extended = engineRequest.extend_times([float(v) for v in values], length)
    if extended is not None:
        return values + [f"{t:.10g}" for t in extended[len(values) :]]
    return values + [f"future {k}" for k in range(1, length - len(values) + 1)]


def _copyIndexing(sequence, sequenceInput: SequenceInput) -> None:
    sequence.SetIndexName(sequenceInput.indexName)
    sequence.SetIndexUnit(sequenceInput.indexUnit)
    sequence.SetIndexType(
        vtkMRMLSequenceNode.NumericIndex if sequenceInput.numericIndex else vtkMRMLSequenceNode.TextIndex
    )


def estimateGpuMemoryBytes(modelFolder, config, samples: int) -> int:
    """A deliberately low estimate (weights + the largest live activations) so it never refuses a run
    that would fit; the OOM handler covers the rest."""
    weights = Path(modelFolder) / "model.safetensors"
    weightBytes = weights.stat().st_size if weights.exists() else 0
    voxels = int(np.prod(config.grid))
    batch = 2 * samples  # conditional + unconditional pass of classifier-free guidance
    activations = batch * voxels * config.unet.channels[0] * 2 * 6  # bf16, a few full-resolution maps alive
    frames = samples * config.max_frames * voxels * 4
    return int(weightBytes + activations + frames + 200 * 2**20)  # + CUDA kernels and allocator slack


def _cpuSecondsPerStep(config, threads: int) -> float:
    """Cost model of one guided denoising step on a CPU: the UNet's 3×3×3 convolutions, two passes
    (classifier-free guidance), ~2 GMAC/s per thread (measured with the tiny preset on 2 threads)."""
    voxels = float(np.prod(config.grid))
    macs = 0.0
    for level, channels in enumerate(config.unet.channels):
        macs += (voxels / 8**level) * channels * channels * 27 * (2 * config.unet.num_res_blocks + 1)
    return 0.02 + 2 * macs / (2e9 * max(1, threads))


def _formatDuration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _isOutOfMemory(error: BaseException) -> bool:
    name = type(error).__name__
    return name == "OutOfMemoryError" or ("out of memory" in str(error).lower() and isinstance(error, RuntimeError))


def _freeGpuMemory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


#
# SADMModuleTest
#


class SADMModuleTest(ScriptedLoadableModuleTest):
    """The workflow a user follows, inside Slicer: sample data -> Logic -> panel -> bad input."""

    STEPS = 3  # enough to exercise every code path quickly; results are not judged here

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_LogicGeneratesFutureFrameOnInputGrid()
        self.setUp()
        self.test_PanelGeneratesAndCancels()
        self.setUp()
        self.test_BadRolesLeaveSceneUnchanged()

    def _model(self) -> str:
        """The bundled demo model, or an untrained tiny one when the demo is not installed."""
        if DEFAULT_MODEL in SADMModuleLogic.availableModels():
            return DEFAULT_MODEL
        import tempfile

        from sadm.config import preset
        from sadm.networks.sadm import SADM
        from sadm.storage.checkpoint import save_model

        folder = Path(tempfile.mkdtemp(prefix="SADMSelfTest")) / "tiny"
        return str(save_model(folder, SADM(preset("tiny"))))

    def _sampleSequence(self):
        import SampleData

        registerSampleData()
        return SampleData.SampleDataLogic().downloadSample(SAMPLE_DATA[0][0])

    def test_LogicGeneratesFutureFrameOnInputGrid(self):
        self.delayDisplay("Logic: generate one future frame from the synthetic cardiac sequence")
        sequence = self._sampleSequence()
        frameCount = sequence.GetNumberOfDataNodes()
        reference = sequence.GetNthDataNode(0)
        before = slicer.util.arrayFromVolume(reference).copy()
        roles = [OBSERVED] * min(frameCount, 3) + [FUTURE]
        sequenceForRun = sequence if frameCount <= 3 else _firstItems(sequence, 3)
        outputs = SADMModuleLogic().generate(sequenceForRun, roles, model=self._model(), steps=self.STEPS)
        self.assertEqual(len(outputs.volumes), 1)
        generated = outputs.volumes[0]
        self.assertTrue(generated.GetName().endswith("_SADM_t3"))
        self.assertEqual(slicer.util.arrayFromVolume(generated).shape, before.shape)
        self.assertEqual(generated.GetSpacing(), reference.GetSpacing())
        self.assertEqual(generated.GetOrigin(), reference.GetOrigin())
        self.assertEqual(outputs.sequence.GetNumberOfDataNodes(), 4)
        self.assertTrue(np.array_equal(slicer.util.arrayFromVolume(sequence.GetNthDataNode(0)), before))
        self.delayDisplay("Logic test passed")

    def test_PanelGeneratesAndCancels(self):
        self.delayDisplay("Panel: Generate, wait for 100 %, then Generate + Cancel")
        sequence = _firstItems(self._sampleSequence(), 2)
        widget = SADMModuleWidget()
        try:
            parameters = widget._parameterNode
            parameters.inputSequence = sequence
            parameters.model = self._model()
            parameters.steps = self.STEPS
            parameters.futureCount = 1
            widget.ui.generateButton.click()
            self.assertIsNotNone(widget._run, widget.ui.statusLabel.property("text"))
            _waitWhile(lambda: widget._run is not None)
            self.assertEqual(widget.ui.progressBar.property("value"), widget.ui.progressBar.property("maximum"))
            self.assertIsNotNone(widget.lastOutputs)
            nodeCount = slicer.mrmlScene.GetNumberOfNodes()
            parameters.steps = 400
            widget.ui.generateButton.click()
            _waitWhile(lambda: widget._run is not None and not widget.ui.progressBar.property("value") > 0)
            widget.ui.generateButton.click()  # now "Cancel"
            _waitWhile(lambda: widget._run is not None)
            self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), nodeCount)
        finally:
            widget.cleanup()
            widget.parent.deleteLater()
        self.delayDisplay("Panel test passed")

    def test_BadRolesLeaveSceneUnchanged(self):
        self.delayDisplay("Bad input: first frame not observed")
        sequence = _firstItems(self._sampleSequence(), 2)
        nodeCount = slicer.mrmlScene.GetNumberOfNodes()
        with self.assertRaises(InvalidRolesError):
            SADMModuleLogic().generate(sequence, [MISSING, OBSERVED, FUTURE], model=self._model(), steps=self.STEPS)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), nodeCount)
        self.delayDisplay("Bad input test passed")


def _firstItems(sequence, count: int):
    """A new sequence holding the first `count` items (keeps self-tests short)."""
    shorter = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSequenceNode", f"{sequence.GetName()}_first{count}")
    shorter.SetIndexName(sequence.GetIndexName())
    shorter.SetIndexUnit(sequence.GetIndexUnit())
    for item in range(min(count, sequence.GetNumberOfDataNodes())):
        shorter.SetDataNodeAtValue(sequence.GetNthDataNode(item), sequence.GetNthIndexValue(item))
    return shorter


def _waitWhile(condition: Callable[[], bool], timeout: float = 300.0) -> None:
    """Let the panel's QTimer run (it fires inside processEvents) until `condition` is false."""
    deadline = time.monotonic() + timeout
    while condition():
        if time.monotonic() > deadline:
            raise TimeoutError("SADM self-test: the run did not finish in time")
        slicer.app.processEvents()
        time.sleep(0.01)
