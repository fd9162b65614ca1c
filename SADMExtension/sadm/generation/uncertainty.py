"""A per-voxel predictive spread on the input's grid that counts what the draws alone miss.

The spread between N draws measures only how the model's draws differ. On the native grid every draw
moves the same observed frame, so it carries that frame's acquisition noise and shares the motion's
error, while the truth has noise of its own. The predictive variance of a generated frame is therefore
modelled, per voxel, as

    σ² = s² · (α · σ_n² · (1 + Σ_a w_a²) + β · var(draws) + γ · |∇μ|² + δ · Δ²)

- σ_n²: the acquisition noise of the observed frames (`noise_sigma`, a robust high-pass estimate),
  once for the target's own noise and once per anchor frame moved into it, with its blend weight w_a;
- var(draws): the spread between the draws (0 for a frame registration makes);
- γ · |∇μ|²: a motion error of √γ voxels moves an edge of gradient |∇μ| by √γ·|∇μ| in intensity;
- δ · Δ²: the change the frame makes from its nearest observed frame, (μ − x_a)², its largest over each
  voxel's 3 × 3 in-plane neighbours: where the anatomy is predicted to move, a fraction √δ of that
  motion may be wrong, and a misplaced edge lands beside where it was predicted;
- α, β, γ, δ ≥ 0: how much each part counts (the noise estimate reads texture as noise on a coarse
  grid, the draws may spread too little or too much), fitted by the Gaussian likelihood in which the
  validation voxels where the anatomy moved (`moved_voxels`, a few per cent of a frame) weigh as much as
  all the others together — else the static voxels decide every weight and the map is too narrow
  exactly where the motion is;
- s: a conformal scale, so that ±1.96σ holds the truth at 95 % of voxels and ±2σ at `MOVED_LEVEL` of the
  moved ones (never beyond what puts 97.5 % of all voxels inside ±2σ).

α, β, γ, δ and s are fitted on validation subjects (never on test subjects;
`sadm.evaluation.calibration`) per *bucket* — how the frame is made: between two observed frames,
beyond the last two, or from one observed frame — and stored in the model folder's config.json
("uncertainty"). The distance from the observed frames is left to the parts (the draws spread and the
change grows with it): one fit per distance, each on a few frames per subject, held worse on unseen
subjects. Applying them needs numpy (and SimpleITK for the noise estimate) only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import SimpleITK as sitk

from sadm.errors import ConfigError
from sadm.generation.native import anchors_of
from sadm.generation.registration import span_of

LEVEL = 0.95  # the band the conformal scale calibrates
Z_95 = 1.959964
MIN_VOXELS = 1000  # a bucket fitted on fewer voxels falls back to "all"
MOVED_LEVEL = 0.90  # the share of moved validation voxels the scale puts inside ±2σ
MOVED_CAP = 0.975  # ... but never a scale that puts more than this share of all voxels inside ±2σ


def noise_sigma(volume: np.ndarray) -> float:
    """The standard deviation of a volume's acquisition noise: the median absolute deviation of its
    second differences along the two in-plane axes (each 6 σ² for white noise; a linear trend
    cancels), over the flattest 60 % of voxels (edges are signal, not noise; the median ignores the
    rest). Voxels whose neighbourhood touches an exact 0 (a skull-stripped or masked background) are
    left out."""
    volume = np.asarray(volume, dtype=np.float64)
    smooth = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(volume), 1.0))
    slope = sum(g * g for g in np.gradient(smooth)[-2:])
    residuals, slopes = [], []
    for axis in (-1, -2):
        n = volume.shape[axis]
        if n < 3:
            continue
        a, b, c = (np.take(volume, range(start, n - 2 + start), axis=axis) for start in range(3))
        valid = (a != 0) & (b != 0) & (c != 0)
        residuals.append(((a - 2.0 * b + c) / np.sqrt(6.0))[valid])
        slopes.append(np.take(slope, range(1, n - 1), axis=axis)[valid])
    if not residuals or sum(r.size for r in residuals) < 10:
        return 0.0
    values, slopes = np.concatenate(residuals), np.concatenate(slopes)
    values = values[slopes <= np.quantile(slopes, 0.6)]
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def bucket_of(roles: Sequence[str], target: int, times: Sequence[float] | None = None) -> str:
    """How a target is made — "between" two observed frames, "beyond" the last two, or from "one"
    observed frame: the key of its calibration."""
    span = span_of(roles, target, times)
    return "one" if span is None else ("between" if span.between else "beyond")


@dataclass(frozen=True)
class Features:
    """What the predictive variance of one target is built from (module docstring)."""

    noise_var: float  # σ_n² · (1 + Σ w_a²)
    draw_var: np.ndarray  # (k, j, i) or a scalar 0
    gradient2: np.ndarray  # |∇μ|², voxel units
    change2: np.ndarray | float = 0.0  # Δ²: (μ − nearest observed)², its 3 × 3 in-plane maximum

    def variance(self, noise: float = 1.0, draws: float = 1.0, motion: float = 0.0, change: float = 0.0) -> np.ndarray:
        """α σ_n²(1 + Σw²) + β var(draws) + γ |∇μ|² + δ Δ² (module docstring)."""
        return noise * self.noise_var + draws * self.draw_var + motion * self.gradient2 + change * self.change2


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
) -> Features:
    """The features of a target from its draws (samples, k, j, i), the observed frames' mean noise
    variance and the observed native frames (without them, no change term)."""
    draws = np.asarray(draws, dtype=np.float64)
    mean = draws.mean(axis=0)
    draw_var = draws.var(axis=0) if len(draws) > 1 else np.zeros_like(mean)
    gradient2 = sum(g * g for g in np.gradient(mean)) if min(mean.shape) > 1 else np.zeros_like(mean)
    anchors = anchors_of(roles, target, times)  # the frames moved into it, the nearest first by weight
    change2: np.ndarray | float = 0.0
    if observed:
        nearest = max(anchors, key=lambda pair: pair[1])[0]
        change2 = in_plane_maximum((mean - np.asarray(observed[nearest], np.float64)) ** 2)
    return Features(noise_var_observed * (1.0 + sum(w * w for _, w in anchors)), draw_var, gradient2, change2)


@dataclass(frozen=True)
class BucketFit:
    noise: float  # α
    draws: float  # β
    motion: float  # γ: the squared motion error, voxels²
    scale: float  # conformal scale s
    voxels: int  # how many validation voxels fitted it
    change: float = 0.0  # δ: the squared share of the predicted change that may be wrong

    def variance(self, parts: Features) -> np.ndarray:
        return parts.variance(self.noise, self.draws, self.motion, self.change)


@dataclass(frozen=True)
class Calibration:
    """τ and s per bucket, fitted on validation subjects for one native path (config.json "uncertainty")."""

    buckets: dict[str, BucketFit]
    native: str
    samples: int
    fitted_on: str = ""
    level: float = LEVEL
    method: str = "noise + draws + motion + change, moved voxels weighed as much as the rest, conformal scale"
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
                    float(v["noise"]),
                    float(v["draws"]),
                    float(v["motion"]),
                    float(v["scale"]),
                    int(v["voxels"]),
                    float(v.get("change", 0.0)),
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
        weights = [w for f in buckets.values() for w in (f.noise, f.draws, f.motion, f.change)]
        if "all" not in buckets or min(weights) < 0 or any(f.scale <= 0 for f in buckets.values()):
            raise ConfigError("config.json 'uncertainty' needs an 'all' bucket, weights ≥ 0 and s > 0 in every bucket")
        return calibration


def observed_noise_var(observed: Mapping[int, np.ndarray]) -> float:
    """The mean acquisition-noise variance of the observed frames (the target's own is assumed alike)."""
    return float(np.mean([noise_sigma(frame) ** 2 for frame in observed.values()]))
