"""A per-voxel predictive spread on the input's grid that counts what the draws alone miss.

The spread between N draws measures only how the model's draws differ. On the native grid every draw
moves the same observed frame, so it carries that frame's acquisition noise and shares the motion's
error, while the truth has noise of its own. The predictive variance of a generated frame is therefore
modelled, per voxel, as a weighted sum of parts (`PARTS`), s² · Σ_p w_p · f_p:

- noise, σ_n² · (1 + Σ_a w_a²): the acquisition noise of the observed frames (`noise_sigma`, a robust
  high-pass estimate), once for the target's own noise and once per anchor frame moved into it, with
  its blend weight w_a;
- intensity_noise, the same with σ_n read at the voxel's intensity (`NoiseProfile`): magnitude (Rician)
  noise is weaker in dark air than in tissue;
- draws, var(draws): the spread between the draws (0 for a frame registration makes);
- motion, |∇μ|²: a motion error of √w voxels moves an edge of gradient |∇μ| by √w·|∇μ| in intensity;
- travel, |∇μ|² · |u|² · τ²: the same error growing with how far the registered motion u carried each
  edge, τ the share of the span travelled from the nearer observed frame (registered frames only);
- residual: what the registration left unexplained between its two observed frames, less their noise,
  smoothed in-plane: where the span's own motion is not matched, the target's is not either
  (registered frames only);
- overshoot, (μ(x + τ·u) − μ(x))²: how much the frame changes if shifted by τ·u, back towards where
  the span's motion started — a timing error of the motion measured at each edge's own sharpness
  (travel is its linear guess), e.g. a constant speed continued past a slowing heart (registered
  frames only);
- change, Δ²: the change the frame makes from its nearest observed frame, (μ − x_a)², its largest over
  each voxel's 3 × 3 in-plane neighbours: where the anatomy is predicted to move, a share √w of that
  motion may be wrong, and a misplaced edge lands beside where it was predicted;
- change_spread, Δ² smoothed in-plane (σ = 2 voxels): the same, for a misplaced edge farther off.

The weights w_p ≥ 0 (the noise estimate reads texture as noise on a coarse grid, the draws may spread
too little or too much) are fitted by the Gaussian likelihood in which the validation voxels where the
anatomy moved (`moved_voxels`, a few per cent of a frame) weigh as much as all the others together —
else the static voxels decide every weight and the map is too narrow exactly where the motion is; s is a
conformal scale, so that ±1.96σ holds the truth at 95 % of voxels and ±2σ at `MOVED_LEVEL` of the moved
ones (never beyond what puts 97.5 % of all voxels inside ±2σ).

Weights and s are fitted on validation subjects (never on test subjects;
`sadm.evaluation.calibration`) per *bucket* — how the frame is made: between two observed frames,
beyond the last two, or from one observed frame — and stored in the model folder's config.json
("uncertainty"); a part a calibration does not name weighs 0, so one fitted before the part existed
gives the map it gave. The distance from the observed frames is left to the parts (the draws spread and
the change grows with it): one fit per distance, each on a few frames per subject, held worse on unseen
subjects. Applying them needs numpy, scipy and SimpleITK only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter

from sadm.errors import ConfigError
from sadm.generation.native import anchors_of
from sadm.generation.registration import PairFields, span_of, warp_by

LEVEL = 0.95  # the band the conformal scale calibrates
Z_95 = 1.959964
MIN_VOXELS = 1000  # a bucket fitted on fewer voxels falls back to "all"
MOVED_LEVEL = 0.90  # the share of moved validation voxels the scale puts inside ±2σ
MOVED_CAP = 0.975  # ... but never a scale that puts more than this share of all voxels inside ±2σ
PARTS = (
    "noise",
    "draws",
    "motion",
    "change",
    "intensity_noise",
    "change_spread",
    "travel",
    "residual",
    "overshoot",
)
"""The variance parts: each a field of `Features` and a weight of `BucketFit` of the same name."""
REQUIRED_PARTS = ("noise", "draws", "motion")  # every calibration names these; the rest default to 0
CHANGE_SPREAD_SIGMA = 2.0  # voxels in-plane: how far a misplaced edge may land from its prediction
NOISE_BINS = 16


def _in_plane(volume: np.ndarray, sigma: float) -> tuple[float, ...]:
    """Gaussian σ per axis that smooths within each slice only."""
    return (0.0,) * (volume.ndim - 2) + (sigma, sigma)


def _second_differences(volume: np.ndarray, beside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The second differences / √6 of `volume` along both in-plane axes (σ for white noise; a linear
    trend cancels), each with `beside` at its centre voxel, over the triples whose three voxels are all
    non-zero: a voxel of a skull-stripped or masked background (an exact 0) is not noise."""
    values, centres = [], []
    for axis in (-1, -2):
        n = volume.shape[axis]
        if n < 3:
            continue
        a, b, c = (np.take(volume, range(start, n - 2 + start), axis=axis) for start in range(3))
        valid = (a != 0) & (b != 0) & (c != 0)
        values.append(((a - 2.0 * b + c) / np.sqrt(6.0))[valid])
        centres.append(np.take(beside, range(1, n - 1), axis=axis)[valid])
    if not values:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(values), np.concatenate(centres)


