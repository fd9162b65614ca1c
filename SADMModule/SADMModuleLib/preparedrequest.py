"""The request as the Logic prepared it on the main thread: the engine's request plus the frames and
what the outputs need from the scene."""

from __future__ import annotations

from dataclasses import dataclass, field

from slicer import vtkMRMLScalarVolumeNode

from sadm.generation import request as engineRequest
from SADMModuleLib.inputs import SequenceInput


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
