"""SADMModuleTest, the self-test Slicer runs from "Reload and Test": the workflow a user follows, inside
Slicer. SADMModule.py imports it, so Slicer finds it in the module's namespace as always; the module's
own classes are taken from `SADMModule` when the test runs (that module imports this one)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from sadm.errors import InvalidRolesError
from sadm.generation.request import FUTURE, MISSING, OBSERVED
from SADMModuleLib import dependencies
from SADMModuleLib.models import DEFAULT_MODEL
from SADMModuleLib.sampledata import SAMPLE_DATA, registerSampleData


def _module():
    import SADMModule

    return SADMModule


class SADMModuleTest(ScriptedLoadableModuleTest):
    """The workflow a user follows, inside Slicer: sample data -> Logic -> panel -> bad input."""

    STEPS = 3  # enough to exercise every code path quickly; results are not judged here

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        missing = dependencies.missingPackages()
        if missing:
            # The extension build server builds the PyTorch extension but installs no torch (PyTorchUtils
            # does that on first use); as SlicerTotalSegmentator's self-test, check what needs no torch.
            logging.warning(
                f"SADM self-test: generation steps skipped, {', '.join(missing)} not installed. Install the "
                "PyTorch extension and press Generate once (it offers to install them), then rerun the test."
            )
            self.setUp()
            self.delayDisplay("Sample data: the synthetic cardiac sequence loads")
            self.assertGreater(self._sampleSequence().GetNumberOfDataNodes(), 1)
            return
        self.setUp()
        self.test_LogicGeneratesFutureFrameOnInputGrid()
        self.setUp()
        self.test_PanelGeneratesAndCancels()
        self.setUp()
        self.test_BadRolesLeaveSceneUnchanged()

    def _model(self) -> str:
        """The bundled demo model, or an untrained tiny one when the demo is not installed."""
        if DEFAULT_MODEL in _module().SADMModuleLogic.availableModels():
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
        outputs = _module().SADMModuleLogic().generate(sequenceForRun, roles, model=self._model(), steps=self.STEPS)
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
        # one observed frame: the model draws the future one (with two, a model whose path is `register` makes it by
        # registration alone, too fast to cancel)
        sequence = _firstItems(self._sampleSequence(), 1)
        widget = _module().SADMModuleWidget()
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
            _module().SADMModuleLogic().generate(
                sequence, [MISSING, OBSERVED, FUTURE], model=self._model(), steps=self.STEPS
            )
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
