"""Per-sequence intensity normalisation as in the paper (min–max per subject), with optional
percentile clipping, its inverse for mapping generated frames back, and the renormalisation that
gives a training example the window generation would use (the observed frames' own)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # no torch import at run time: the Slicer process reads this module
    import torch


@dataclass(frozen=True)
class IntensityRange:
    """The [low, high] intensity window that maps to [0, 1]."""

    low: float
    high: float

    @classmethod
    def of_frames(cls, frames: Sequence[np.ndarray], clip_percentiles: Sequence[float] | None = None) -> IntensityRange:
        if clip_percentiles:
            voxels = np.concatenate([np.asarray(f, dtype=np.float64).ravel() for f in frames])
            low, high = np.percentile(voxels, clip_percentiles)
        else:
            low = min(float(np.min(f)) for f in frames)
            high = max(float(np.max(f)) for f in frames)
        return cls(float(low), float(high))

    @property
    def scale(self) -> float:
        # A constant sequence maps to 0 rather than dividing by zero.
        return self.high - self.low if self.high > self.low else 1.0

    def normalize(self, volume: np.ndarray) -> np.ndarray:
        """Native intensities -> [0, 1] (clipped), float32, as a new array."""
        return np.clip((np.asarray(volume, dtype=np.float32) - self.low) / self.scale, 0.0, 1.0)

    def denormalize(self, volume: np.ndarray) -> np.ndarray:
        """[0, 1] -> native intensities, float32."""
        return (np.asarray(volume, dtype=np.float32) * self.scale + self.low).astype(np.float32)


def frame_ranges(
    frames: Sequence[np.ndarray], window: IntensityRange, clip_percentiles: Sequence[float] | None = None
) -> np.ndarray:
    """(L, 2) float32: each frame's own [low, high] (the rule of `IntensityRange.of_frames` applied to
    that frame alone) in the units of `window`, so that training can rebuild any subset's window."""
    ranges = []
    for frame in frames:
        own = IntensityRange.of_frames([frame], clip_percentiles)
        ranges.append(((own.low - window.low) / window.scale, (own.high - window.low) / window.scale))
    return np.asarray(ranges, dtype=np.float32).reshape(len(ranges), 2)


def renormalize_to_observed(frames: torch.Tensor, ranges: torch.Tensor, observed: Sequence[int]) -> torch.Tensor:
    """`frames` (L, ...) in [0, 1] of the all-frames window -> the window of the `observed` frames
    alone, clipped to [0, 1], as a new tensor: what `Engine.generate` does to a request's frames
    (it cannot see the targets), so a model trains on the intensities it will be given. Exact for
    min–max windows (the map is affine and the grid resampling linear); for percentile windows the
    subset's window is approximated by the envelope of its frames' own.

    `ranges` (L, 2): `frame_ranges` of the frames."""
    if not observed:
        raise ValueError("renormalize_to_observed needs at least one observed frame")
    chosen = ranges[list(observed)]
    low, high = float(chosen[:, 0].min()), float(chosen[:, 1].max())
    scale = high - low if high > low else 1.0
    return ((frames - low) / scale).clamp_(0.0, 1.0)
