"""Fit a model's spread calibration on validation sequences, and report how spread maps cover the
truth: the tables and the reliability diagram of `sadm evaluate` and `sadm calibrate`."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sadm.evaluation.baselines import reference_index
from sadm.evaluation.coverage import RELIABILITY_LEVELS, moved_voxels
from sadm.evaluation.runner import HeldOutSequence, ModelMethod, seeded_runs
from sadm.generation.uncertainty import (
    LEVEL,
    MIN_VOXELS,
    MOVED_CAP,
    MOVED_LEVEL,
    PARTS,
    Z_95,
    BucketFit,
    Calibration,
    Features,
)

ARRAYS = ("error2", *PARTS, "moved")  # what a fit set holds per bucket
EARLIER_NAMES = {"noise": "noise_var", "draws": "draw_var", "motion": "gradient2", "change": "change2"}
"""The names a fit set saved before the parts were named as `BucketFit`'s weights gave them."""
MIN_MOVED = 200  # fewer moved voxels than this in a bucket: plain likelihood and scale


@dataclass
class FitSet:
    """Validation voxels gathered per bucket: squared errors, the variance features and whether the
    anatomy moved there (`moved_voxels`, from the truth: known on validation only), sampled at most
    `max_voxels_per_frame` per frame. Saved beside a calibration (`save`), so that it can be refitted
    without generating again."""

    max_voxels_per_frame: int = 20000
    seed: int = 0
    parts: dict[str, list[tuple[np.ndarray, ...]]] = field(default_factory=dict)

    def add(
        self, bucket: str, truth: np.ndarray, mean: np.ndarray, parts: Features, reference: np.ndarray | None = None
    ) -> None:
        """One generated frame's voxels; `reference` (the last observed frame before it) marks the moved ones."""
        error2 = (np.asarray(truth, np.float64) - mean) ** 2
        rng = np.random.default_rng([self.seed, len(self.parts.get(bucket, [])), error2.size])
        take = rng.choice(error2.size, min(self.max_voxels_per_frame, error2.size), replace=False)
        moved = np.zeros(error2.shape) if reference is None else moved_voxels(truth, reference)
        sample = (
            error2.ravel()[take],
            *(np.broadcast_to(getattr(parts, name), error2.shape).ravel()[take] for name in PARTS),
            np.asarray(moved, np.float64).ravel()[take],
        )
        self.parts.setdefault(bucket, []).append(tuple(np.asarray(a, np.float64) for a in sample))

    def arrays(self, keys: Sequence[str]) -> tuple[np.ndarray, ...]:
        chunks = [chunk for key in keys for chunk in self.parts[key]]
        return tuple(np.concatenate([chunk[n] for chunk in chunks]) for n in range(len(ARRAYS)))

    def save(self, path: Path) -> None:
        """One .npz (no pickle): each bucket's arrays, one per `ARRAYS`."""
        arrays = {f"{key}/{name}": a for key in self.parts for name, a in zip(ARRAYS, self.arrays([key]))}
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> FitSet:
        with np.load(path, allow_pickle=False) as data:
            keys = sorted({name.split("/")[0] for name in data.files})

            def part(key: str, name: str) -> np.ndarray:
                # a part or the moved mark a set was saved without: zeros, so it refits as it was fitted
                for stored in (name, EARLIER_NAMES.get(name)):
                    if f"{key}/{stored}" in data.files:
                        return data[f"{key}/{stored}"]
                return np.zeros_like(data[f"{key}/error2"])

            return cls(parts={key: [tuple(part(key, name) for name in ARRAYS)] for key in keys})

    def fit(self, native: str, samples: int, fitted_on: str) -> Calibration:
        """Per bucket with enough voxels, and pooled ("all"): the part weights and s (`fit_bucket`)."""
        groups: dict[str, list[str]] = {"all": sorted(self.parts)}  # sorted: a saved set refits identically
        for key in sorted(self.parts):
            groups.setdefault(key, [key])
        buckets = {}
        for name, keys in groups.items():
            error2, *features_, moved = self.arrays(keys)
            if error2.size < MIN_VOXELS and name != "all":
                continue
            buckets[name] = fit_bucket(error2, np.stack(features_), moved > 0.5)
        return Calibration(buckets, native, samples, fitted_on)


