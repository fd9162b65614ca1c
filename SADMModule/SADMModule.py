"""SADM in 3D Slicer: generate the missing and future frames of a longitudinal 3D image.

The four classes of Slicer's scripted-module template: SADMModule (metadata), SADMModuleWidget (the
panel: collects the inputs, shows progress, displays results), SADMModuleLogic (the workflow and the
console API, usable without the GUI) and SADMModuleTest (the self-test). The work is done by the
SADMModuleLib package beside this file (one job per module) and the pure-Python `sadm` engine.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Callable

import qt
import SADMModuleLib  # noqa: F401  (first: makes the `sadm` engine importable)
import slicer
import vtk
from SADMModuleLib import dependencies, inputs, models, paneloptions, resources, selectors, timepointtable
from SADMModuleLib import outputs as outputNodes
from SADMModuleLib.dependencies import TORCH_REQUIREMENT, SADMDependencyError
from SADMModuleLib.generationrun import GenerationRun
from SADMModuleLib.inputs import SequenceInput, parseTimes
from SADMModuleLib.models import DEFAULT_MODEL
from SADMModuleLib.outputs import ATTRIBUTE_PREFIX, GenerationOutputs
from SADMModuleLib.preparedrequest import PreparedRequest
from SADMModuleLib.resources import DEVICES, SADMResourceError, cpuSecondsPerStep
from SADMModuleLib.sampledata import SAMPLE_DATA, registerSampleData
from SADMModuleLib.selftest import SADMModuleTest
from SADMModuleLib.volumes import SADMInputError, resampleOntoGrid
from SADMModuleLib.workerprocess import WorkerProcess, WorkerRun
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSequenceNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from sadm.defaults import DEFAULT_SAMPLER
from sadm.diffusion.catalogue import SAMPLER_NAMES, catalogue_text, sampler_spec
from sadm.errors import CheckpointError, GenerationCancelled, InvalidRolesError, SADMError
from sadm.generation import request as engineRequest  # torch-free: the one set of request rules
from sadm.generation.request import FUTURE, MISSING, OBSERVED, ROLES
from sadm.serving.host import EngineHost, OutOfDeviceMemory

__all__ = [  # the console API and the names the tests and README use
    "ATTRIBUTE_PREFIX",
    "DEFAULT_MODEL",
    "DEVICES",
    "FUTURE",
    "MISSING",
    "OBSERVED",
    "ROLES",
    "SAMPLE_DATA",
    "TORCH_REQUIREMENT",
    "CheckpointError",
    "GenerationCancelled",
    "GenerationOutputs",
    "GenerationRun",
    "InvalidRolesError",
    "PreparedRequest",
    "SADMDependencyError",
    "SADMInputError",
    "SADMModule",
    "SADMModuleLogic",
    "SADMModuleParameterNode",
    "SADMModuleTest",
    "SADMModuleWidget",
    "SADMResourceError",
    "SequenceInput",
    "WorkerRun",
    "parseTimes",
    "registerSampleData",
    "resampleOntoGrid",
]

_cpuSecondsPerStep = cpuSecondsPerStep  # the name the cost-model test uses
MODEL_GUIDANCE = paneloptions.MODEL_GUIDANCE

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
        self.parent.contributors = ["SADM for 3D Slicer developers (SADM for 3D Slicer project)"]
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
    sampler ... samplerOptions - the request's sampling options: each field named after a field of the
        engine's SamplingOptions reaches `build_request` as it is (SADMModuleLib.paneloptions)
    """

    inputSequence: vtkMRMLSequenceNode
    inputVolumes: list[vtkMRMLScalarVolumeNode]
    useVolumeList: bool = False
    roles: list[str]
    futureCount: Annotated[int, WithinRange(0, 32)] = 1
    times: str = ""
    model: str = DEFAULT_MODEL
    device: Annotated[str, Choice(list(DEVICES))] = "auto"
    sampler: Annotated[str, Choice(SAMPLER_NAMES)] = DEFAULT_SAMPLER  # live: a sampler registered later shows
    steps: Annotated[int, WithinRange(1, 2000)] = sampler_spec(DEFAULT_SAMPLER).default_steps
    samplerOptions: str = ""  # the sampler's settings, e.g. "eta=0.5"
    guidance: Annotated[float, WithinRange(MODEL_GUIDANCE, 10.0)] = MODEL_GUIDANCE
    seed: Annotated[int, WithinRange(0, 2**31 - 1)] = 0
    samples: Annotated[int, WithinRange(1, 32)] = 1
    showResult: bool = True
    showSpread: bool = True


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
        self._starting = False  # Generate pressed: installing packages or preparing the run
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

        timepointtable.setUp(self.ui.timepointTable)
        self.ui.rolesHintLabel.setStyleSheet(self.HINT_STYLE)
        self.ui.samplerSelector.setToolTip(catalogue_text())
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
        for name, lineEdit in paneloptions.textFields(self.ui).items():
            lineEdit.textChanged.connect(lambda *args, name=name, lineEdit=lineEdit: self._onTextEdited(name, lineEdit))

        selectors.fillModels(self.ui.modelSelector, self.logic.availableModels())
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Stop the run and unbind the widgets: a deleted panel must not be written to by the parameter node."""
        if self._run is not None:
            self._run.cancel()  # not waited for: it stops within a step in the background
            self._run = None
        self._pollTimer.stop()
        if self.logic is not None:
            self.logic.shutdownWorker()  # Slicer cleans module widgets up when it quits
        self.setParameterNode(None)
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        """The bindings stay while the panel exists (connected once per parameter node), so the
        settings are exactly as left when the user comes back."""

    def onSceneStartClose(self, caller, event) -> None:
        if self._run is not None:
            self._run.cancel()  # its nodes would land in the next scene
        self.logic.shutdownWorker()  # its model and memory go with the scene
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
        """Bind the widgets to `inputParameterNode` once; the same node again changes nothing."""
        if (
            self._parameterNode is not None
            and inputParameterNode is not None
            and self._parameterNode.parameterNode is inputParameterNode.parameterNode
        ):
            return
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGuiFromParameterNode)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # connectParametersToGui returns its tag in every Slicer release (connectGui only from 5.10),
            # so disconnectGui really unbinds. Text fields are not bound: the line-edit connector rewrites the
            # text on every change in 5.6/5.8, moving the cursor (see _onTextEdited).
            self._parameterNodeGuiTag = self._parameterNode.connectParametersToGui(self._boundWidgets())
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGuiFromParameterNode)
            self._updateGuiFromParameterNode()

    def _boundWidgets(self) -> dict:
        """Parameter name -> widget, from the SlicerParameterName property set in the .ui file (text fields aside)."""
        return paneloptions.boundWidgets(self.ui)

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
            selectors.checkVolumes(self.ui.inputVolumesSelector, parameters.inputVolumes)
            self._fillTimepointTable()
            for name, lineEdit in paneloptions.textFields(self.ui).items():
                if str(lineEdit.property("text")) != getattr(parameters, name):
                    lineEdit.setText(getattr(parameters, name))  # only a change from elsewhere moves the cursor
            selectors.selectModel(self.ui.modelSelector, parameters.model)
            self._showRolesHint()
            self._showDeviceInfo()
            self.ui.generateButton.setEnabled(
                not self._starting and (self._run is not None or self._currentInput() is not None)
            )
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
        timepointtable.fill(
            self.ui.timepointTable,
            self._inputFrameNames(),
            self._allRoles(),
            self._run is not None,
            self._onRoleChanged,
        )

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
                registered = self.logic.frameCounts(roles, self._parameterNode.model)[1]
                if registered:
                    hint += " " + _(
                        "{count} of them from the registration of the observed frames around them (the model's path)."
                    ).format(count=registered)
                style = self.HINT_STYLE
        self.ui.rolesHintLabel.setText(hint)
        self.ui.rolesHintLabel.setStyleSheet(style)

    def _showDeviceInfo(self) -> None:
        parameters = self._parameterNode
        drawn, registered = self.logic.frameCounts(self._allRoles(), parameters.model)
        self.ui.deviceInfoLabel.setText(
            self.logic.describeDevice(
                parameters.device, parameters.model, drawn, parameters.steps, parameters.samples, registered
            )
        )

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

    def _onTextEdited(self, name: str, lineEdit) -> None:
        if self._updatingGui or not self._parameterNode:
            return
        setattr(self._parameterNode, name, str(lineEdit.property("text")))

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
            selectors.selectModel(self.ui.modelSelector, self._parameterNode.model)
            return
        problem = self.logic.modelProblem(folder)
        if problem:
            selectors.selectModel(self.ui.modelSelector, self._parameterNode.model)
            self._showStatus(problem, error=True)
            return
        self._parameterNode.model = folder
        self._showStatus(_("Model folder {folder} loaded.").format(folder=folder))

    def _onSamplerActivated(self, *args) -> None:
        """Each sampler has its own sensible number of steps (DDIM: tens, ancestral: hundreds)."""
        self._parameterNode.steps = sampler_spec(self._parameterNode.sampler).default_steps

    # --- running ----------------------------------------------------------------------------

    def onGenerateButton(self) -> None:
        """Start a run, or cancel the running one."""
        if self._starting:
            return  # a click that came in through processEvents while packages install (pip's output)
        if self._run is not None:
            self._run.cancel()
            self.ui.generateButton.setEnabled(False)
            self._showStatus(_("Cancelling: stopping after the current denoising step…"))
            return
        self._starting = True
        self.ui.generateButton.setEnabled(False)
        try:
            self._startRun()
        finally:
            self._starting = False
            if self._run is None:
                self.ui.generateButton.setEnabled(self._parameterNode is not None and self._currentInput() is not None)

    def _startRun(self) -> None:
        parameters = self._parameterNode
        if parameters is None:
            return
        with slicer.util.tryWithErrorDisplay(_("SADM could not start."), waitCursor=True):
            try:
                missing = self.logic.missingPackages()
                if missing:
                    # The install runs on this thread for minutes: say so before it starts.
                    self._showStatus(dependencies.installingMessage(missing))
                    slicer.app.processEvents()
                self.logic.installDependencies(askConfirmation=True)
                request = self.logic.prepareRequest(
                    self._currentInput(),
                    self._allRoles(),
                    model=parameters.model,
                    device=parameters.device,
                    times=parseTimes(parameters.times),
                    inProcess=not self.logic.useWorkerProcess,
                    **paneloptions.samplingOptions(parameters),
                )
            except (SADMError, ValueError) as error:  # the module's own errors derive from the engine's SADMError
                self._showStatus(str(error), error=True)
                return
            self._run = self.logic.startGeneration(request)
            self._setRunning(True)
            self._showStatus(self._runningMessage(request))
            self._pollTimer.start()

    def _runningMessage(self, request) -> str:
        targets = ", ".join(str(i) for i in request.targets)
        device = request.device
        if device == "auto":
            facts = self.logic.deviceFacts
            device = resources.resolveWithFacts(device, facts) if facts else _("the best device the worker finds")
        lines = [
            _("Generating t = {targets} with {model} on {device}…").format(
                targets=targets, model=request.modelName, device=device
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
        inputFrames = len(self._parameterNode.roles) if self._parameterNode else 0
        timepointtable.setRoleBoxesEnabled(self.ui.timepointTable, inputFrames, not running)
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
        # thread runs Python: give a worker thread a guaranteed slice (a worker process needs none).
        if isinstance(run, GenerationRun):
            run.wait(timeout=self.WORKER_SLICE_S)
        for kind, payload in run.poll():
            if kind == "progress":
                self._showProgress(run.request, *payload)
        if not run.finished:
            return
        self._pollTimer.stop()
        self._run = None
        self._setRunning(False)
        if self._parameterNode is None:
            # The scene was closed while running (the module need not be entered): the run was
            # cancelled, nothing is added, and the panel is ready for the next scene.
            self.ui.progressBar.setVisible(False)
            self._showStatus(_("Cancelled: the scene was closed. No node was added."))
            return
        if isinstance(run, WorkerRun) and run.outcome == "done":
            self.logic.recordSpeed(run.request, run.device, run.generateSeconds)
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
        plan = request.progressPlan  # the engine's order: drawn frames, then registered ones
        order = list(plan)
        position = order.index(frameIndex) + 1 if frameIndex in order else 1
        stepsPerFrame = plan.get(frameIndex, 1)
        step = done - sum(plan[t] for t in order[: position - 1])
        self.ui.progressBar.setRange(0, total)
        self.ui.progressBar.setValue(done)
        self.ui.progressBar.setFormat(
            _("Frame {position} of {count} (t = {frame}) · step {step}/{steps} · %p%").format(
                position=position, count=len(order), frame=frameIndex, step=step, steps=stepsPerFrame
            )
        )

    def _finishRun(self, run) -> None:
        with slicer.util.tryWithErrorDisplay(_("SADM could not add the results to the scene."), waitCursor=True):
            outputs = self.logic.createOutputNodes(run.request, run.result)
            if self._parameterNode.showResult:
                self.logic.showResult(outputs, self._parameterNode.showSpread)
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


class SADMModuleLogic(ScriptedLoadableModuleLogic):
    """The workflow: read the input nodes, run the engine, create the output nodes (SADMModuleLib
    does each step).

    Console use (the same path the panel takes):

        logic = slicer.util.getModuleLogic("SADMModule")
        outputs = logic.generate(sequenceNode, ["observed", "missing", "observed", "future"])
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._host = EngineHost()  # the console path's engine, cached as the worker caches its own
        self._secondsPerStep: dict[tuple[str, str], float] = {}
        self._worker: WorkerProcess | None = None

    def getParameterNode(self) -> SADMModuleParameterNode:
        return SADMModuleParameterNode(super().getParameterNode())

    # --- console API ------------------------------------------------------------------------

    def generate(
        self,
        inputSequenceOrVolumes,
        roles: Sequence[str],
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        progress: Callable[[int, int, int], None] | None = None,
        cancel: threading.Event | None = None,
        showResult: bool = True,
        times: Sequence[float] | None = None,
        showSpread: bool = True,
        **sampling,
    ) -> GenerationOutputs:
        """Generate every missing and future frame and add the results to the scene.

        inputSequenceOrVolumes: a vtkMRMLSequenceNode of scalar volumes, or a list of
        vtkMRMLScalarVolumeNode in time order. roles: one of "observed" / "missing" / "future" per
        input frame, then "future" once per timepoint to add.
        sampling: the engine's SamplingOptions fields by name, checked by its `build_request` — sampler
        (sadm.diffusion.catalogue), steps (None: the sampler's default), sampler_options (the sampler's
        settings, e.g. {"eta": 0.5}), guidance (None: the model's), seed, samples, native. samples > 1 returns the mean and adds "_std" maps: the predictive σ,
        calibrated where the model has a calibration (the truth within ±2σ at about 95 % of voxels on
        validation subjects), shown over the generated frames with showResult unless showSpread is False.
        progress(doneSteps, totalSteps, frameIndex) is called after every denoising step; setting
        `cancel` stops within one step (GenerationCancelled is raised, no node is added).
        times: one time per timepoint (input and future), e.g. ages [61, 64.5, 70, 78]; they become the
        output sequence's index values, and place the frames for continuous-time models (brain-demo),
        which otherwise read them from a sequence's numeric index values.
        native None: the model's own path (its config's `native`), "warp" (the nearest observed frame
        moved by the model's motion, keeping the input's detail), "resample" (the model's frame resampled
        up, as in the paper) or "register" (where two observed frames give the motion, their registration
        scaled to the target's time, with no draw of the model; else "warp").
        Runs in the calling thread. Raises with a message naming the bad value; the scene is then
        unchanged. Returns the new nodes (see GenerationOutputs).
        """
        request = self.prepareRequest(
            inputSequenceOrVolumes, roles, model=model, device=device, times=times, **sampling
        )
        for note in request.notes:
            logging.warning(f"SADM: {note}")
        result = self.runRequest(request, progress, cancel)
        outputs = self.createOutputNodes(request, result)
        if showResult:
            self.showResult(outputs, showSpread)
        return outputs

    useWorkerProcess = True
    """The panel's runs go to a warm worker process (SADMModuleLib.workerprocess): Slicer's main
    thread keeps Python's GIL, so a worker thread would run only while the GUI waits. False: a
    thread in this process (SADMModuleLib.generationrun), as the console API's own path."""

    def startGeneration(self, request: PreparedRequest) -> GenerationRun | WorkerRun:
        """Run a prepared request in the background (the panel's path); poll() the run for events."""
        if not self.useWorkerProcess:
            return GenerationRun(self, request).start()
        if self._worker is None:
            self._worker = WorkerProcess()
        return WorkerRun(self._worker, request).start()

    def shutdownWorker(self) -> None:
        """End the worker process, if one runs (scene closed, module cleaned up, Slicer quitting)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown()

    # --- dependencies (SADMModuleLib.dependencies) ------------------------------------------

    missingPackages = staticmethod(dependencies.missingPackages)
    _requirementsFor = staticmethod(dependencies.requirementsFor)

    def checkDependencies(self) -> None:
        """Raise with the exact fix when a package is missing (the console path; the panel installs)."""
        dependencies.checkDependencies()

    def installDependencies(self, askConfirmation: bool = True) -> None:
        """Install what is missing, with consent: torch through the PyTorch extension, the rest with pip."""
        dependencies.installDependencies(askConfirmation)

    # --- input (SADMModuleLib.inputs) -------------------------------------------------------

    frameNames = staticmethod(inputs.frameNames)

    def readInput(self, inputSequenceOrVolumes) -> SequenceInput:
        """Understand the input: its frames (scalar volumes only), name and index values."""
        return inputs.readInput(inputSequenceOrVolumes)

    # --- models (SADMModuleLib.models) ------------------------------------------------------

    availableModels = staticmethod(models.availableModels)
    resolveModel = staticmethod(models.resolveModel)

    def modelProblem(self, model: str) -> str | None:
        """Why `model` cannot be used, or None (cheap: reads config.json only)."""
        return models.modelProblem(model)

    def rolesProblem(self, roles: Sequence[str], model: str) -> str | None:
        """The rule `roles` break for `model` (the engine's `validate_roles`), or None."""
        return models.rolesProblem(roles, model)

    # --- request ----------------------------------------------------------------------------

    def prepareRequest(
        self,
        inputSequenceOrVolumes,
        roles,
        model=DEFAULT_MODEL,
        device="auto",
        times=None,
        inProcess=True,
        **sampling,
    ) -> PreparedRequest:
        """Check everything before any work, in the order a user would fix it, and copy the frames.
        Roles, times and the sampling options (SamplingOptions fields by name) go through the engine's
        `build_request`, the rules
        `sadm generate` applies too. inProcess=False (the panel's worker runs): the device is only
        named here; the worker resolves it and checks its memory, so this process never imports torch."""
        self.checkDependencies()
        sequenceInput = self.readInput(inputSequenceOrVolumes)
        request = engineRequest.build_request(
            roles,
            len(sequenceInput.frameNodes),
            input_times=inputs.inputTimes(sequenceInput),
            times=times,
            **sampling,
        )
        if times is not None:
            sequenceInput = inputs.withTimes(sequenceInput, request.times)
        modelFolder, config = self.resolveModel(model)
        request.positions_for(config.max_frames, config.attention.time_embedding, f"model {model}")
        frames, resampled, notes = inputs.observedFrames(sequenceInput, list(request.roles))
        if inProcess:
            resolvedDevice = self.resolveDevice(device)
            if resolvedDevice.startswith("cuda"):
                self._checkGpuMemory(modelFolder, config, request.sampling.samples, resolvedDevice)
        else:
            resolvedDevice = resources.checkDeviceName(device)
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
            indexValues=inputs.outputIndexValues(sequenceInput, request),
            notes=sequenceInput.notes + notes,
            native=request.sampling.native or config.native,
        )

    # --- device (SADMModuleLib.resources) ---------------------------------------------------

    resolveDevice = staticmethod(resources.resolveDevice)

    def describeDevice(
        self,
        device: str = "auto",
        model: str = DEFAULT_MODEL,
        targets: int = 1,
        steps: int = 50,
        samples: int = 1,
        registered: int = 0,
    ) -> str:
        """One line for the panel: what will run, with free GPU memory or the expected CPU time for
        `targets` frames the model draws and `registered` frames registration makes (`frameCounts`)."""
        return resources.describeDevice(
            device, model, targets, steps, samples, self._secondsPerStep, self.deviceFacts, registered
        )

    def frameCounts(self, roles: Sequence[str], model: str) -> tuple[int, int]:
        """(frames the model draws, frames the observed frames' registration makes) on the model's own path."""
        return models.frameCounts(roles, model)

    @property
    def deviceFacts(self) -> dict | None:
        """What the process that runs the engine can use (sadm.devices.device_facts): the worker's, from
        its last run; this process's once it has run the engine itself; None before any run."""
        if self._worker is not None and self._worker.deviceFacts is not None:
            return self._worker.deviceFacts
        if self._host.engine is not None:
            from sadm.devices import device_facts

            return device_facts(self._host.engine.device)
        return None

    def estimateSeconds(
        self, model: str, device: str, targets: int, steps: int, samples: int, registered: int = 0
    ) -> float | None:
        """Rough run time: measured speed of this model on this device, else a CPU cost model."""
        threads = (self.deviceFacts or {}).get("threads")
        return resources.estimateSeconds(
            model, device, targets, steps, samples, self._secondsPerStep, threads, registered
        )

    def recordSpeed(self, request: PreparedRequest, device: str, seconds: float | None) -> None:
        """Remember the seconds per denoising step a run took (model load excluded) for the estimates."""
        if not seconds or not device:
            return
        sampling = request.sampling
        drawn = len(request.drawnTargets)
        if not drawn:  # registration alone made every frame: no denoising step was timed
            return
        perStep = seconds / (sampling.steps * drawn * sampling.samples)
        self._secondsPerStep[(str(Path(request.modelFolder).resolve()), device)] = perStep

    def _checkGpuMemory(self, modelFolder, config, samples: int, device: str) -> None:
        resources.checkGpuMemory(modelFolder, config, samples, device)

    # --- running ----------------------------------------------------------------------------

    def engineFor(self, modelFolder: str, device: str):
        """The loaded engine; reloaded only when the model (folder or weights) or the device changes
        (sadm.serving.host.EngineHost, the worker's own cache; the memory was checked by prepareRequest)."""
        return self._host.engine_for(modelFolder, device, check_memory=False)

    def runRequest(self, request: PreparedRequest, progress=None, cancel: threading.Event | None = None):
        """Run the engine (any thread): its `Generation` (mean, std and every draw per frame). Touches no node."""
        engine = self.engineFor(request.modelFolder, request.device)
        started = time.monotonic()
        try:
            result = self._host.generate(engine, request.frames, request.request, progress=progress, cancel=cancel)
        except OutOfDeviceMemory as error:
            raise SADMResourceError(str(error)) from error
        self.recordSpeed(request, request.device, time.monotonic() - started)
        return result

    # --- outputs (SADMModuleLib.outputs) ----------------------------------------------------

    def createOutputNodes(self, request: PreparedRequest, result) -> GenerationOutputs:
        """Main thread: one volume per generated frame (+ std maps), the output sequence and its
        browser. If anything fails, every node added so far is removed again."""
        return outputNodes.createOutputNodes(request, result)

    def showResult(self, outputs: GenerationOutputs, showSpread: bool = True) -> None:
        """Side-by-side layout: the input (Red) and the generated sequence (Yellow) at the same timepoint,
        the σ maps over the latter (samples > 1) unless `showSpread` is False."""
        outputNodes.showResult(outputs, showSpread)
