"""The Engine facade as the CLI and the Slicer module use it: native grids, roles, seeds, cancel."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch

from sadm import Engine, GenerationCancelled, InvalidFramesError, InvalidRolesError
from sadm.config import preset
from sadm.data.resample import resample_to_shape
from sadm.generation.native import anchors_of
from sadm.networks.sadm import SADM
from sadm.training.batches import make_batch
from sadm_testing import moving_blob_sequence, train_step

ROLES = ["observed", "missing", "observed", "future"]


@pytest.fixture
def engine(tiny_model):
    return Engine(tiny_model, torch.device("cpu"))


def native_frames(shape=(10, 20, 24), scale=250.0):
    return moving_blob_sequence(4, shape, scale)


def test_generates_missing_and_future_frames_on_the_native_grid_and_intensity_range(engine):
    frames = native_frames()
    frames[1] = frames[3] = None
    result = engine.generate(frames, ROLES, steps=4)
    assert sorted(result) == [1, 3]
    for volume in result.values():
        assert volume.shape == (10, 20, 24) and volume.dtype == np.float32
        low = min(f.min() for f in frames if f is not None)
        high = max(f.max() for f in frames if f is not None)
        assert low - 1e-3 <= volume.min() and volume.max() <= high + 1e-3


def test_same_seed_same_frames_other_seed_other_frames(engine):
    frames = native_frames()
    for sampler in ("ddim", "ancestral", "dpm++2m"):
        first = engine.generate(frames, ROLES, sampler=sampler, steps=5, seed=7)
        again = engine.generate(frames, ROLES, sampler=sampler, steps=5, seed=7)
        other = engine.generate(frames, ROLES, sampler=sampler, steps=5, seed=8)
        assert all(np.array_equal(first[i], again[i]) for i in first)
        # the draws differ (natively an untrained model's near-zero motion can give back the same anchors)
        assert not np.allclose(first.on_model_grid[1], other.on_model_grid[1])


def test_inputs_are_never_modified(engine):
    frames = native_frames()
    before = [f.copy() for f in frames]
    roles = list(ROLES)
    engine.generate(frames, roles, steps=3)
    assert roles == ROLES
    assert all(np.array_equal(a, b) for a, b in zip(frames, before))


def test_progress_counts_every_step_of_every_generated_frame(engine):
    seen = []
    engine.generate(
        native_frames(), ROLES, steps=4, progress=lambda done, total, frame: seen.append((done, total, frame))
    )
    assert seen == [(d, 8, 1) for d in range(1, 5)] + [(d, 8, 3) for d in range(5, 9)]


def test_cancel_between_denoising_steps_returns_nothing(engine):
    cancel = threading.Event()
    seen = []

    def progress(done, total, frame):
        seen.append(done)
        if done == 3:
            cancel.set()

    with pytest.raises(GenerationCancelled, match="step 4"):
        engine.generate(native_frames(), ROLES, steps=10, progress=progress, cancel=cancel)
    assert seen == [1, 2, 3]


def test_cancel_set_before_the_run_does_no_work(engine):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(GenerationCancelled):
        engine.generate(native_frames(), ROLES, steps=10, progress=lambda *a: pytest.fail("ran"), cancel=cancel)


def test_aθ_runs_once_per_generated_frame_not_per_step(engine, monkeypatch):
    calls = []
    original = engine.model.attention.forward
    monkeypatch.setattr(engine.model.attention, "forward", lambda *a: calls.append(1) or original(*a))
    engine.generate(native_frames(), ROLES, steps=6, native="resample")
    assert len(calls) == 2
    calls.clear()  # the warp path also conditions each target's anchor redraws, still once per frame
    engine.generate(native_frames(), ROLES, steps=6)
    expected = sum(1 + len(anchors_of(ROLES, i)) for i, role in enumerate(ROLES) if role != "observed")
    assert len(calls) == expected


def test_uncertainty_samples_are_drawn_in_one_batch_and_differ(engine):
    draws = engine.generate(native_frames(), ROLES, steps=3, samples=3, sampler="ancestral").draws
    assert draws[1].shape == (3, 10, 20, 24)
    assert draws[1].std(axis=0).mean() > 0


def test_draws_on_the_model_grid_are_what_the_papers_native_path_resamples(engine):
    """`sadm evaluate` and the demo's grid scores read these; with native="resample" the native frames
    are them resampled (the warp path is tested in test_native.py)."""
    frames = native_frames()
    options = dict(steps=3, samples=2, sampler="ancestral", seed=3, native="resample")
    on_grid = engine.generate(frames, ROLES, **options).on_model_grid
    native = engine.generate(frames, ROLES, **options).draws
    assert on_grid[1].shape == (2, *engine.config.grid)
    for index, volumes in on_grid.items():
        resampled = np.stack([resample_to_shape(v, (10, 20, 24)) for v in volumes])
        np.testing.assert_allclose(resampled, native[index], rtol=1e-5, atol=1e-3)
    assert on_grid[1].max() > 10  # observed frames' intensities (scale 250), not the model's [0, 1]


@pytest.mark.parametrize(
    "roles, message",
    [
        (["missing", "observed", "observed", "future"], "roles\\[0\\] must be 'observed'.*got 'missing'"),
        (["observed", "observed", "observed", "observed"], "no frame to generate"),
        (["observed", "future", "observed", "future"], "future frame\\(s\\) \\[1\\] come before frame 2"),
        (["observed", "missing", "unknown", "future"], "roles\\[2\\] is 'unknown'"),
        (["observed", "missing", "future"], "got 4 frames but 3 roles"),
        ([], "roles is empty"),
    ],
)
def test_bad_roles_are_refused_with_the_rule_they_break(engine, roles, message):
    with pytest.raises(InvalidRolesError, match=message):
        engine.generate(native_frames(), roles, steps=2)


def test_more_frames_than_the_model_supports_is_refused(engine):
    frames = moving_blob_sequence(7, (8, 16, 16))
    with pytest.raises(InvalidRolesError, match="7 frames but this model supports at most 6"):
        engine.generate(frames, ["observed"] * 6 + ["future"], steps=2)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda f: f.__setitem__(2, None), "frame 2 is marked 'observed' but is None"),
        (
            lambda f: f.__setitem__(2, np.ones((10, 20, 25), np.float32)),
            "frame 2 has shape \\(10, 20, 25\\) but frame 0 has",
        ),
        (lambda f: f[2].__setitem__((0, 0, 0), np.nan), "frame 2 holds 1 NaN/Inf voxels"),
        (lambda f: f[0].__setitem__((1, 1, 1), np.inf), "frame 0 holds 1 NaN/Inf voxels"),
        (lambda f: f.__setitem__(0, np.ones((20, 24), np.float32)), "frame 0 has 2 dimensions"),
        (lambda f: f.__setitem__(0, np.ones((2, 10, 20, 24), np.float32)), "frame 0 has 4 dimensions.*split a 4D"),
    ],
)
def test_bad_frames_are_refused_naming_the_frame(engine, corrupt, message):
    frames = native_frames()
    corrupt(frames)
    with pytest.raises(InvalidFramesError, match=message):
        engine.generate(frames, ROLES, steps=2)


def test_bad_sampler_settings_are_refused(engine):
    with pytest.raises(ValueError, match="sampler 'euler' is unknown"):
        engine.generate(native_frames(), ROLES, sampler="euler")
    with pytest.raises(ValueError, match="steps must be at least 1"):
        engine.generate(native_frames(), ROLES, steps=0)


HELD_OUT_TARGET = 0.06
"""Held-out loss / untrained loss at which the overfit fixture stops training. Measured on AMD EPYC over
init seeds 0–2 × ATEN_CPU_CAPABILITY (unset, default, avx2) × 1–2 threads (9 runs): reached after
250–275 steps, where the generated frames' error is 0.18–0.46 × copy-last (a fixed 200-step run gave
up to 0.64 ×, which is why it was fragile)."""


@pytest.fixture(scope="module")
def overfit_tiny_sadm():
    """Alg. 1 on one short sequence, trained until the held-out loss falls to HELD_OUT_TARGET of the
    untrained model's (checked every 25 steps, 600 at most): the model, its frames, and held-out loss
    before/after. Stopping on a criterion rather than a step count makes the model the tests see about
    equally good on every CPU, thread count and kernel choice."""
    torch.manual_seed(0)
    config = preset("tiny").updated({"max_frames": 4})
    model = SADM(config)
    frames = moving_blob_sequence(4, config.grid)
    sequence = torch.from_numpy(np.stack(frames))[None]
    sequence = (sequence - sequence.min()) / (sequence.max() - sequence.min())
    held_out = make_batch(sequence.expand(32, -1, -1, -1, -1), generator=torch.Generator().manual_seed(123))

    def held_out_loss():
        with torch.no_grad():
            return float(model.eval().loss(held_out, torch.Generator().manual_seed(123)))

    before = after = held_out_loss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    generator = torch.Generator().manual_seed(0)
    for step in range(1, 601):
        train_step(model, optimizer, sequence.expand(6, -1, -1, -1, -1), generator=generator)
        if step % 25 == 0 and step >= 200:
            after = held_out_loss()
            if after <= HELD_OUT_TARGET * before:
                break
    return model.eval(), frames, before, after


def mean_error_over_copying(draws: dict[int, np.ndarray], frames, index: int) -> float:
    """Mean absolute error of each draw of frame `index`, averaged over the draws, as a fraction of the
    copy-last baseline's error (frame index − 1 copied)."""
    generated = np.mean([np.abs(draw - frames[index]).mean() for draw in draws[index]])
    return float(generated / np.abs(frames[index - 1] - frames[index]).mean())


