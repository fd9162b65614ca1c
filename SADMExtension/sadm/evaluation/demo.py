"""`sadm demo`: a held-out synthetic cardiac sequence, some frames missing and the last ones in
the future, generated with the bundled model and written out for a person to look at."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sadm.config import preset
from sadm.data.resample import resample_to_shape
from sadm.defaults import DEFAULT_SAMPLER
from sadm.errors import CheckpointError
from sadm.evaluation.baselines import BASELINES, reference_index
from sadm.evaluation.held_out import held_out_cardiac_sequence
from sadm.evaluation.metrics import score
from sadm.evaluation.montage import mid_slices, save_montage
from sadm.generation.engine import Engine
from sadm.generation.request import SamplingOptions, build_request
from sadm.io.writers import write_sequence, write_volume
from sadm.networks.sadm import SADM
from sadm.storage.atomic import atomic_folder
from sadm.storage.checkpoint import save_model
from sadm.storage.registry import available_models


def demo_roles(length: int) -> list[str]:
    """Frame 0 and every third frame observed, the others missing, the last quarter future."""
    future_from = length - max(1, length // 4)
    return ["future" if i >= future_from else ("observed" if i % 3 == 0 else "missing") for i in range(length)]


def load_demo_engine(model: str, device: str, scratch: Path) -> tuple[Engine, bool]:
    """The bundled model, or — in a checkout that has none yet — an untrained tiny model (said loudly)."""
    try:
        return Engine.load(model, device=device), True
    except CheckpointError:
        if model != "cardiac-demo" or "cardiac-demo" in available_models():
            raise
    config = preset("tiny").updated({"max_frames": 12})
    folder = save_model(scratch / "untrained-tiny-model", SADM(config))
    return Engine.load(folder, device=device), False


def baseline_frames(frames: list[np.ndarray], roles: list[str]) -> dict[str, dict[int, np.ndarray]]:
    """What trivial answers give on the same frames: {baseline: {index: frame}}, made once for the
    scores and the montage (registration costs seconds per observed pair)."""
    stack = np.stack(frames)
    return {name: baseline(stack, roles, list(range(len(frames)))) for name, baseline in BASELINES.items()}


def run_demo(
    out: Path,
    model: str = "cardiac-demo",
    sampler: str = DEFAULT_SAMPLER,
    steps: int | None = None,
    guidance: float | None = None,
    seed: int = 0,
    device: str = "auto",
    samples: int = 1,
    native: str | None = None,
    sampler_options: Mapping[str, float] | None = None,
) -> dict:
    """Generate, score and write everything into `out` at once (replacing an earlier demo whole).
    steps None: the sampler's default (sadm.diffusion.catalogue; the default sampler chosen by `sadm bench`)."""
    sampling = SamplingOptions(
        sampler=sampler,
        steps=steps,
        guidance=guidance,
        seed=seed,
        samples=samples,
        native=native,
        sampler_options=sampler_options or {},
    )  # refuse bad options first
    out = Path(out)
    with atomic_folder(out) as staging:
        summary = _run(staging, out, model, sampling, device)
    print(f"wrote {out}/: {', '.join(summary['files'])}")
    return summary


