"""The input as the Logic reads it: a Sequence node or a list of volumes, its frames, names and times."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field

import slicer
from slicer import vtkMRMLSequenceNode

from sadm.generation import request as engineRequest  # torch-free: the one set of request rules
from sadm.generation.request import OBSERVED
from SADMModuleLib.volumes import SADMInputError, checkScalarVolume, frameVoxels, gridDifference, resampleOntoGrid


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
    notes: list[str] = field(default_factory=list)  # what the user should know about how it was read


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


def readInput(inputSequenceOrVolumes) -> SequenceInput:
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
            raise SADMInputError(f"sequence {sequence.GetName()!r} has no items; it needs at least one observed volume")
        sequenceInput = SequenceInput(
            name=sequence.GetName(),
            frameNodes=frames,
            sequenceNode=sequence,
            indexName=sequence.GetIndexName() or "frame",
            indexUnit=sequence.GetIndexUnit() or "",
            indexValues=[sequence.GetNthIndexValue(i) for i in range(len(frames))],
            numericIndex=sequence.GetIndexType() == vtkMRMLSequenceNode.NumericIndex,
        )
        if sequenceInput.numericIndex and not all(isNumber(v) for v in sequenceInput.indexValues):
            sequenceInput.numericIndex = False
    else:
        volumes = (
            [inputSequenceOrVolumes]
            if isinstance(inputSequenceOrVolumes, slicer.vtkMRMLNode)
            else list(inputSequenceOrVolumes)
        )
        sequenceInput = SequenceInput(
            name=commonName([v.GetName() if v is not None else "" for v in volumes]),
            frameNodes=volumes,
            sequenceNode=None,
            indexValues=[str(i) for i in range(len(volumes))],
        )
    greyAsColour = [
        position for position, node in enumerate(sequenceInput.frameNodes) if checkScalarVolume(node, position)
    ]
    if greyAsColour:
        which = "Every frame" if len(greyAsColour) == len(sequenceInput.frameNodes) else f"Frames {greyAsColour}"
        sequenceInput.notes.append(
            f"{which} of {sequenceInput.name} is an RGB (vector) image whose channels are equal (grey stored as "
            "colour, as ultrasound often is); it was read as a scalar image."
        )
    return sequenceInput


def observedFrames(sequenceInput: SequenceInput, roles: list[str]):
    """Copies of the observed frames on frame 0's grid; frames on another grid are resampled."""
    reference = sequenceInput.frameNodes[0]
    frames, resampled, notes = [], set(), []
    for index, role in enumerate(roles):
        node = sequenceInput.frameNodes[index] if index < len(sequenceInput.frameNodes) else None
        if role != OBSERVED:
            frames.append(None)
            continue
        difference = gridDifference(node, reference) if index > 0 else None
        if difference is None:
            frames.append(frameVoxels(node))
            continue
        frames.append(resampleOntoGrid(node, reference, index))
        resampled.add(index)
        notes.append(
            f"Frame {index} ({node.GetName()}) is on another voxel grid than frame 0 ({reference.GetName()}): "
            f"{difference}. It was resampled onto frame 0's grid (linear interpolation)."
        )
    return frames, resampled, notes


def isNumber(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def commonName(names: list[str]) -> str:
    """ "heart_t0", "heart_t1" -> "heart": the shared prefix without a trailing frame counter."""
    names = [n for n in names if n]
    if not names:
        return "SADM"
    prefix = os.path.commonprefix(names) if len(names) > 1 else names[0]  # noqa: RUF071  (characters, not paths)
    stem = re.sub(r"(?:[\s_\-.]+(?:t|tp|frame|time|timepoint))?[\s_\-.]*\d*$", "", prefix, flags=re.IGNORECASE)
    return stem or names[0]


parseTimes = engineRequest.parse_times  # the panel's Times field


def inputTimes(sequenceInput: SequenceInput) -> list[float] | None:
    """The input frames' own times: a sequence's numeric index values (a volume list carries none)."""
    if sequenceInput.sequenceNode is None or not sequenceInput.numericIndex:
        return None
    return [float(v) for v in sequenceInput.indexValues]


def withTimes(sequenceInput: SequenceInput, times) -> SequenceInput:
    """The input indexed by the caller's times (they also label the future timepoints)."""
    return dataclasses.replace(
        sequenceInput,
        indexValues=[f"{t:.10g}" for t in times],
        numericIndex=True,
        explicitTimes=True,
        indexName=sequenceInput.indexName if sequenceInput.sequenceNode is not None else "time",
    )


def outputIndexValues(sequenceInput: SequenceInput, request) -> list[str]:
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