@pytest.mark.slow
def test_a_tiny_sadm_overfits_a_sequence_and_imputes_its_missing_frame_better_than_copying(overfit_tiny_sadm):
    """The held-out loss reaches its target within the step cap, then Alg. 2 imputes the missing frame
    and predicts the future one closer to the truth than the copy-last baseline: four draws' mean
    error below 0.7 × copy-last's (measured 0.18–0.46 × across kernels, seeds and threads; with the
    conditioning zeroed in Alg. 2 it scores 1.8 ×; a skipped last DDIM step is too small to see here
    and test_diffusion's oracle tests catch it)."""
    model, frames, before, after = overfit_tiny_sadm
    assert after <= HELD_OUT_TARGET * before, (before, after)
    # The model's own draws (frames on its grid: resampling is the identity). The warp path asks the
    # model for frame 0's position, which Alg. 1 never trains (frame 0 is always observed); `sadm
    # evaluate` scores that path on held-out data.
    engine = Engine(model, torch.device("cpu"))
    draws = engine.generate(frames, ROLES, steps=20, guidance=0.0, samples=4, native="resample").draws
    for index in (1, 3):
        ratio = mean_error_over_copying(draws, frames, index)
        assert ratio < 0.7, (index, ratio)


@pytest.mark.slow
def test_dpm_solver_in_20_steps_draws_what_the_250_step_ancestral_sampler_draws(overfit_tiny_sadm):
    """Four draws each on the same model. The per-voxel mean of DPM-Solver++(2M) at 20 steps is as
    close to the mean of the paper's 250-step ancestral sampler as a second ancestral run with other
    seeds is, within a factor 2.5 (measured 0.92–1.68: this reference noise floor is computed here, so it
    moves with the machine), and its draws spread as much (per-voxel std within a factor 1.6 of the
    ancestral draws'; measured 0.93–1.24)."""
    model, frames, _, _ = overfit_tiny_sadm
    engine = Engine(model, torch.device("cpu"))
    fast = engine.generate(frames, ROLES, sampler="dpm++2m", steps=20, samples=4, seed=1, native="resample").draws
    reference = engine.generate(
        frames, ROLES, sampler="ancestral", steps=250, samples=4, seed=2, native="resample"
    ).draws
    again = engine.generate(frames, ROLES, sampler="ancestral", steps=250, samples=4, seed=3, native="resample").draws
    for index in (1, 3):
        gap = np.abs(fast[index].mean(0) - reference[index].mean(0)).mean()
        floor = np.abs(again[index].mean(0) - reference[index].mean(0)).mean()
        assert gap < 2.5 * floor, (index, gap, floor)
        spread, reference_spread = fast[index].std(0).mean(), reference[index].std(0).mean()
        assert 1 / 1.6 < spread / reference_spread < 1.6, (index, spread, reference_spread)


def test_the_channels_last_fast_path_gives_the_plain_path_result(tiny_model):
    frames = native_frames()
    plain = Engine(copy.deepcopy(tiny_model), torch.device("cpu"), channels_last=False)
    fast = Engine(copy.deepcopy(tiny_model), torch.device("cpu"), channels_last=True)
    assert fast.model.channels_last and not plain.model.channels_last
    for sampler in ("dpm++2m", "ancestral"):
        a = plain.generate(frames, ROLES, sampler=sampler, steps=4, seed=3)
        b = fast.generate(frames, ROLES, sampler=sampler, steps=4, seed=3)
        for index in a:
            np.testing.assert_allclose(a[index], b[index], rtol=1e-4, atol=1e-3 * float(np.ptp(frames[0])))