def _run(
    staging: Path,
    out: Path,
    model: str,
    sampling: SamplingOptions,
    device: str,
) -> dict:
    engine, trained = load_demo_engine(model, device, staging)
    if not trained:
        print(
            "NOTE: the bundled model 'cardiac-demo' is not in this checkout yet; running an UNTRAINED tiny "
            "model, so the generated frames are noise. The pipeline, files and timings are real."
        )
    frames, geometry = held_out_cardiac_sequence(engine.config.max_frames)
    roles = demo_roles(len(frames))
    inputs = [f if r == "observed" else None for f, r in zip(frames, roles)]
    request = build_request(roles, len(frames), sampling=sampling)
    samples = sampling.samples
    generated = request.targets
    total = len(generated) * (request.sampling.steps if engine.model.is_diffusion else 1)
    print(f"model: {engine.source} on {engine.describe_device()}")
    print(
        "roles: "
        + " ".join(r[0].upper() for r in roles)
        + "  (O observed, M missing, F future)"
        + (f"; {samples} samples" if samples > 1 else "")
    )
    started = time.perf_counter()
    with tqdm(total=total, desc="generating", unit="step") as bar:
        generation = engine.generate(
            inputs,
            request,
            progress=lambda done, total, frame: _advance(bar, done, total, frame),
            cancel=threading.Event(),
        )
        mean, spread = generation.mean, generation.std or {}
    seconds = time.perf_counter() - started

    files = []
    for index in generated:
        files.append(write_volume(staging / f"generated_t{index:02d}.nrrd", mean[index], geometry).name)
        if spread:
            files.append(write_volume(staging / f"generated_t{index:02d}_std.nrrd", spread[index], geometry).name)
    completed = [mean.get(i, f) for i, f in enumerate(frames)]
    files.append(write_sequence(staging / "completed.seq.nrrd", completed, geometry).name)

    grid = tuple(engine.config.grid)
    on_grid = [resample_to_shape(f, grid) for f in frames]
    native_guesses = baseline_frames(frames, roles)
    native_scores = _scored(frames, {i: mean[i] for i in generated}, roles, native_guesses)
    model_grid = _scored(on_grid, generation.mean_on_model_grid, roles)
    through_grid = {i: score(frames[i], resample_to_shape(on_grid[i], frames[i].shape)) for i in generated}
    summary = {
        "model": engine.source,
        "trained_model": trained,
        "sampler": sampling.sampler,
        "steps": sampling.steps,
        "sampler_settings": sampling.sampler_settings,
        "seed": sampling.seed,
        "samples": samples,
        "native": generation.request.sampling.native,
        "registered_frames": sorted(generation.registered),
        "device": engine.describe_device(),
        "seconds": round(seconds, 2),
        "roles": roles,
        "native_shape": list(frames[0].shape),
        **native_scores,
        "truth_through_model_grid_mean": _mean_of(through_grid),
        "model_grid": {"shape": list(grid), **model_grid},
    }
    for i in generated:
        summary["frames"][str(i)]["truth_through_model_grid"] = through_grid[i]
        if spread:
            summary["frames"][str(i)]["std_mean"] = float(spread[i].mean())
    summary["std_calibrated"] = bool(spread) and generation.calibrated
    files.append(_save_montage(staging, frames, mean, spread, roles, generated, native_guesses, generation.calibrated))
    files.append("metrics.json")
    summary["files"] = files
    (staging / "metrics.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"generated {len(generated)} frames in {seconds:.1f} s")
    if generation.registered:
        print(
            f"  frames {', '.join(str(i) for i in sorted(generation.registered))}: registration of the observed frames "
            f"around them (this model's `{summary['native']}` path: where two observed frames give the motion the model "
            "adds nothing yet); `--native warp` shows the model's own motion"
        )
    print(f"  on the native {_shape(frames[0].shape)} grid (what you see): {_versus_baselines(native_scores)}")
    ceiling = summary["truth_through_model_grid_mean"]
    print(
        f"  on the model's {_shape(grid)} grid: {_versus_baselines(model_grid)}; the truth itself, resampled "
        f"to the model grid and back, scores {ceiling['ssim']:.3f} / {ceiling['psnr']:.2f} dB natively "
        "(the model grid's resolution limit)"
    )
    return summary


def _advance(bar: tqdm, done: int, total: int, frame: int) -> None:
    """The engine knows the true step count (registered frames are one step each): follow it."""
    bar.total = total
    bar.update(done - bar.n)
    bar.set_postfix(frame=frame)


def _scored(
    truth: list[np.ndarray], predicted: dict[int, np.ndarray], roles: list[str], guesses: dict | None = None
) -> dict:
    """The predictions' and the baselines' scores against `truth`, per frame and their means;
    `guesses`: the baselines' frames on this grid when already made (`baseline_frames`)."""

    def scored(frames: dict[int, np.ndarray]) -> dict[int, dict]:
        return {i: score(truth[i], frames[i], truth[reference_index(roles, i)]) for i in predicted}

    scores = scored(predicted)
    guesses = guesses if guesses is not None else baseline_frames(truth, roles)
    baselines = {name: scored(frames) for name, frames in guesses.items()}
    return {
        "mean": _mean_of(scores),
        "baselines_mean": {name: _mean_of(values) for name, values in baselines.items()},
        "frames": {
            str(i): {"role": roles[i], **scores[i], **{name: values[i] for name, values in baselines.items()}}
            for i in predicted
        },
    }


def _versus_baselines(scored: dict) -> str:
    mean, baselines = scored["mean"], scored["baselines_mean"]
    return (
        f"SSIM {mean['ssim']:.3f}, PSNR {mean['psnr']:.2f} dB, change r {mean['change']:.2f} ("
        + ", ".join(
            f"{name} {values['ssim']:.3f} / {values['psnr']:.2f} dB / {values['change']:.2f}"
            for name, values in baselines.items()
        )
        + ")"
    )


def _shape(shape) -> str:
    return "x".join(str(n) for n in shape)


def _mean_of(scores: dict[int, dict]) -> dict[str, float]:
    keys = [k for k in ("ssim", "psnr", "nrmse", "change") if all(k in m for m in scores.values())]
    return {k: float(np.mean([m[k] for m in scores.values()])) for k in keys}


def _save_montage(folder: Path, frames, mean, spread, roles, generated, guesses, calibrated: bool = False) -> str:
    """Native grid, one column per generated timepoint. Rows: ground truth / SADM / copy-last /
    registration (the model-free floor; `guesses` from `baseline_frames`) / |SADM − truth| / true
    change and SADM's change from the last observed frame (blue less, red more) (/ 2σ with samples > 1,
    on the |SADM − truth| row's scale: where the error lies within it, the map told the truth)."""
    copies, registered = guesses["copy-last"], guesses["registration"]
    truth_row = [mid_slices(frames[i]) for i in generated]
    generated_row = [mid_slices(mean[i]) for i in generated]
    copy_row = [mid_slices(copies[i]) for i in generated]
    registered_row = [mid_slices(registered[i]) for i in generated]
    reference_row = [mid_slices(frames[reference_index(roles, i)]) for i in generated]
    difference_row = [np.abs(a - b) for a, b in zip(truth_row, generated_row)]
    true_change = [a - r for a, r in zip(truth_row, reference_row)]
    generated_change = [a - r for a, r in zip(generated_row, reference_row)]
    low, high = float(min(f.min() for f in frames)), float(max(f.max() for f in frames))
    span = (high - low) / 2
    rows = [truth_row, generated_row, copy_row, registered_row, difference_row, true_change, generated_change]
    labels = ["ground truth", "SADM", "copy-last", "registration", "|SADM - truth|", "true change", "SADM change"]
    ranges = [(low, high)] * 4 + [(0.0, span), (-span, span), (-span, span)]
    colormaps = ["gray"] * 4 + ["hot", "diverging", "diverging"]
    if spread:
        rows.append([2.0 * mid_slices(spread[i]) for i in generated])
        labels.append("2 sigma (calibrated)" if calibrated else "2 x std of draws")
        ranges.append((0.0, span))
        colormaps.append("hot")
    save_montage(
        folder / "montage.png",
        rows,
        row_labels=labels,
        column_labels=[f"t{i} {roles[i][0].upper()}" for i in generated],
        value_range=ranges,
        colormaps=colormaps,
        scale=2.0,
    )
    return "montage.png"
