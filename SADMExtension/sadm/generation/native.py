"""Frames on the input's own grid: the model's frame resampled up (the paper), or an observed native
frame warped by the motion the model drew.

The model works on a coarse grid, so its frame resampled to the input grid cannot hold the input's
detail. Cardiac motion and brain ageing are mostly deformation: the anchor is the observed frame
nearest in time to the target; registering the model's draw at the anchor's position to its draw at
the target's gives a smooth displacement field that the coarse grid does resolve; upsampled, it warps
the native anchor, which keeps every native detail. A missing frame between two observed ones blends both
anchors, each warped by its own motion, with linear interpolation's weights. Each target is warped
from observed frames, never from a generated one, so no frame is resampled twice. A model that
draws no change gives the anchors back (copy-last, or linear interpolation between two).

The motion is measured between two draws of the model that share their noise and their context X̃
and differ only in the position asked for — the target's, and the anchor's (its index or time) — so
that what differs is what the model thinks changes between the two, not how its frames look beside a
real one (texture, blur). This holds with a single observed frame too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from sadm.generation.request import OBSERVED


@dataclass(frozen=True)
class WarpSettings:
    """Demons registration (SimpleITK's fast symmetric forces) on the model grid; σ of the Gaussian
    that smooths the field, in input-grid voxels."""

    iterations: int = 50
    smoothing_voxels: float = 2.0


def anchors_of(roles: Sequence[str], target: int, times: Sequence[float] | None = None) -> list[tuple[int, float]]:
    """[(observed index, weight)]: the observed frames on either side of `target` nearest in time,
    weighted as linear interpolation weights them (one frame, weight 1, when the target has observed
    frames on one side only). Frame 0 is always observed, so there is at least one."""
    positions = list(times) if times is not None else list(range(len(roles)))
    observed = [i for i, role in enumerate(roles) if role == OBSERVED]
    before = max((i for i in observed if i < target), default=None)
    after = min((i for i in observed if i > target), default=None)
    if before is None or after is None:
        return [(before if after is None else after, 1.0)]
    span = positions[after] - positions[before]
    weight_after = (positions[target] - positions[before]) / span
    return [(before, 1.0 - weight_after), (after, weight_after)]


def _on_grid(volume: np.ndarray, native_shape: Sequence[int]) -> sitk.Image:
    """A model-grid array as an image over the input grid's field of view, in input-voxel units
    (voxel centres placed as `resample_to_shape` places them)."""
    image = sitk.GetImageFromArray(np.asarray(volume, dtype=np.float32))
    spacing = [n / m for n, m in zip(native_shape, volume.shape)][::-1]
    image.SetSpacing(spacing)
    image.SetOrigin([(s - 1.0) / 2.0 for s in spacing])
    return image


def motion_field(
    anchor_on_grid: np.ndarray, draw_on_grid: np.ndarray, native_shape: Sequence[int], settings: WarpSettings
) -> sitk.Image:
    """The displacement field u (input-voxel units, on the model grid) with anchor(x + u(x)) ≈ draw(x)."""
    demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
    demons.SetNumberOfIterations(settings.iterations)
    demons.SetStandardDeviations(settings.smoothing_voxels)
    demons.SetSmoothDisplacementField(True)
    return demons.Execute(_on_grid(draw_on_grid, native_shape), _on_grid(anchor_on_grid, native_shape))


def warp(native: np.ndarray, field: sitk.Image) -> np.ndarray:
    """`native` (k, j, i) sampled at x + U(x), U the field upsampled linearly to the input grid;
    outside the volume the nearest edge voxel is used."""
    reference = sitk.GetImageFromArray(np.asarray(native, dtype=np.float32))
    upsampled = sitk.Resample(field, reference, sitk.Transform(), sitk.sitkLinear, 0.0, field.GetPixelID())
    transform = sitk.DisplacementFieldTransform(sitk.Cast(upsampled, sitk.sitkVectorFloat64))
    resampler = sitk.ResampleImageFilter()
    resampler.SetReferenceImage(reference)
    resampler.SetTransform(transform)
    resampler.SetInterpolator(sitk.sitkLinear)
    resampler.SetUseNearestNeighborExtrapolator(True)
    return sitk.GetArrayFromImage(resampler.Execute(reference))


def warped_draw(
    anchor_native: np.ndarray,
    anchor_on_grid: np.ndarray,
    draw_on_grid: np.ndarray,
    settings: WarpSettings | None = None,
) -> np.ndarray:
    """One draw on the input grid: the native anchor moved by the motion from `anchor_on_grid` (the
    model's draw at the anchor's position) to the draw, both on the model grid in the same normalised
    intensities."""
    field = motion_field(anchor_on_grid, draw_on_grid, anchor_native.shape, settings or WarpSettings())
    return warp(anchor_native, field)
