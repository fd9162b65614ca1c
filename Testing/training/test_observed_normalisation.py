"""Issue 18 audit: training and generation normalise a sequence by the same statistics. Generation
can only see the observed frames, so it takes their min–max window (`Engine.generate`); the cache
keeps the paper's window over all frames, and each training example is renormalised to its own
observed frames' window from the per-frame ranges the cache records."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sadm.config import TrainConfig
from sadm.data.normalize import IntensityRange, frame_ranges, renormalize_to_observed
from sadm.data.preprocess import PreprocessParams, preprocess_sequence
from sadm.data.resample import resample_to_shape
from sadm.io.sequence import Geometry, LongitudinalSequence
from sadm.training.batches import make_batch

GEOMETRY = Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))


def brightening_sequence(length: int = 5, shape: tuple[int, int, int] = (6, 8, 8)) -> LongitudinalSequence:
    """Frames whose intensity range grows with the index: the last frame is the brightest, so a
    window over all frames differs from the window over any set of observed frames without it."""
    rng = np.random.default_rng(0)
    frames = [(100.0 + 40.0 * k) * rng.random(shape).astype(np.float32) + 10.0 * k for k in range(length)]
    return LongitudinalSequence(frames, [GEOMETRY] * length, [f"frame{k}" for k in range(length)], "s")


def test_frame_ranges_are_each_frames_own_window_in_the_sequences_units():
    sequence = brightening_sequence()
    window = IntensityRange.of_frames(sequence.frames)
    ranges = frame_ranges(sequence.frames, window)
    for k, frame in enumerate(sequence.frames):
        expected = ((frame.min() - window.low) / window.scale, (frame.max() - window.low) / window.scale)
        assert ranges[k] == pytest.approx(expected, abs=1e-6)
    assert ranges[0, 0] == pytest.approx(0.0) and ranges[-1, 1] == pytest.approx(1.0)


@pytest.mark.parametrize("observed", [[0], [0, 1], [0, 2, 3]])
def test_renormalised_cache_frames_are_what_generation_gives_the_model(observed):
    """Exactly the engine's normalisation (observed frames' min–max, native grid, then the model
    grid) of every observed frame, from the all-frames cache: the map is affine, the resampling linear."""
    sequence = brightening_sequence()
    grid = (3, 4, 4)
    prepared = preprocess_sequence(sequence, PreprocessParams(grid=grid))
    renormalised = renormalize_to_observed(
        torch.from_numpy(prepared.frames), torch.from_numpy(prepared.frame_ranges), observed
    )
    engine_window = IntensityRange.of_frames([sequence.frames[k] for k in observed])
    for k in observed:
        engine_frame = np.clip(resample_to_shape(engine_window.normalize(sequence.frames[k]), grid), 0.0, 1.0)
        np.testing.assert_allclose(renormalised[k].numpy(), engine_frame, atol=1e-5)
    # Without the renormalisation the cached frames are off by the window's ratio (> 10 % here).
    k = observed[-1]
    engine_frame = np.clip(resample_to_shape(engine_window.normalize(sequence.frames[k]), grid), 0.0, 1.0)
    assert np.abs(prepared.frames[k] - engine_frame).max() > 0.1


def test_time_resampling_blends_the_ranges_as_it_blends_the_frames():
    sequence = brightening_sequence(length=3)
    prepared = preprocess_sequence(sequence, PreprocessParams(grid=(3, 4, 4), num_frames=5))
    window = IntensityRange.of_frames(sequence.frames)
    native = frame_ranges(sequence.frames, window)
    assert prepared.frame_ranges.shape == (5, 2)
    np.testing.assert_allclose(prepared.frame_ranges[1], 0.5 * (native[0] + native[1]), atol=1e-6)
    np.testing.assert_allclose(prepared.frame_ranges[[0, 2, 4]], native, atol=1e-6)


def test_every_training_example_lies_in_its_observed_frames_window():
    """On the native grid (no resampling) each example's observed context frames span exactly [0, 1];
    with the cache's all-frames window they do not whenever the brightest frame is a target."""
    sequence = brightening_sequence(length=6, shape=(2, 3, 3))
    prepared = preprocess_sequence(sequence, PreprocessParams(grid=(2, 3, 3)))
    batch_size = 48
    frames = torch.from_numpy(prepared.frames)[None].expand(batch_size, -1, -1, -1, -1).clone()
    ranges = torch.from_numpy(prepared.frame_ranges)[None].expand(batch_size, -1, -1).clone()
    untouched = frames.clone()

    def spans(batch: dict) -> list[tuple[float, float]]:
        result = []
        for b in range(batch_size):
            observed = [s for s in range(batch["context"].shape[1]) if batch["context"][b, s].abs().sum() > 0]
            values = batch["context"][b, observed]
            result.append((float(values.min()), float(values.max())))
        return result

    options = dict(context="bidirectional", missing_rate=0.5)
    renormalised = make_batch(frames, generator=torch.Generator().manual_seed(3), frame_ranges=ranges, **options)
    for low, high in spans(renormalised):
        assert low == pytest.approx(0.0, abs=1e-6) and high == pytest.approx(1.0, abs=1e-6)
    assert float(renormalised["target"].max()) <= 1.0 and float(renormalised["target"].min()) >= -1.0
    assert torch.equal(frames, untouched)  # the caller's batch is not modified

    plain = make_batch(frames, generator=torch.Generator().manual_seed(3), **options)
    assert any(high < 0.99 for _, high in spans(plain))  # the paper's window: not what generation gives


def test_new_runs_normalise_by_the_observed_frames_and_the_old_recipe_stays_reproducible():
    assert TrainConfig().normalize_by_observed is True
    assert TrainConfig.from_dict({"normalize_by_observed": False}).normalize_by_observed is False
