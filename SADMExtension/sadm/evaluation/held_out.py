"""Held-out sequences for evaluation, benchmarks and the demo: test data preprocessed exactly as a
model's training data, and synthetic cardiac phantoms from a seed never used in training."""

from __future__ import annotations

import numpy as np

from sadm.data.preprocess import PreprocessParams, preprocess_sequence, resample_in_time
from sadm.data.readers import discover_sequences
from sadm.data.sequence import Geometry
from sadm.data.synthetic import cardiac_subject
from sadm.evaluation.runner import HeldOutSequence

HELD_OUT_SEED = 1000  # training data use seed 0: these subjects were never seen in training


def held_out_cardiac_sequence(frames: int, subject: int = 0) -> tuple[list[np.ndarray], Geometry]:
    """ED→ES of an unseen phantom subject, resampled in time to `frames` frames (as in training)."""
    phantom = cardiac_subject(HELD_OUT_SEED, subject)
    cycle = phantom.frames[: phantom.es_index + 1].astype(np.float32)
    resampled, _ = resample_in_time(cycle, np.arange(len(cycle), dtype=np.float32), frames)
    return [np.ascontiguousarray(f) for f in resampled], Geometry(phantom.spacing, phantom.origin, phantom.direction)


def synthetic_held_out(engine, count: int) -> list[HeldOutSequence]:
    """The demo's held-out cardiac phantoms (seed never used in training), min–max normalised."""
    sequences = []
    for subject in range(count):
        frames, _ = held_out_cardiac_sequence(engine.config.max_frames, subject)
        stack = np.stack(frames).astype(np.float32)
        stack = (stack - stack.min()) / max(float(stack.max() - stack.min()), 1e-12)
        sequences.append(HeldOutSequence(f"held-out-{subject}", stack, tuple(float(i) for i in range(len(stack)))))
    return sequences


def held_out_params(config, frames: int | None = None):
    """The PreprocessParams of a model's training data (grid, frame count, normalisation), with
    `frames` overriding the frame count."""
    if frames is None:
        frames = (config.provenance.get("training") or {}).get("num_frames")
    clip = config.normalization.get("clip_percentiles")
    return PreprocessParams(
        grid=tuple(config.grid), num_frames=frames, clip_percentiles=None if clip is None else tuple(clip)
    )


def load_held_out(data: str, engine, frames: int | None, limit: int | None) -> list[HeldOutSequence]:
    """Test sequences preprocessed exactly as the model's training data (grid, frames, normalisation)."""
    config = engine.config
    params = held_out_params(config, frames)
    sources = discover_sequences(data)[:limit]
    sequences = []
    for source in sources:
        prepared = preprocess_sequence(source.read(), params)
        length = min(len(prepared.frames), config.max_frames)
        sequences.append(
            HeldOutSequence(
                prepared.subject, prepared.frames[:length], tuple(float(t) for t in prepared.times[:length])
            )
        )
    return sequences