def fit_bucket(error2: np.ndarray, features_: np.ndarray, moved: np.ndarray | None = None) -> BucketFit:
    """Weights ≥ 0 of the variance parts (`features_`, one row per `PARTS`) that maximise
    the Gaussian likelihood of the errors (in log space, L-BFGS), a part that is zero everywhere kept at
    1 (it cannot be told apart), then s. With enough `moved` voxels, they weigh as much as all the
    others together, and s also puts `MOVED_LEVEL` of them inside ±2σ (capped by `MOVED_CAP`)."""
    from scipy.optimize import minimize

    count = len(features_)
    # a part that is 0 up to rounding (the draws' variance of a registered frame) cannot be told apart
    present = [n for n in range(count) if float(np.max(features_[n], initial=0.0)) > 1e-9 * float(np.mean(error2))]
    floor = max(float(np.mean(error2)) * 1e-6, 1e-20)
    moved = np.zeros(error2.shape, bool) if moved is None else np.asarray(moved, bool)
    balanced = MIN_MOVED <= moved.sum() < moved.size
    voxel_weight = (
        np.where(moved, 0.5 / max(moved.sum(), 1), 0.5 / max((~moved).sum(), 1))
        if balanced
        else np.full(error2.size, 1.0 / error2.size)
    )

    def variance_of(weights: np.ndarray) -> np.ndarray:
        return np.tensordot(weights, features_, axes=1) + floor

    def objective(log_weights: np.ndarray) -> tuple[float, np.ndarray]:
        weights = np.ones(count)
        weights[present] = np.exp(log_weights)
        variance = variance_of(weights)
        value = float(np.sum(voxel_weight * (np.log(variance) + error2 / variance)))
        slope = (1.0 / variance - error2 / variance**2) * features_[present]
        return value, np.sum(voxel_weight * slope, axis=1) * weights[present]

    start = np.array(
        [
            np.log(max(float(np.mean(error2)) / max(float(np.mean(features_[n])), 1e-20), 1e-12)) - np.log(len(present))
            for n in present
        ]
    )
    best = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=[(-40.0, 40.0)] * len(present))
    weights = np.ones(count)
    weights[present] = np.exp(best.x)
    ratio = np.sqrt(error2 / variance_of(weights))
    scale = float(np.quantile(ratio, LEVEL)) / Z_95
    if balanced:
        for_moved = float(np.quantile(ratio[moved], MOVED_LEVEL)) / 2.0
        scale = max(scale, min(for_moved, float(np.quantile(ratio, MOVED_CAP)) / 2.0))
    return BucketFit(
        scale=max(scale, 1e-6), voxels=int(error2.size), **{name: float(w) for name, w in zip(PARTS, weights)}
    )


def save_calibration(out: Path, calibration: Calibration, fit: FitSet) -> None:
    """calibration.json and the voxels it was fitted on (voxels.npz) into `out` (a staging folder)."""
    (out / "calibration.json").write_text(json.dumps(calibration.to_dict(), indent=1) + "\n", encoding="utf-8")
    fit.save(out / "voxels.npz")


def fit_calibration(
    engine,
    sequences: Sequence[HeldOutSequence],
    settings: Sequence[str],
    samples: int,
    *,
    sampler: str,
    steps: int | None,
    guidance: float | None,
    native: str | None,
    sampler_options: Mapping[str, float] | None = None,
    seed: int = 0,
    missing_rate: float = 0.5,
    fitted_on: str = "",
    progress: Callable[[str], None] | None = None,
) -> tuple[Calibration, FitSet]:
    """The part weights and s per bucket from every generated frame of `sequences` in `settings`, drawn as
    `sadm evaluate` draws them (the same role draws and seeds), `samples` draws each; with the voxels."""
    fit = FitSet(seed=seed)
    native = native or engine.config.native
    method = ModelMethod("calibrate", engine, sampler, steps, guidance, samples, native, dict(sampler_options or {}))
    for number, sequence in enumerate(sequences):
        for setting in settings:
            for roles, run_seed in seeded_runs(setting, len(sequence.frames), number, seed, missing_rate):
                generation = method.generation(sequence.frames, roles, sequence.times, run_seed)
                for index, (bucket, parts) in generation.spread_parts.items():
                    reference = sequence.frames[reference_index(roles, index)]
                    fit.add(bucket, sequence.frames[index], generation.mean[index], parts, reference)
            if progress is not None:
                progress(f"{sequence.subject} {setting}")
    return fit.fit(native, samples, fitted_on), fit


