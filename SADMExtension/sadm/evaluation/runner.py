"""Run methods (trained models and baselines) over held-out sequences in each setting and score
every predicted frame against the truth: on the sequence's native grid (what a user sees), and on
the model's grid when one is given (what the model itself resolves)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from sadm.data.resample import resample_to_shape
from sadm.defaults import DEFAULT_SAMPLER
from sadm.evaluation.baselines import Baseline, reference_index
from sadm.evaluation.blood_pool import BloodPoolRule
from sadm.evaluation.coverage import changed_voxels, coverage_row, moved_voxels
from sadm.evaluation.metrics import score
from sadm.evaluation.settings import setting_runs
from sadm.generation.request import OBSERVED, build_request
from sadm.generation.uncertainty import bucket_of


@dataclass(frozen=True)
class HeldOutSequence:
    """A test sequence on its native grid: frames (L, k, j, i) in [0, 1] and their times."""

    subject: str
    frames: np.ndarray
    times: tuple[float, ...]
    blood_pool: BloodPoolRule | None = None  # cardiac with an ED label: the LV volume rule


@dataclass(frozen=True)
class Prediction:
    """{index: frame} for every non-observed index: on the native grid, and on the model grid
    (None when not asked for)."""

    native: dict[int, np.ndarray]
    model_grid: dict[int, np.ndarray] | None = None
    spread: dict[int, np.ndarray] | None = None  # {index: σ map, native grid}: a model's with samples > 1
    calibrated: bool = False  # whether `spread` is the calibrated predictive σ, not the draws' std


class Method(Protocol):
    name: str

    def predict(
        self,
        frames: np.ndarray,
        roles: Sequence[str],
        times: Sequence[float],
        seed: int,
        grid_frames: np.ndarray | None = None,
    ) -> Prediction:
        """The frames of every non-observed index of `roles`; `grid_frames` are `frames` on the model
        grid, given when model-grid predictions are wanted."""


@dataclass
class BaselineMethod:
    """A baseline runs on each grid's own frames (copying a native frame is what a user gets)."""

    name: str
    baseline: Baseline

    def predict(self, frames, roles, times, seed, grid_frames=None):
        on_grid = None if grid_frames is None else self.baseline(grid_frames, roles, times)
        return Prediction(self.baseline(frames, roles, times), on_grid)


@dataclass
class ModelMethod:
    """A trained model behind the Engine, sampling with fixed settings (seeded per run).

    `samples` > 1 scores the voxel-wise mean of that many sampled sequences — the model's estimate
    of the posterior mean, which is what PSNR rewards: one sample's expected squared error is the
    mean's plus the posterior variance, so an ℓ2 regressor has that edge over any single draw."""

    name: str
    engine: object  # sadm.Engine (not imported here so baselines run without torch)
    sampler: str = DEFAULT_SAMPLER
    steps: int | None = None
    guidance: float | None = None
    samples: int = 1
    native: str | None = None  # None: the model's
    sampler_options: Mapping[str, float] = field(default_factory=dict)  # the sampler's settings (catalogue)

    def generation(self, frames, roles, times, seed):
        """The engine's `Generation` of the non-observed frames of `roles` with this method's settings."""
        inputs = [frame if role == OBSERVED else None for frame, role in zip(frames, roles)]
        request = build_request(
            roles,
            len(roles),
            input_times=list(times[: len(roles)]),  # a full-setting run ends at its target
            sampler=self.sampler,
            steps=self.steps,
            guidance=self.guidance,
            seed=seed,
            samples=self.samples,
            native=self.native,
            sampler_options=self.sampler_options,
        )
        return self.engine.generate(inputs, request)

    def predict(self, frames, roles, times, seed, grid_frames=None):
        generation = self.generation(frames, roles, times, seed)
        on_grid = generation.mean_on_model_grid if grid_frames is not None else None
        return Prediction(generation.mean, on_grid, generation.std, generation.calibrated)


@dataclass
class EvaluationResult:
    """One row per (method, setting, grid, subject, frame): its SSIM, PSNR, NRMSE and change
    correlation against the truth."""

    rows: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    """{method: wall seconds of its predictions}, all runs together: what each answer costs."""
    spread_rows: list[dict] = field(default_factory=list)
    """One row per (method, setting, subject, frame) whose prediction came with a σ map: how well the
    map covers the truth (`sadm.evaluation.coverage.coverage_row`), native grid."""


def seeded_runs(setting: str, length: int, number: int, seed: int, missing_rate: float) -> list[tuple[list[str], int]]:
    """[(roles, run seed)] of sequence `number` in `setting`: the same role draws and seeds for every
    method, and for `sadm calibrate`, which draws its validation frames as `sadm evaluate` does."""
    runs = setting_runs(setting, length, seed * 100003 + number, missing_rate)
    return [(roles, seed * 100003 + number * 101 + run) for run, roles in enumerate(runs)]


def evaluate(
    methods: Sequence[Method],
    sequences: Sequence[HeldOutSequence],
    settings: Sequence[str],
    seed: int = 0,
    missing_rate: float = 0.5,
    progress: Callable[[str], None] | None = None,
    model_grid: Sequence[int] | None = None,
) -> EvaluationResult:
    """Every method sees the same role draws and seeds, so rows are comparable across methods and runs.
    Frames are scored on each sequence's native grid and, with `model_grid`, also on that grid (the
    truth resampled onto it, as the Engine resamples its inputs)."""
    result = EvaluationResult()
    for number, sequence in enumerate(sequences):
        grid_frames = None
        if model_grid is not None:
            grid_frames = np.stack([resample_to_shape(frame, model_grid) for frame in sequence.frames])
        for setting in settings:
            runs = seeded_runs(setting, len(sequence.frames), number, seed, missing_rate)
            for method in methods:
                for roles, run_seed in runs:
                    started = time.perf_counter()
                    predicted = method.predict(sequence.frames, roles, sequence.times, run_seed, grid_frames)
                    spent = time.perf_counter() - started
                    result.seconds[method.name] = result.seconds.get(method.name, 0.0) + spent
                    scored = [
                        ("native", sequence.frames, predicted.native),
                        ("model", grid_frames, predicted.model_grid),
                    ]
                    for grid, truth, frames in scored:
                        if truth is None or frames is None:
                            continue
                        for index, frame in sorted(frames.items()):
                            row = {
                                "method": method.name,
                                "setting": setting,
                                "grid": grid,
                                "subject": sequence.subject,
                                "frame": index,
                                **score(truth[index], frame, truth[reference_index(roles, index)]),
                            }
                            if grid == "native" and sequence.blood_pool is not None:
                                rule = sequence.blood_pool
                                row["lv_ml"] = abs(rule.volume_ml(frame) - rule.volume_ml(truth[index]))
                            result.rows.append(row)
                    for index, sigma in sorted((predicted.spread or {}).items()):
                        truth, reference = sequence.frames[index], sequence.frames[reference_index(roles, index)]
                        result.spread_rows.append(
                            {
                                "method": method.name,
                                "setting": setting,
                                "subject": sequence.subject,
                                "frame": index,
                                "bucket": bucket_of(roles, index, sequence.times[: len(roles)]),
                                "calibrated": predicted.calibrated,
                                **coverage_row(
                                    truth,
                                    predicted.native[index],
                                    sigma,
                                    moved_voxels(truth, reference),
                                    changed_voxels(truth, reference),
                                ),
                            }
                        )
                if progress is not None:
                    progress(f"{sequence.subject} {setting} {method.name}")
    return result
