#!/usr/bin/env python3
"""How closely can any σ map follow the error of a generated cardiac frame? The bound the README's
*Uncertainty maps* section quotes for r(|error|, σ).

Renders validation cardiac phantoms (seed 2000, as `sadm data make-synthetic` does) and their
noise-free twins (`cardiac_subject(..., noisy=False)`: the same subject without its Rician noise).
For every frame the model's native path makes (the role draws and seeds of `sadm evaluate` and `sadm
calibrate`, N = 8 draws), the same draws and motions move the noise-free observed frames
(`Generation.moving`: registrations and the model's drawn motions alike), which splits the frame's
error into the motion's error (noise-free frame moved − noise-free truth) and the noise of the frames
moved and of the truth. Per setting it prints r(|error|, σ), averaged over frames, for

- the model's calibrated map (`Generation.spread`, N = 8 as calibrated);
- maps that know the motion's error exactly at every voxel and the noise's mean and spread at each
  noise-free intensity (Rician noise is weaker and biased in the dark), but no noise realisation —
  the best a map can do without knowing where the noise happened to be large;
- a map that also knows the noise moved in with the observed frames (the truth's own noise stays
  unknown): more than any map can know, since a frame whose noise were known would be denoised;

and the share of the error's variance the motion's error makes.

    .venv/bin/python scripts/uncertainty_bound.py [--model cardiac-demo] [--subjects 5] [--seed 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from sadm.data.preprocess import preprocess_sequence
from sadm.defaults import DEFAULT_SAMPLER
from sadm.evaluation.held_out import held_out_params, load_held_out
from sadm.evaluation.runner import ModelMethod, seeded_runs
from sadm.generation.engine import Engine
from sadm.io.readers import discover_sequences
from sadm.phantoms import cardiac_subject, make_synthetic

SETTINGS = ("single", "missing", "full")
BINS = 40  # noise-free intensity bins for the noise's mean and spread


def noise_by_intensity(level: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per voxel, the mean and standard deviation of `noise` over the voxels of similar `level`."""
    edges = np.unique(np.quantile(level, np.linspace(0.0, 1.0, BINS + 1)))
    which = np.clip(np.digitize(level, edges) - 1, 0, len(edges) - 2)
    count = np.maximum(np.bincount(which.ravel(), minlength=len(edges) - 1), 1)
    mean = np.bincount(which.ravel(), noise.ravel(), len(edges) - 1) / count
    square = np.bincount(which.ravel(), (noise * noise).ravel(), len(edges) - 1) / count
    return mean[which], np.sqrt(np.maximum(square - mean * mean, 0.0))[which]


def r(error: np.ndarray, sigma: np.ndarray) -> float:
    return float(np.corrcoef(np.abs(error).ravel(), np.asarray(sigma, np.float64).ravel())[0, 1])


def frame_scores(truth, clean_truth, mean, clean_mean, sigma) -> dict[str, float]:
    error, motion = mean - truth, clean_mean - clean_truth
    moved_noise, truth_noise = mean - clean_mean, truth - clean_truth
    moved_bias, moved_spread = noise_by_intensity(clean_truth, moved_noise)
    truth_bias, truth_spread = noise_by_intensity(clean_truth, truth_noise)
    return {
        "ours": r(error, sigma),
        "motion": r(error, np.sqrt((motion + moved_bias - truth_bias) ** 2 + moved_spread**2 + truth_spread**2)),
        "moved noise": r(error, np.sqrt((motion + moved_noise - truth_bias) ** 2 + truth_spread**2)),
        "share": float(np.mean(motion**2) / np.mean(error**2)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="cardiac-demo")
    parser.add_argument("--subjects", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2000, help="2000: the validation subjects")
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated, of " + ", ".join(SETTINGS))
    args = parser.parse_args()
    settings = [name.strip() for name in args.settings.split(",") if name.strip()]
    if not settings or set(settings) - set(SETTINGS):
        parser.error(f"--settings takes some of {', '.join(SETTINGS)}; got {args.settings!r}")
    engine = Engine.load(args.model, device="cpu")
    method = ModelMethod("SADM", engine, DEFAULT_SAMPLER, None, None, 8)
    scores: dict[str, list[dict[str, float]]] = {setting: [] for setting in settings}
    with tempfile.TemporaryDirectory() as work:
        data = make_synthetic("cardiac", Path(work) / "cardiac", subjects=args.subjects, seed=args.seed)
        sources = discover_sequences(data)
        for number, sequence in enumerate(load_held_out(str(data), engine, None, args.subjects)):
            length = len(sequence.frames)
            params = held_out_params(engine.config, None, grid=np.asarray(sequence.frames[0]).shape)
            intensity = preprocess_sequence(sources[number].read(), params).intensity
            noisy = intensity.normalize(cardiac_subject(args.seed, number).frames[:length])
            if not np.allclose(noisy, sequence.frames, atol=1e-5):
                raise SystemExit(f"{sequence.subject}: the re-rendered phantom is not the sequence read back")
            clean = intensity.normalize(cardiac_subject(args.seed, number, noisy=False).frames[:length])
            for setting in settings:
                for roles, run_seed in seeded_runs(setting, length, number, 0, 0.5):
                    generation = method.generation(sequence.frames, roles, sequence.times, run_seed)
                    noise_free = generation.moving({i: clean[i] for i in generation.pairs.frames})
                    for index in generation:
                        scores[setting].append(
                            frame_scores(
                                sequence.frames[index].astype(np.float64),
                                clean[index].astype(np.float64),
                                generation.mean[index].astype(np.float64),
                                noise_free.mean[index].astype(np.float64),
                                generation.spread[index],
                            )
                        )
            print(f"{sequence.subject} done", file=sys.stderr, flush=True)
    print(
        f"`{args.model}`, {args.subjects} cardiac subjects (seed {args.seed}), every generated frame, N = 8; "
        "r(|error|, σ) averaged over frames\n"
    )
    print(
        "| setting | frames | our map | knows the motion's error | also knows the noise moved in | motion's share of the error variance |"
    )
    print("|---|---|---|---|---|---|")
    for setting, rows in [*scores.items(), ("all", [row for each in scores.values() for row in each])]:
        mean = {key: np.mean([row[key] for row in rows]) for key in rows[0]}
        print(
            f"| {setting} | {len(rows)} | {mean['ours']:.2f} | {mean['motion']:.2f} | {mean['moved noise']:.2f} "
            f"| {mean['share']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
