"""Run methods (trained models and baselines) over held-out sequences in each setting and score
every predicted frame against the truth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from sadm.defaults import DEFAULT_SAMPLER
from sadm.evaluation.baselines import Baseline
from sadm.evaluation.metrics import score
from sadm.evaluation.settings import setting_runs
from sadm.generation.request import build_request


@dataclass(frozen=True)
class HeldOutSequence:
    """A test sequence on the model grid: frames (L, k, j, i) in [0, 1] and their times."""

    subject: str
    frames: np.ndarray
    times: tuple[float, ...]


class Method(Protocol):
    name: str

    def predict(
        self, frames: np.ndarray, roles: Sequence[str], times: Sequence[float], seed: int
    ) -> dict[int, np.ndarray]:
        """{index: predicted frame} for every non-observed index of `roles`."""


@dataclass
class BaselineMethod:
    name: str
    baseline: Baseline

    def predict(self, frames, roles, times, seed):
        return self.baseline(frames, roles, times)


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

    def predict(self, frames, roles, times, seed):
        inputs = [frame if role == "observed" else None for frame, role in zip(frames, roles)]
        request = build_request(
            roles,
            len(roles),
            input_times=list(times[: len(roles)]),  # a full-setting run ends at its target
            sampler=self.sampler,
            steps=self.steps,
            guidance=self.guidance,
            seed=seed,
            samples=self.samples,
        )
        return self.engine.generate(inputs, request).mean


@dataclass
class EvaluationResult:
    """One row per (method, setting, subject, frame): its SSIM, PSNR and NRMSE against the truth."""

    rows: list[dict] = field(default_factory=list)


def evaluate(
    methods: Sequence[Method],
    sequences: Sequence[HeldOutSequence],
    settings: Sequence[str],
    seed: int = 0,
    missing_rate: float = 0.5,
    progress: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Every method sees the same role draws and seeds, so rows are comparable across methods and runs."""
    result = EvaluationResult()
    for number, sequence in enumerate(sequences):
        for setting in settings:
            runs = setting_runs(setting, len(sequence.frames), seed * 100003 + number, missing_rate)
            for method in methods:
                for run, roles in enumerate(runs):
                    predicted = method.predict(
                        sequence.frames, roles, sequence.times, seed * 100003 + number * 101 + run
                    )
                    for index, frame in sorted(predicted.items()):
                        result.rows.append(
                            {
                                "method": method.name,
                                "setting": setting,
                                "subject": sequence.subject,
                                "frame": index,
                                **score(sequence.frames[index], frame),
                            }
                        )
                if progress is not None:
                    progress(f"{sequence.subject} {setting} {method.name}")
    return result
