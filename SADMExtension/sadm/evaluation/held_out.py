"""Held-out sequences for evaluation, benchmarks and the demo, on their native grid: test data
normalised as the model's training data (frames kept as acquired, never blended in time unless asked),
and synthetic cardiac phantoms from a seed never used in training, each phase rendered directly."""

from __future__ import annotations

import numpy as np

from sadm.data.preprocess import PreprocessParams, preprocess_sequence
from sadm.evaluation.blood_pool import acdc_blood_pool_rule
from sadm.evaluation.runner import HeldOutSequence
from sadm.io.readers import discover_sequences
from sadm.io.sequence import Geometry
from sadm.phantoms.cardiac import CardiacPhantom, cardiac_subject, systole_contractions

HELD_OUT_SEED = 1000
"""Test subjects: training data use seed 0, so these were never seen in training; scored once per
published model."""
VALIDATION_SEED = 2000
"""Validation subjects, also never trained on: every design choice, default and checkpoint is made on
these, so that the test subjects' scores are not chosen ones."""
SPLIT_SEEDS = {"test": HELD_OUT_SEED, "validation": VALIDATION_SEED}


def held_out_cardiac_phantom(frames: int, subject: int = 0, seed: int = HELD_OUT_SEED) -> CardiacPhantom:
    """ED→ES of an unseen phantom subject at `frames` phases evenly spaced in time, each rendered
    directly (no frame is a blend of two others, so interpolation is no oracle)."""
    return cardiac_subject(seed, subject, contractions=systole_contractions(frames))


def held_out_cardiac_sequence(
    frames: int, subject: int = 0, seed: int = HELD_OUT_SEED
) -> tuple[list[np.ndarray], Geometry]:
    """The frames (float32) and geometry of `held_out_cardiac_phantom`."""
    phantom = held_out_cardiac_phantom(frames, subject, seed)
    volumes = [np.ascontiguousarray(f, dtype=np.float32) for f in phantom.frames]
    return volumes, Geometry(phantom.spacing, phantom.origin, phantom.direction)


def synthetic_held_out(engine, count: int, split: str = "validation") -> list[HeldOutSequence]:
    """Cardiac phantoms never used in training, of the `split` ("validation" or "test"), min–max
    normalised."""
    sequences = []
    for subject in range(count):
        frames, _ = held_out_cardiac_sequence(engine.config.max_frames, subject, SPLIT_SEEDS[split])
        stack = np.stack(frames).astype(np.float32)
        stack = (stack - stack.min()) / max(float(stack.max() - stack.min()), 1e-12)
        times = tuple(float(i) for i in range(len(stack)))
        sequences.append(HeldOutSequence(f"{split}-{subject}", stack, times))
    return sequences


def held_out_params(config, frames: int | None = None, grid: tuple[int, ...] | None = None) -> PreprocessParams:
    """How held-out data are prepared for a model: its training normalisation (clip percentiles), on
    `grid` (default: the model grid), resampled in time to `frames` only when asked."""
    clip = config.normalization.get("clip_percentiles")
    return PreprocessParams(
        grid=tuple(grid or config.grid), num_frames=frames, clip_percentiles=None if clip is None else tuple(clip)
    )


def load_held_out(data: str, engine, frames: int | None, limit: int | None) -> list[HeldOutSequence]:
    """Test sequences on their native grid, normalised as the model's training data. Frames stay as
    acquired — the first max_frames of them — unless `frames` asks for resampling in time (which
    blends neighbours, making linear interpolation look like an oracle)."""
    config = engine.config
    sequences = []
    for source in discover_sequences(data)[:limit]:
        sequence = source.read()
        params = held_out_params(config, frames, grid=np.asarray(sequence.frames[0]).shape)
        prepared = preprocess_sequence(sequence, params)
        length = min(len(prepared.frames), config.max_frames)
        times = tuple(float(t) for t in prepared.times[:length])
        rule = None
        if sequence.metadata.get("reader") == "acdc" and frames is None:  # frame 0 is ED, as acquired
            rule = acdc_blood_pool_rule(source.paths[0], prepared.frames[0], int(sequence.metadata["ed"]))
        sequences.append(HeldOutSequence(prepared.subject, prepared.frames[:length], times, rule))
    return sequences