def _robust_sigma(values: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def noise_sigma(volume: np.ndarray) -> float:
    """The standard deviation of a volume's acquisition noise: the median absolute deviation of its
    second differences along the two in-plane axes (each 6 σ² for white noise; a linear trend
    cancels), over the flattest 60 % of voxels (edges are signal, not noise; the median ignores the
    rest). Voxels whose neighbourhood touches an exact 0 (a skull-stripped or masked background) are
    left out."""
    volume = np.asarray(volume, dtype=np.float64)
    smooth = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(volume), 1.0))
    slope = sum(g * g for g in np.gradient(smooth)[-2:])
    values, slopes = _second_differences(volume, slope)
    if values.size < 10:
        return 0.0
    return _robust_sigma(values[slopes <= np.quantile(slopes, 0.6)])


@dataclass(frozen=True)
class NoiseProfile:
    """The acquisition noise's σ as a function of the local intensity, from observed frames: magnitude
    MR noise is Rician, weaker in air than in tissue, so one σ for the whole frame is too wide in the
    background and too narrow in tissue."""

    levels: np.ndarray  # the median smoothed intensity of each bin, ascending
    sigmas: np.ndarray  # the noise σ in that bin

    @classmethod
    def of(cls, frames: Sequence[np.ndarray], bins: int = NOISE_BINS) -> NoiseProfile:
        """Second differences of the frames (`_second_differences`, exact zeros left out), binned by the
        in-plane smoothed intensity at their centre into `bins` equally filled bins; σ per bin is their
        median absolute deviation. Texture within a bin counts as noise, as it does in `noise_sigma`."""
        values, levels = [], []
        for frame in frames:
            frame = np.asarray(frame, np.float64)
            value, level = _second_differences(frame, gaussian_filter(frame, _in_plane(frame, 1.0)))
            values.append(value)
            levels.append(level)
        value, level = np.concatenate(values), np.concatenate(levels)
        if value.size < 10 * bins:
            return cls(np.zeros(1), np.zeros(1))
        edges = np.quantile(level, np.linspace(0.0, 1.0, bins + 1))
        which = np.clip(np.searchsorted(edges, level, side="right") - 1, 0, bins - 1)
        kept = [k for k in range(bins) if np.count_nonzero(which == k) >= 10]
        return cls(
            np.array([np.median(level[which == k]) for k in kept]),
            np.array([_robust_sigma(value[which == k]) for k in kept]),
        )

    def variance_at(self, volume: np.ndarray) -> np.ndarray:
        """σ² at each voxel's in-plane smoothed intensity (held flat beyond the end bins)."""
        volume = np.asarray(volume, np.float64)
        smooth = gaussian_filter(volume, _in_plane(volume, 1.0))
        return np.interp(smooth, self.levels, self.sigmas) ** 2


