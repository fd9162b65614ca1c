"""Bringing a sequence onto the model grid as the paper does: one grid per sequence, per-sequence
min–max normalisation to [0, 1], each frame resized to the model grid, optionally a fixed frame count.

The order (normalise on the native grid, then resize) is the one the Engine uses at inference, so
training data and inference inputs see the same transformation.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk

from sadm.data.normalize import IntensityRange, frame_ranges
from sadm.data.resample import resample_to_shape
from sadm.errors import ConfigError, DataError
from sadm.io.checks import check_sequence
from sadm.io.sequence import LongitudinalSequence

# Bump when the preprocessing changes in a way that makes cached arrays differ.
PREPROCESS_VERSION = 1


@dataclass(frozen=True)
class PreprocessParams:
    """Everything that decides a preprocessed array; a cache entry is valid only for equal params."""

    grid: tuple[int, int, int]  # model grid (k, j, i), e.g. (32, 128, 128)
    num_frames: int | None = None  # resample every sequence to this many frames (ACDC ED→ES: 12)
    clip_percentiles: tuple[float, float] | None = None  # e.g. (0.5, 99.5) instead of plain min–max
    max_direction_difference_deg: float = 1.0  # frames oriented further apart than this are refused

    def __post_init__(self) -> None:
        grid = tuple(int(n) for n in self.grid)
        if len(grid) != 3 or min(grid) < 1:
            raise ConfigError(f"grid {self.grid} must be three positive sizes (k, j, i), e.g. (32, 128, 128)")
        object.__setattr__(self, "grid", grid)
        if self.num_frames is not None:
            if int(self.num_frames) != self.num_frames or int(self.num_frames) < 2:
                raise ConfigError(
                    f"num_frames {self.num_frames} must be a whole number of at least 2 "
                    "(or None to keep each sequence's frames)"
                )
            object.__setattr__(self, "num_frames", int(self.num_frames))
        if self.clip_percentiles is not None:
            low, high = (float(p) for p in self.clip_percentiles)
            if not 0.0 <= low < high <= 100.0:
                raise ConfigError(
                    f"clip_percentiles {self.clip_percentiles} must be (low, high) with 0 <= low < high <= 100"
                )
            object.__setattr__(self, "clip_percentiles", (low, high))

    def as_dict(self) -> dict:
        """JSON-able, with the preprocessing version, as recorded in a cache index."""
        record = asdict(self)
        record["grid"] = list(self.grid)
        record["clip_percentiles"] = None if self.clip_percentiles is None else list(self.clip_percentiles)
        record["version"] = PREPROCESS_VERSION
        return record


@dataclass(frozen=True)
class PreprocessedSequence:
    """A sequence ready for training."""

    frames: np.ndarray  # (L, k, j, i) float32 in [0, 1]
    times: np.ndarray  # (L,) float32: the data's times, else frame indices
    subject: str
    intensity: IntensityRange  # native window that maps to [0, 1]
    frame_ranges: np.ndarray  # (L, 2) float32: each frame's own [low, high] in that window's units


def preprocess_sequence(
    sequence: LongitudinalSequence, params: PreprocessParams, intensity: IntensityRange | None = None
) -> PreprocessedSequence:
    """Native frames -> (L, k, j, i) float32 in [0, 1] on the model grid, plus their times.
    `intensity` (default: the sequence's own range) lets two renderings of one subject share a window."""
    where = f"subject '{sequence.subject}'" if sequence.subject else f"the sequence from {sequence.sources[:1]}"
    check_sequence(sequence, where)
    native_frames = align_frames_to_first(sequence, params.max_direction_difference_deg)
    intensity = intensity or IntensityRange.of_frames(native_frames, params.clip_percentiles)
    frames = np.stack([resample_to_shape(intensity.normalize(frame), params.grid) for frame in native_frames])
    np.clip(frames, 0.0, 1.0, out=frames)
    ranges = frame_ranges(native_frames, intensity, params.clip_percentiles)
    times = np.asarray(sequence.times if sequence.times is not None else range(len(frames)), dtype=np.float64)
    if params.num_frames is not None:
        # A blended frame's range is approximated by the blend of its neighbours' ranges.
        ranges, _ = resample_in_time(ranges, times, params.num_frames)
        frames, times = resample_in_time(frames, times, params.num_frames)
        if sequence.times is None:
            times = np.arange(params.num_frames, dtype=np.float64)  # phases 0..n−1 (the paper's cardiac setting)
    return PreprocessedSequence(
        frames.astype(np.float32, copy=False), times.astype(np.float32), sequence.subject, intensity, ranges
    )


def align_frames_to_first(
    sequence: LongitudinalSequence, max_direction_difference_deg: float = 1.0
) -> list[np.ndarray]:
    """Every frame on frame 0's grid: frames on another grid are resampled (with a warning naming the
    file), frames oriented more than `max_direction_difference_deg` away are refused."""
    reference_geometry, reference_shape = sequence.geometries[0], sequence.frames[0].shape
    reference = None
    aligned = [np.asarray(sequence.frames[0], dtype=np.float32)]
    for index in range(1, len(sequence)):
        frame, geometry = sequence.frames[index], sequence.geometries[index]
        if frame.shape == reference_shape and geometry.is_close(reference_geometry):
            aligned.append(np.asarray(frame, dtype=np.float32))
            continue
        angle = direction_difference_deg(reference_geometry.direction, geometry.direction)
        if angle > max_direction_difference_deg:
            raise DataError(
                f"frame {index} ({sequence.sources[index]}) is oriented {angle:.2f}° away from frame 0 "
                f"({sequence.sources[0]}); expected at most {max_direction_difference_deg:g}° "
                "(register the frames to one another first)"
            )
        warnings.warn(
            f"frame {index} ({sequence.sources[index]}) lies on another grid than frame 0 ({sequence.sources[0]}): "
            f"shape {frame.shape} vs {reference_shape}, spacing {_rounded(geometry.spacing)} vs "
            f"{_rounded(reference_geometry.spacing)}, origin {_rounded(geometry.origin)} vs "
            f"{_rounded(reference_geometry.origin)}; resampled onto frame 0's grid",
            stacklevel=2,
        )
        reference = reference if reference is not None else sequence.image(0)
        aligned.append(_resample_onto(sequence.image(index), reference, fill=float(np.min(frame))))
    return aligned


def direction_difference_deg(direction: tuple[float, ...], other: tuple[float, ...]) -> float:
    """Largest angle between corresponding axes (i, j, k) of two 3×3 row-major direction matrices."""
    axes = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    other_axes = np.asarray(other, dtype=np.float64).reshape(3, 3)
    cosines = np.clip(np.sum(axes * other_axes, axis=0), -1.0, 1.0)  # columns are the axes
    return float(np.degrees(np.arccos(cosines)).max())


def resample_in_time(frames: np.ndarray, times: np.ndarray, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation between neighbouring frames (and their times) to `num_frames` evenly spaced
    positions from the first frame to the last."""
    length = frames.shape[0]
    positions = np.linspace(0.0, length - 1, int(num_frames))
    lower = np.minimum(np.floor(positions).astype(int), length - 1)
    upper = np.minimum(lower + 1, length - 1)
    weight = (positions - lower).astype(np.float32)
    shape = (-1,) + (1,) * (frames.ndim - 1)
    resampled = frames[lower] * (1.0 - weight).reshape(shape) + frames[upper] * weight.reshape(shape)
    times = np.asarray(times, dtype=np.float64)
    return resampled.astype(np.float32), times[lower] * (1.0 - weight) + times[upper] * weight


def _resample_onto(image: sitk.Image, reference: sitk.Image, fill: float) -> np.ndarray:
    image = sitk.Cast(image, sitk.sitkFloat32)
    resampled = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, fill, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(resampled)


def _rounded(values) -> tuple[float, ...]:
    return tuple(float(f"{v:.4g}") for v in values)
