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

from sadm.data.normalize import IntensityRange
from sadm.data.resample import resample_to_shape
from sadm.generation.registration import PairFields, Span, span_of, warp_by
from sadm.generation.registration import image_over as _on_grid
from sadm.generation.request import OBSERVED, GenerationRequest


@dataclass(frozen=True)
class WarpSettings:
    """Demons registration (SimpleITK's fast symmetric forces) on the model grid; σ of the Gaussian
    that smooths the field, in input-grid voxels."""

    iterations: int = 50
    smoothing_voxels: float = 2.0
    fraction_weight: float = 0.0
    """With `--native register`: how much of the model's drawn fraction replaces the linear one. 0 (the
    registration estimate itself where two observed frames give the motion) was best in every setting
    on the validation subjects (README, "The registration baseline and the registration floor"); then no draw is made at the span's
    ends."""


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


def registered_spans(
    roles: Sequence[str], targets: Sequence[int], times: Sequence[float] | None, native: str
) -> dict[int, Span]:
    """{target: its span}: the targets that `register` makes from the observed frames' registration
    alone, with no draw of the model (every target two observed frames give the motion of, unless the
    model's fraction is asked for). With two or more observed frames that is every target; with one,
    none (the model draws them all), so no drawn frame's context holds a registered one."""
    if native != "register" or WarpSettings().fraction_weight:
        return {}
    spans = {target: span_of(roles, target, times) for target in targets}
    return {target: span for target, span in spans.items() if span is not None}


def progress_plan(
    roles: Sequence[str], targets: Sequence[int], times: Sequence[float] | None, native: str, steps: int
) -> dict[int, int]:
    """{target: the progress steps it counts}, in the order the engine makes them: the frames the model
    draws (`steps` each), then the frames registration makes (one each). One rule for the engine's
    progress, the panel's bar and its time estimates."""
    spans = registered_spans(roles, targets, times, native)
    return {**{t: steps for t in targets if t not in spans}, **dict.fromkeys(spans, 1)}


def redrawn_positions(roles: Sequence[str], target: int, times: Sequence[float] | None, native: str) -> list[int]:
    """The observed frames at whose positions the model also draws, beside `target`: the span's two
    (`register`, when the model's fraction is used), else the anchors (`warp`)."""
    span = span_of(roles, target, times) if native == "register" else None
    if span is not None:
        return [span.start, span.end] if WarpSettings().fraction_weight else []
    return [anchor for anchor, _ in anchors_of(roles, target, times)]


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
    return warp_by(native, sitk.GetArrayFromImage(upsampled))


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


def _vectors(field: sitk.Image) -> np.ndarray:
    return sitk.GetArrayViewFromImage(field).astype(np.float64)


def drawn_fraction(
    fraction: float,
    start_draw: np.ndarray,
    end_draw: np.ndarray,
    draw: np.ndarray,
    native_shape: Sequence[int],
    settings: WarpSettings | None = None,
) -> float:
    """How far along the motion start→end the model puts its target draw (the span's fraction where
    the draws show no motion to measure against): the projection of the drawn motion start→target
    (between the two; after `end`, 1 + end→target) onto the drawn motion start→end, all three drawn
    from the target's context and noise (see `warped_draw`)."""
    settings = settings or WarpSettings()
    along = _vectors(motion_field(start_draw, end_draw, native_shape, settings))
    norm = float(np.sum(along * along))
    if norm < 1e-6 * along.size:
        return fraction
    between = fraction < 1.0
    to_target = _vectors(motion_field(start_draw if between else end_draw, draw, native_shape, settings))
    return (0.0 if between else 1.0) + float(np.sum(along * to_target)) / norm


def native_draws(
    request: GenerationRequest,
    on_model_grid: dict[int, np.ndarray],
    native_shape: Sequence[int],
    pairs: PairFields,
    intensity: IntensityRange | None,
    redraws: dict[int, np.ndarray],
    registered: dict[int, np.ndarray],
) -> tuple[dict[int, np.ndarray], dict[int, list[float]]]:
    """({index: (samples, k, j, i)}, {index: per draw, how far along its span's motion it lies}): each
    draw on the input grid, as `request.sampling.native` says — registered (`registered`, every draw
    the same), the span's registration at the drawn fraction (`register` with the model's fraction),
    the target's anchors (`anchors_of`, native frames in `pairs.frames`) warped by the draw's motion
    and blended (`warp`), or the draw resampled up (`resample`; linear resampling commutes with the
    intensity mapping). `redraws` {target: (positions, samples, *grid)} in [0, 1] are the model's draws at
    `redrawn_positions` from the target's context and noise."""
    if request.sampling.native == "resample" or not pairs.frames:
        draws = {
            index: np.stack([resample_to_shape(volume, native_shape) for volume in volumes])
            for index, volumes in on_model_grid.items()
        }
        return draws, {}
    roles, times, settings = request.roles, request.times, WarpSettings()
    draws, fractions = {}, {}
    for index, volumes in on_model_grid.items():
        if index in registered:
            fractions[index] = [span_of(roles, index, times).fraction] * len(volumes)
            draws[index] = np.stack([registered[index]] * len(volumes))
            continue
        at = redraws.get(index)
        span = span_of(roles, index, times) if request.sampling.native == "register" else None
        if span is not None:
            fractions[index] = [
                span.fraction
                + settings.fraction_weight
                * (
                    drawn_fraction(span.fraction, at[0, n], at[1, n], intensity.normalize(volume), native_shape)
                    - span.fraction
                )
                for n, volume in enumerate(volumes)
            ]
            draws[index] = np.stack([pairs.frame_at(span, f) for f in fractions[index]])
            continue
        anchors = anchors_of(roles, index, times)
        warped = []
        for n, volume in enumerate(volumes):
            draw = intensity.normalize(volume)
            frame = np.zeros(tuple(native_shape), np.float64)
            for slot, (anchor, weight) in enumerate(anchors):
                frame += weight * warped_draw(pairs.frames[anchor], at[slot, n], draw)
            warped.append(frame.astype(np.float32))
        draws[index] = np.stack(warped)
    return draws, fractions