def bucket_of(roles: Sequence[str], target: int, times: Sequence[float] | None = None) -> str:
    """How a target is made — "between" two observed frames, "beyond" the last two, or from "one"
    observed frame: the key of its calibration."""
    span = span_of(roles, target, times)
    return "one" if span is None else ("between" if span.between else "beyond")


@dataclass(frozen=True)
class Features:
    """What the predictive variance of one target is built from (module docstring): one field per
    `PARTS` entry, each a (k, j, i) map or a scalar."""

    noise: float | np.ndarray  # σ_n² · (1 + Σ w_a²)
    draws: np.ndarray | float  # var(draws), 0 for one draw
    motion: np.ndarray | float  # |∇μ|², voxel units
    change: np.ndarray | float = 0.0  # Δ²: (μ − nearest observed)², its 3 × 3 in-plane maximum
    intensity_noise: np.ndarray | float = 0.0  # σ_n(intensity)² · (1 + Σ w_a²)
    change_spread: np.ndarray | float = 0.0  # Δ², smoothed in-plane
    travel: np.ndarray | float = 0.0  # |∇μ|² · |u|² · τ², registered frames
    residual: np.ndarray | float = 0.0  # the span's unexplained registration residual, registered frames
    overshoot: np.ndarray | float = 0.0  # (μ moved back by τ·u − μ)², registered frames

    def variance(
        self, noise: float = 1.0, draws: float = 1.0, motion: float = 0.0, change: float = 0.0, **others: float
    ) -> np.ndarray:
        """Σ_p w_p · f_p, the weights by part name (a part not named weighs 0)."""
        weights = {"noise": noise, "draws": draws, "motion": motion, "change": change, **others}
        unknown = set(weights) - set(PARTS)
        if unknown:
            raise TypeError(f"no variance part {sorted(unknown)}; the parts are {PARTS}")
        return sum(weights.get(name, 0.0) * np.asarray(getattr(self, name)) for name in PARTS)


def in_plane_maximum(volume: np.ndarray) -> np.ndarray:
    """Each voxel's largest value over its 3 × 3 neighbours in its own slice (edges repeated)."""
    padded = np.pad(volume, [(0, 0)] * (volume.ndim - 2) + [(1, 1), (1, 1)], mode="edge")
    rows, columns = volume.shape[-2:]
    return np.max(
        [padded[..., j : j + rows, i : i + columns] for j in range(3) for i in range(3)],
        axis=0,
    )


def features(
    draws: np.ndarray,
    noise_var_observed: float,
    roles: Sequence[str],
    target: int,
    times=None,
    observed: Mapping[int, np.ndarray] | None = None,
    *,
    noise_profile: NoiseProfile | None = None,
    pairs: PairFields | None = None,
) -> Features:
    """The features of a target from its draws (samples, k, j, i), the observed frames' mean noise
    variance and the observed native frames (without them, no change parts); with `noise_profile`
    the noise by intensity, and with `pairs` (a target registration made, not the model) the travel,
    residual and overshoot parts of its span's motion."""
    draws = np.asarray(draws, dtype=np.float64)
    mean = draws.mean(axis=0)
    draw_var = draws.var(axis=0) if len(draws) > 1 else np.zeros_like(mean)
    gradient2 = sum(g * g for g in np.gradient(mean)) if min(mean.shape) > 1 else np.zeros_like(mean)
    anchors = anchors_of(roles, target, times)  # the frames moved into it, the nearest first by weight
    moved_in = 1.0 + sum(w * w for _, w in anchors)
    parts: dict[str, np.ndarray | float] = {}
    if observed:
        nearest = max(anchors, key=lambda pair: pair[1])[0]
        change2 = (mean - np.asarray(observed[nearest], np.float64)) ** 2
        parts["change"] = in_plane_maximum(change2)
        parts["change_spread"] = gaussian_filter(change2, _in_plane(change2, CHANGE_SPREAD_SIGMA))
    if noise_profile is not None:
        parts["intensity_noise"] = noise_profile.variance_at(mean) * moved_in
    span = span_of(roles, target, times)
    if pairs is not None and span is not None:
        displacement = pairs.motion(span.start, span.end)
        share = min(span.fraction, 1.0 - span.fraction) if span.between else span.fraction - 1.0
        parts["travel"] = gradient2 * np.sum(displacement**2, axis=-1) * share**2
        unexplained = gaussian_filter(pairs.residual(span.start, span.end), _in_plane(mean, 1.0))
        parts["residual"] = np.maximum(unexplained - 2.0 * noise_var_observed, 0.0)
        parts["overshoot"] = (warp_by(mean, share * displacement).astype(np.float64) - mean) ** 2
    return Features(noise_var_observed * moved_in, draw_var, gradient2, **parts)


