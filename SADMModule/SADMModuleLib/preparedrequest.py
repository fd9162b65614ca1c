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
    native: str = "resample"  # the path this run takes: the request's, else the model's own

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
    def progressPlan(self) -> dict[int, int]:
        """{target: progress steps}, in the order the engine makes them (`native.progress_plan`)."""
        from sadm.generation.native import progress_plan

        return progress_plan(self.roles, self.targets, self.times, self.native, self.sampling.steps)

    @property
    def drawnTargets(self) -> list[int]:
        """The targets the model draws (the others are the observed frames' registration)."""
        from sadm.generation.native import registered_spans

        return [t for t in self.targets if t not in registered_spans(self.roles, self.targets, self.times, self.native)]

    @property
    def sampling(self) -> engineRequest.SamplingOptions:
        return self.request.sampling
