"""The results in the scene: one volume per generated frame (+ std maps), the output sequence, its
browser beside the input, and the side-by-side layout. Main thread only."""

from __future__ import annotations

import contextlib

import numpy as np
import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSequenceNode

from SADMModuleLib.inputs import SequenceInput
from SADMModuleLib.preparedrequest import PreparedRequest

ATTRIBUTE_PREFIX = "SADM."
SPREAD_COLOURS = ("vtkMRMLColorTableNodeFileInferno.txt", "vtkMRMLColorTableNodeRainbow")
"""The σ overlay's colour table: Inferno (perceptually uniform, dark where σ is small), or Rainbow where
Slicer's colour files were not loaded; both are nodes Slicer's colour logic adds at startup."""
SPREAD_OPACITY = 0.5


class GenerationOutputs(list):
    """The nodes one run added, as a list (so `for n in outputs: slicer.mrmlScene.RemoveNode(n)`
    undoes it) with named parts: volumes (one per generated frame, index order), stdMaps (samples > 1),
    sequence (observed + generated frames), spreadSequence (the σ maps at every timepoint, 0 where
    observed; samples > 1), inputSequence (the list input, as a sequence), browser, and the browser's
    proxy nodes."""

    def __init__(self) -> None:
        super().__init__()
        self.volumes: list = []
        self.stdMaps: list = []
        self.sequence = None
        self.spreadSequence = None
        self.inputSequence = None
        self.browser = None
        self.outputProxy = None
        self.spreadProxy = None
        self.inputProxy = None


def createOutputNodes(request: PreparedRequest, result) -> GenerationOutputs:
    """Main thread: one volume per generated frame (+ std maps), the output sequence and its
    browser. If anything fails, every node added so far is removed again."""
    outputs = GenerationOutputs()
    try:
        addVolumes(request, result, outputs)
        addSequences(request, outputs)
        addBrowser(request, outputs)
    except Exception:
        for node in reversed(outputs):
            removeWithDisplayAndStorage(node)
        raise
    with contextlib.suppress(AttributeError):  # no sequence toolbar (Slicer started without main window)
        slicer.modules.sequences.toolBar().setActiveBrowserNode(outputs.browser)
    return outputs


def addVolumes(request: PreparedRequest, result, outputs: GenerationOutputs) -> None:
    name = request.input.name
    statistic = "mean" if request.sampling.samples > 1 else "sample"
    for index in request.targets:
        volume = addVolume(f"{name}_SADM_t{index}", result.mean[index], request, index, statistic)
        outputs.volumes.append(volume)
        outputs.append(volume)
    if result.std is not None:
        for index in request.targets:
            stdMap = addVolume(f"{name}_SADM_t{index}_std", result.std[index], request, index, "std")
            outputs.stdMaps.append(stdMap)
            outputs.append(stdMap)


def addVolume(name: str, array: np.ndarray, request: PreparedRequest, index: int, statistic: str):
    volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    volume.CopyOrientation(request.geometry)
    slicer.util.updateVolumeFromArray(volume, np.ascontiguousarray(array, dtype=np.float32))
    if request.transformNodeID:
        volume.SetAndObserveTransformNodeID(request.transformNodeID)
    volume.CreateDefaultDisplayNodes()
    tag(volume, request, {"Timepoint": str(index), "Role": request.roles[index], "Statistic": statistic})
    return volume


def tag(node, request: PreparedRequest, extra: dict | None = None) -> None:
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


def addSequences(request: PreparedRequest, outputs: GenerationOutputs) -> None:
    """The output sequence (observed + generated frames in order) and, for a volume-list input, the
    input as a sequence so that one browser shows both at the same timepoint."""
    source = request.input
    sequence = outputs.sequence = newSequence(outputs, source, f"{source.name}_SADM")
    generated = dict(zip(request.targets, outputs.volumes))
    for index, value in enumerate(request.indexValues):
        if index in generated:
            frame = generated[index]
        elif index in request.resampled:
            name = f"{source.frameNodes[index].GetName()}_resampled"
            frame = detachedVolume(name, request.frames[index].astype(np.float32), request)
        else:
            frame = source.frameNodes[index]
        sequence.SetDataNodeAtValue(frame, value)  # a deep copy: the input node is only read
    tag(sequence, request)
    if outputs.stdMaps:
        addSpreadSequence(request, outputs)
    if source.sequenceNode is None:
        inputSequence = outputs.inputSequence = newSequence(outputs, source, f"{source.name}_SADM_input")
        for node, value in zip(source.frameNodes, source.indexValues):
            inputSequence.SetDataNodeAtValue(node, value)