SPREAD_COLUMNS = (
    ("cover_50", "50 %"),
    ("cover_90", "90 %"),
    ("cover_95", "95 %"),
    ("cover_2sigma", "±2σ"),
    ("cover_2sigma_changed", "±2σ, moved"),
    ("cover_2sigma_changed_raw", "±2σ, changed voxel-wise"),
    ("r_error_sigma", "r(|err|, σ)"),
    ("sharpness", "mean σ"),
)


def spread_summary(rows: Sequence[dict]) -> list[dict]:
    """Per (method, setting) and over all settings: each column's mean over frames, then subjects."""
    summary = []
    keys = sorted({(r["method"], r["setting"]) for r in rows}) + sorted({(r["method"], "all") for r in rows})
    for method, setting in keys:
        chosen = [r for r in rows if r["method"] == method and setting in ("all", r["setting"])]
        entry = {"method": method, "setting": setting, "calibrated": all(r["calibrated"] for r in chosen)}
        for column in [c for c, _ in SPREAD_COLUMNS] + [f"reliability_{level:g}" for level in RELIABILITY_LEVELS]:
            per_subject = {}
            for row in chosen:
                if np.isfinite(row[column]):
                    per_subject.setdefault(row["subject"], []).append(row[column])
            entry[column] = float(np.mean([np.mean(v) for v in per_subject.values()])) if per_subject else float("nan")
        summary.append(entry)
    return summary


def spread_table(summary: Sequence[dict]) -> str:
    """Markdown: coverage of the central bands (nominal in the header) over all voxels and over the
    changed ones, r(|error|, σ) and sharpness, per method and setting."""
    header = "| method | setting | " + " | ".join(label for _, label in SPREAD_COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(SPREAD_COLUMNS) + 2)]
    for entry in summary:
        name = entry["method"] + ("" if entry["calibrated"] else " (draws' std, uncalibrated)")
        cells = [f"{entry[c]:.3f}" if c != "sharpness" else f"{entry[c]:.4f}" for c, _ in SPREAD_COLUMNS]
        lines.append(f"| {name} | {entry['setting']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def reliability_diagram(summary: Sequence[dict], path: Path, size: int = 420) -> None:
    """Observed against nominal coverage of the central bands, one line per method over all settings
    (the diagonal: a calibrated map), as a PNG (Pillow only)."""
    from PIL import Image, ImageDraw

    margin, colours = 48, [(200, 40, 40), (40, 90, 200), (30, 150, 60), (160, 90, 20)]
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    span = size - 2 * margin

    def point(nominal: float, observed: float) -> tuple[float, float]:
        return margin + nominal * span, size - margin - observed * span

    draw.rectangle([margin, margin, size - margin, size - margin], outline=(0, 0, 0))
    draw.line([point(0, 0), point(1, 1)], fill=(150, 150, 150), width=1)
    for tick in (0.0, 0.5, 1.0):
        x, y = point(tick, tick)
        draw.text((x - 8, size - margin + 6), f"{tick:g}", fill=(0, 0, 0))
        draw.text((margin - 26, y - 6), f"{tick:g}", fill=(0, 0, 0))
    draw.text((margin, size - 20), "nominal coverage of the central band", fill=(0, 0, 0))
    draw.text((margin, 8), "observed coverage (native grid, all settings)", fill=(0, 0, 0))
    overall = [entry for entry in summary if entry["setting"] == "all"]
    for number, entry in enumerate(overall):
        colour = colours[number % len(colours)]
        points = [point(0, 0)] + [point(level, entry[f"reliability_{level:g}"]) for level in RELIABILITY_LEVELS]
        draw.line(points, fill=colour, width=2)
        draw.text((margin + 8, margin + 8 + 14 * number), entry["method"][:48], fill=colour)
    image.save(path)
