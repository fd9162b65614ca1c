"""Per-sequence intensity normalisation as in the paper (min–max per subject), with optional
percentile clipping, and its inverse for mapping generated frames back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


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