def addSpreadSequence(request: PreparedRequest, outputs: GenerationOutputs) -> None:
    """The σ maps as a sequence beside the output, so that the overlay follows the timepoint shown:
    each generated frame's map, and zeros (known, shown transparent) at the observed frames."""
    source = request.input
    spread = outputs.spreadSequence = newSequence(outputs, source, f"{source.name}_SADM_sigma")
    maps = dict(zip(request.targets, outputs.stdMaps))
    shape = slicer.util.arrayFromVolume(outputs.stdMaps[0]).shape
    for index, value in enumerate(request.indexValues):
        frame = maps.get(index)
        if frame is None:
            frame = detachedVolume(f"{source.name}_SADM_sigma_t{index}", np.zeros(shape, np.float32), request)
        spread.SetDataNodeAtValue(frame, value)
    tag(spread, request, {"Statistic": "std"})


def newSequence(outputs: GenerationOutputs, source: SequenceInput, name: str):
    """A sequence node in the scene, indexed like the input, counted among this run's outputs."""
    sequence = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
    outputs.append(sequence)
    copyIndexing(sequence, source)
    return sequence


def detachedVolume(name: str, array: np.ndarray, request: PreparedRequest):
    """A volume on the request's grid that never enters the scene (a sequence stores a copy of it)."""
    volume = vtkMRMLScalarVolumeNode()
    volume.SetName(name)
    volume.CopyOrientation(request.geometry)
    slicer.util.updateVolumeFromArray(volume, array)
    return volume


def styleSpread(volume, high: float) -> None:
    """A σ map as an overlay: a colour table a reader knows, window 0 to `high`, and 0 transparent."""
    volume.CreateDefaultDisplayNodes()
    display = volume.GetDisplayNode()
    colours = [i for i in SPREAD_COLOURS if slicer.mrmlScene.GetNodeByID(i) is not None]
    if colours:
        display.SetAndObserveColorNodeID(colours[0])
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, high)
    display.AutoThresholdOff()
    display.SetLowerThreshold(high * 1e-3)
    display.SetUpperThreshold(float(np.finfo(np.float32).max))
    display.SetApplyThreshold(1)


def addBrowser(request: PreparedRequest, outputs: GenerationOutputs) -> None:
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
    if outputs.spreadSequence is not None:
        browser.AddSynchronizedSequenceNodeID(outputs.spreadSequence.GetID())
        browser.SetSaveChanges(outputs.spreadSequence, False)
    browser.SetSelectedItemNumber(request.targets[0])
    slicer.modules.sequences.logic().UpdateProxyNodesFromSequences(browser)
    outputs.outputProxy = browser.GetProxyNode(outputs.sequence)
    if outputs.spreadSequence is not None:
        outputs.spreadProxy = browser.GetProxyNode(outputs.spreadSequence)
        high = max(float(np.percentile(slicer.util.arrayFromVolume(m), 99)) for m in outputs.stdMaps)
        styleSpread(outputs.spreadProxy, high or 1.0)
    for proxy in (outputs.outputProxy, outputs.spreadProxy):
        if request.transformNodeID and proxy is not None:
            proxy.SetAndObserveTransformNodeID(request.transformNodeID)  # where frame 0 is shown
    outputs.inputProxy = browser.GetProxyNode(comparison) if comparison is not None else None
    for proxy in (outputs.outputProxy, outputs.spreadProxy, outputs.inputProxy):
        if proxy is not None and proxy not in outputs:
            outputs.append(proxy)


def showResult(outputs: GenerationOutputs, showSpread: bool = True) -> None:
    """Side-by-side layout: the input (Red) and the generated sequence (Yellow) at the same timepoint,
    with the σ maps over the generated sequence (samples > 1, unless `showSpread` is False)."""
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
            if composite.GetLayoutName() == "Yellow" and showSpread and outputs.spreadProxy is not None:
                composite.SetForegroundVolumeID(outputs.spreadProxy.GetID())
                composite.SetForegroundOpacity(SPREAD_OPACITY)
    slicer.util.resetSliceViews()


def removeWithDisplayAndStorage(node) -> None:
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


def copyIndexing(sequence, sequenceInput: SequenceInput) -> None:
    sequence.SetIndexName(sequenceInput.indexName)
    sequence.SetIndexUnit(sequenceInput.indexUnit)
    sequence.SetIndexType(
        vtkMRMLSequenceNode.NumericIndex if sequenceInput.numericIndex else vtkMRMLSequenceNode.TextIndex
    )
