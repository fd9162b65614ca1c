"""The classical estimate of a frame from the observed frames around it, with no model: demons
registration between two observed native frames, the displacement scaled to the target's time.

- Between two observed frames a < t < b, at fraction f = (t − a) / (b − a): a warped by f × the motion
  a→b and b warped by (1 − f) × the motion b→a, blended with linear interpolation's weights.
- After the last observed frame b, with an observed frame a before it: b moved on by (f − 1) × the
  motion a→b (f > 1), the motion between the last two observed frames continued at constant speed.
- With one observed frame before the target and none after: that frame (copy-last).

It is the floor a generated frame must clear (`sadm.evaluation.baselines.registration`) and the
motion of `--native register` (`sadm.generation.native`; there the model's drawn fraction may
replace f). Fields are registered between real frames on their own grid, so they
hold the input's detail; each pair is registered once per request (`PairFields`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from sadm.data.resample import resample_to_shape
from sadm.generation.request import OBSERVED


@dataclass(frozen=True)
class Span:
    """The observed pair (start < end) whose motion gives a target, and the target's time as a
    fraction of start→end: in (0, 1) between them, above 1 after `end`."""

    start: int
    end: int
    fraction: float

    @property
    def between(self) -> bool:
        return self.fraction < 1.0


def span_of(roles: Sequence[str], target: int, times: Sequence[float] | None = None) -> Span | None:
    """The nearest observed frames on either side of `target`, else the last two observed before it;
    None when only one observed frame precedes it and none follows (copy-last is all there is)."""
    positions = list(times) if times is not None else list(range(len(roles)))
    observed = [i for i, role in enumerate(roles) if role == OBSERVED and i != target]
    before = [i for i in observed if i < target]
    after = [i for i in observed if i > target]
    if before and after:
        start, end = before[-1], after[0]
    elif len(before) >= 2:
        start, end = before[-2], before[-1]
    else:
        return None
    return Span(start, end, (positions[target] - positions[start]) / (positions[end] - positions[start]))


@dataclass(frozen=True)
class RegistrationSettings:
    """Demons (SimpleITK's fast symmetric forces) over a pyramid of `levels` (each halving the in-plane
    size), so that motion of several voxels is found; σ of the field's Gaussian smoothing in voxels
    of the level (chosen on 5 validation cardiac subjects, README "The registration baseline and the registration floor")."""

    levels: int = 3
    iterations: int = 50
    smoothing_voxels: float = 1.0


def image_over(volume: np.ndarray, full_shape: Sequence[int]) -> sitk.Image:
    """An array as an image over the field of view of `full_shape`, in full-grid voxel units."""
    image = sitk.GetImageFromArray(np.asarray(volume, dtype=np.float32))
    spacing = [n / m for n, m in zip(full_shape, volume.shape)][::-1]
    image.SetSpacing(spacing)
    image.SetOrigin([(s - 1.0) / 2.0 for s in spacing])
    return image


def _level_shape(shape: Sequence[int], factor: int) -> tuple[int, ...]:
    """`shape` shrunk by `factor` on every axis that stays at least 8 voxels long."""
    return tuple(n // factor if n // factor >= 8 else n for n in shape)


def register(fixed: np.ndarray, moving: np.ndarray, settings: RegistrationSettings | None = None) -> np.ndarray:
    """The displacement field u (k, j, i, 3; x, y, z components in voxels) with
    moving(x + u(x)) ≈ fixed(x), coarse to fine."""
    settings = settings or RegistrationSettings()
    shape = fixed.shape
    low = min(float(fixed.min()), float(moving.min()))
    scale = max(float(fixed.max()), float(moving.max())) - low or 1.0  # demons' forces depend on the range
    fixed, moving = (np.asarray(fixed, np.float32) - low) / scale, (np.asarray(moving, np.float32) - low) / scale
    demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
    demons.SetNumberOfIterations(settings.iterations)
    demons.SetSmoothDisplacementField(True)
    field = None
    for level in reversed(range(settings.levels)):
        level_shape = _level_shape(shape, 2**level)
        fixed_image = image_over(resample_to_shape(fixed, level_shape), shape)
        moving_image = image_over(resample_to_shape(moving, level_shape), shape)
        demons.SetStandardDeviations(settings.smoothing_voxels * max(fixed_image.GetSpacing()))
        if field is None:
            field = demons.Execute(fixed_image, moving_image)
        else:
            start = sitk.Resample(field, fixed_image, sitk.Transform(), sitk.sitkLinear, 0.0, field.GetPixelID())
            field = demons.Execute(fixed_image, moving_image, start)
    return sitk.GetArrayFromImage(field)


def warp_by(volume: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """`volume` (k, j, i) sampled at x + u(x), u a (k, j, i, 3) field in voxels on the same grid;
    outside the volume the nearest edge voxel is used."""
    reference = sitk.GetImageFromArray(np.asarray(volume, dtype=np.float32))
    vectors = sitk.GetImageFromArray(np.asarray(displacement, dtype=np.float64), isVector=True)
    transform = sitk.DisplacementFieldTransform(vectors)
    resampler = sitk.ResampleImageFilter()
    resampler.SetReferenceImage(reference)
    resampler.SetTransform(transform)
    resampler.SetInterpolator(sitk.sitkLinear)
    resampler.SetUseNearestNeighborExtrapolator(True)
    return sitk.GetArrayFromImage(resampler.Execute(reference))


@dataclass
class PairFields:
    """The motion between observed frames, registered once per ordered pair and reused by every
    target that needs it: `motion(a, b)` is u with frame_a(x + u(x)) ≈ frame_b(x)."""

    frames: dict[int, np.ndarray]
    settings: RegistrationSettings = field(default_factory=RegistrationSettings)
    _fields: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    _residuals: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    def motion(self, start: int, end: int) -> np.ndarray:
        if (start, end) not in self._fields:
            self._fields[start, end] = register(self.frames[end], self.frames[start], self.settings)
        return self._fields[start, end]

    def residual(self, start: int, end: int) -> np.ndarray:
        """(frame_start moved by motion(start, end) − frame_end)², float64: what the registration left
        unexplained, once per pair however many targets lie on its span."""
        if (start, end) not in self._residuals:
            moved = warp_by(self.frames[start], self.motion(start, end)).astype(np.float64)
            self._residuals[start, end] = (moved - np.asarray(self.frames[end], np.float64)) ** 2
        return self._residuals[start, end]

    def applied_to(self, frames: dict[int, np.ndarray]) -> PairFields:
        """The same registrations moving other frames at the same positions (e.g. the noise-free twins
        of the observed frames): what the motion alone does, apart from the frames' noise."""
        if set(frames) != set(self.frames):
            raise ValueError(f"frames at {sorted(frames)} are not the registered positions {sorted(self.frames)}")
        return PairFields(frames, self.settings, self._fields)

    def frame_at(self, span: Span, fraction: float | None = None) -> np.ndarray:
        """The frame at `fraction` of the span (default: its time's, the linear profile): between the
        pair, both ends moved towards it and blended; after it, the end moved on."""
        f = span.fraction if fraction is None else float(fraction)
        end = self.frames[span.end]
        if not span.between:
            return warp_by(end, (f - 1.0) * self.motion(span.start, span.end))
        start = self.frames[span.start]
        f = min(max(f, 0.0), 1.0)
        from_start = warp_by(start, f * self.motion(span.start, span.end))
        from_end = warp_by(end, (1.0 - f) * self.motion(span.end, span.start))
        return ((1.0 - f) * from_start.astype(np.float64) + f * from_end).astype(np.float32)


def registered_frames(
    frames: Sequence[np.ndarray],
    roles: Sequence[str],
    times: Sequence[float] | None = None,
    settings: RegistrationSettings | None = None,
) -> dict[int, np.ndarray]:
    """{target: the classical estimate} for every non-observed frame of `roles` (module docstring)."""
    observed = {i: np.asarray(frames[i], dtype=np.float32) for i, role in enumerate(roles) if role == OBSERVED}
    pairs = PairFields(observed, settings or RegistrationSettings())
    result = {}
    for target, role in enumerate(roles):
        if role == OBSERVED:
            continue
        span = span_of(roles, target, times)
        if span is None:
            last = max(i for i in observed if i < target)
            result[target] = observed[last].copy()
        else:
            result[target] = pairs.frame_at(span)
    return result