@dataclass(frozen=True)
class BucketFit:
    """A bucket's weight per `PARTS` entry (the module docstring's w_p), its conformal scale s and how
    many validation voxels fitted it."""

    noise: float
    draws: float
    motion: float  # the squared motion error, voxels²
    scale: float  # conformal scale s
    voxels: int
    change: float = 0.0  # the squared share of the predicted change that may be wrong
    intensity_noise: float = 0.0
    change_spread: float = 0.0
    travel: float = 0.0
    residual: float = 0.0
    overshoot: float = 0.0

    @property
    def weights(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in PARTS}

    def variance(self, parts: Features) -> np.ndarray:
        return parts.variance(**self.weights)


@dataclass(frozen=True)
class Calibration:
    """The part weights and s per bucket, fitted on validation subjects for one native path (config.json "uncertainty")."""

    buckets: dict[str, BucketFit]
    native: str
    samples: int
    fitted_on: str = ""
    level: float = LEVEL
    method: str = "weighted variance parts, moved voxels weighed as much as the rest, conformal scale"
    notes: dict[str, str] = field(default_factory=dict)

    def fit_for(self, bucket: str) -> BucketFit:
        """The bucket's fit, else (a calibration keyed by kind and distance, "one-3", before they were
        pooled) its kind's farthest one, else the pooled one ("all")."""
        if bucket in self.buckets:
            return self.buckets[bucket]
        kind = bucket.split("-")[0]
        same_kind = sorted(k for k in self.buckets if k.startswith(kind + "-"))
        return self.buckets[same_kind[-1]] if same_kind else self.buckets["all"]

    def sigma(self, bucket: str, parts: Features) -> np.ndarray:
        fit = self.fit_for(bucket)
        return (fit.scale * np.sqrt(fit.variance(parts))).astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> Calibration:
        """Read config.json's "uncertainty", naming what is wrong."""
        try:
            buckets = {
                str(k): BucketFit(
                    scale=float(v["scale"]),
                    voxels=int(v["voxels"]),
                    **{name: float(v[name]) for name in REQUIRED_PARTS},
                    **{name: float(v.get(name, 0.0)) for name in PARTS if name not in REQUIRED_PARTS},
                )
                for k, v in data["buckets"].items()
            }
            calibration = cls(
                buckets=buckets,
                native=str(data["native"]),
                samples=int(data["samples"]),
                fitted_on=str(data.get("fitted_on", "")),
                level=float(data.get("level", LEVEL)),
                method=str(data.get("method", cls.method)),
                notes=dict(data.get("notes", {})),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ConfigError(
                f"config.json 'uncertainty' is not a calibration ({error!r}); refit it with `sadm calibrate`"
            ) from error
        weights = [w for f in buckets.values() for w in f.weights.values()]
        if "all" not in buckets or min(weights) < 0 or any(f.scale <= 0 for f in buckets.values()):
            raise ConfigError("config.json 'uncertainty' needs an 'all' bucket, weights ≥ 0 and s > 0 in every bucket")
        return calibration


def observed_noise_var(observed: Mapping[int, np.ndarray]) -> float:
    """The mean acquisition-noise variance of the observed frames (the target's own is assumed alike)."""
    return float(np.mean([noise_sigma(frame) ** 2 for frame in observed.values()]))
