"""`sadm demo`: a held-out synthetic cardiac sequence, some frames missing and the last ones in
the future, generated with the bundled model and written out for a person to look at."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sadm.checkpoint import save_model
from sadm.config import preset
from sadm.data.preprocess import resample_in_time
from sadm.data.sequence import Geometry
from sadm.data.synthetic import cardiac_subject
from sadm.data.writers import write_sequence, write_volume
from sadm.errors import CheckpointError
from sadm.generate import Engine
from sadm.metrics import score
from sadm.model import SADM
from sadm.montage import mid_slices, save_montage
from sadm.registry import available_models

HELD_OUT_SEED = 1000  # training data use seed 0: these subjects were never seen in training


def demo_roles(length: int) -> list[str]:
    """Frame 0 and every third frame observed, the others missing, the last quarter future."""
    future_from = length - max(1, length // 4)
    return [
        "future" if i >= future_from else ("observed" if i % 3 == 0 else "missing") for i in range(length)
    ]


def held_out_cardiac_sequence(frames: int, subject: int = 0) -> tuple[list[np.ndarray], Geometry]:
    """ED→ES of an unseen phantom subject, resampled in time to `frames` frames (as in training)."""
    phantom = cardiac_subject(HELD_OUT_SEED, subject)
    cycle = phantom.frames[: phantom.es_index + 1].astype(np.float32)
    resampled, _ = resample_in_time(cycle, np.arange(len(cycle), dtype=np.float32), frames)
    return [np.ascontiguousarray(f) for f in resampled], Geometry(phantom.spacing, phantom.origin, phantom.direction)


def load_demo_engine(model: str, device: str, out: Path) -> tuple[Engine, bool]:
    """The bundled model, or — in a checkout that has none yet — an untrained tiny model (said loudly)."""
    try:
        return Engine.load(model, device=device), True
    except CheckpointError:
        if model != "cardiac-demo" or "cardiac-demo" in available_models():
            raise
    config = preset("tiny")
    config.max_frames = 12
    folder = save_model(out / "untrained-tiny-model", SADM(config))
    return Engine.load(folder, device=device), False


def run_demo(
    out: Path,
    model: str = "cardiac-demo",
    sampler: str = "ddim",
    steps: int = 20,
    guidance: float | None = None,
    seed: int = 0,
    device: str = "auto",
) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    engine, trained = load_demo_engine(model, device, out)
    if not trained:
        print(
            "NOTE: the bundled model 'cardiac-demo' is not in this checkout yet; running an UNTRAINED tiny "
            "model, so the generated frames are noise. The pipeline, files and timings are real."
        )
    frames, geometry = held_out_cardiac_sequence(engine.config.max_frames)
    roles = demo_roles(len(frames))
    inputs = [f if r == "observed" else None for f, r in zip(frames, roles)]
    total = sum(r != "observed" for r in roles) * steps
    print(f"model: {engine.source} on {engine.describe_device()}")
    print("roles: " + " ".join(r[0].upper() for r in roles) + "  (O observed, M missing, F future)")
    started = time.perf_counter()
    with tqdm(total=total, desc="generating", unit="step") as bar:
        result = engine.generate(
            inputs, roles, sampler=sampler, steps=steps, guidance=guidance, seed=seed,
            progress=lambda done, _total, frame: (bar.update(done - bar.n), bar.set_postfix(frame=frame)),
            cancel=threading.Event(),
        )
    seconds = time.perf_counter() - started

    completed = [result.get(i, f) for i, f in enumerate(frames)]
    for index, volume in result.items():
        write_volume(out / f"generated_t{index:02d}.nrrd", volume, geometry)
    write_sequence(out / "completed.seq.nrrd", completed, geometry)

    metrics = {}
    for index, volume in result.items():
        previous = max(i for i in range(index) if roles[i] == "observed")
        metrics[index] = {"role": roles[index], **score(frames[index], volume),
                          "copy_last_observed": score(frames[index], frames[previous])}
    summary = {
        "model": engine.source, "trained_model": trained, "sampler": sampler, "steps": steps, "seed": seed,
        "device": engine.describe_device(), "seconds": round(seconds, 2), "roles": roles,
        "mean": {k: float(np.mean([m[k] for m in metrics.values()])) for k in ("ssim", "psnr", "nrmse")},
        "frames": {str(k): v for k, v in metrics.items()},
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))

    generated = sorted(result)
    truth_row = [mid_slices(frames[i]) for i in generated]
    generated_row = [mid_slices(result[i]) for i in generated]
    difference_row = [np.abs(a - b) for a, b in zip(truth_row, generated_row)]
    low, high = float(min(f.min() for f in frames)), float(max(f.max() for f in frames))
    save_montage(
        out / "montage.png", [truth_row, generated_row, difference_row],
        row_labels=["ground truth", "generated", "|difference|"],
        column_labels=[f"t{i} {roles[i][0].upper()}" for i in generated],
        value_range=[(low, high), (low, high), (0.0, (high - low) / 2)], colormaps=["gray", "gray", "hot"], scale=2.0,
    )
    print(f"generated {len(generated)} frames in {seconds:.1f} s; mean SSIM {summary['mean']['ssim']:.3f}, "
          f"PSNR {summary['mean']['psnr']:.2f} dB")
    print(f"wrote {out}/: generated_tXX.nrrd, completed.seq.nrrd, montage.png, metrics.json")
    return summary
