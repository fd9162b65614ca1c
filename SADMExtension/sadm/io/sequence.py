"""The in-memory form of a longitudinal sequence that every reader returns and every writer takes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class Geometry:
    """Physical placement of a volume, in ITK/SimpleITK conventions (LPS, (i, j, k) axis order)."""

    spacing: tuple[float, float, float]  # mm along i, j, k
    origin: tuple[float, float, float]  # mm, LPS, centre of voxel (0, 0, 0)
    direction: tuple[float, ...]  # 3×3 row-major direction cosines (columns = i, j, k axes)

    @classmethod
    def of_image(cls, image: sitk.Image) -> Geometry:
        return cls(tuple(image.GetSpacing()), tuple(image.GetOrigin()), tuple(image.GetDirection()))

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def is_close(self, other: Geometry, tolerance: float = 1e-4) -> bool:
        return bool(
            np.allclose(self.spacing, other.spacing, rtol=tolerance, atol=tolerance)
            and np.allclose(self.origin, other.origin, rtol=tolerance, atol=tolerance * 100)
            and np.allclose(self.direction, other.direction, atol=tolerance)
        )


@dataclass
class LongitudinalSequence:
    """Frames of one subject in time order, each a (k, j, i) numpy array with its geometry.

    `times` holds real times when the data carry them (ages in years, ms in the cardiac cycle),
    else None; `sources` names the file each frame came from (for error messages and caches).
    """

    frames: list[np.ndarray]
    geometries: list[Geometry]
    sources: list[str]
    subject: str = ""
    times: list[float] | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (len(self.frames) == len(self.geometries) == len(self.sources)):
            raise ValueError(
                f"frames ({len(self.frames)}), geometries ({len(self.geometries)}) and sources "
                f"({len(self.sources)}) must have one entry per frame"
            )
        if self.times is not None and len(self.times) != len(self.frames):
            raise ValueError(f"times has {len(self.times)} entries for {len(self.frames)} frames")

    def __len__(self) -> int:
        return len(self.frames)

    def image(self, index: int) -> sitk.Image:
        """Frame `index` as a SimpleITK image with its geometry."""
        return self.geometries[index].apply_to(sitk.GetImageFromArray(self.frames[index]))

    def subset(self, indices: Sequence[int]) -> LongitudinalSequence:
        return LongitudinalSequence(
            frames=[self.frames[i] for i in indices],
            geometries=[self.geometries[i] for i in indices],
            sources=[self.sources[i] for i in indices],
            subject=self.subject,
            times=None if self.times is None else [self.times[i] for i in indices],
            metadata=dict(self.metadata),
        )
