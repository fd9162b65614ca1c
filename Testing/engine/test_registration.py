"""The registration baseline: observed frames registered to each other, the motion scaled in time."""

from __future__ import annotations

import numpy as np
import pytest

from sadm.data.resample import resample_to_shape
from sadm.evaluation.baselines import BASELINES, copy_last, registration
from sadm.generation.native import drawn_fraction
from sadm.generation.registration import PairFields, Span, register, registered_frames, span_of, warp_by

SHAPE = (8, 64, 64)


def blob(centre_i: float, shape=SHAPE) -> np.ndarray:
    """A smooth bright ellipsoid centred at column `centre_i` (sub-voxel positions allowed)."""
    k, j, i = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
    r2 = ((k - shape[0] / 2) / 2.5) ** 2 + ((j - shape[1] / 2) / 10) ** 2 + ((i - centre_i) / 10) ** 2
    return (0.1 + 0.8 / (1 + np.exp((np.sqrt(r2) - 1) * 6))).astype(np.float32)


def centre_i(volume: np.ndarray) -> float:
    """The intensity-weighted column of what stands above the background."""
    weights = np.clip(volume - 0.1, 0.0, None).sum(axis=(0, 1))
    return float(np.sum(weights * np.arange(volume.shape[2])) / np.sum(weights))


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b) ** 2)))


def test_span_brackets_the_target_or_continues_the_last_two():
    roles = ["observed", "missing", "missing", "observed", "future", "future"]
    assert span_of(roles, 1) == Span(0, 3, pytest.approx(1 / 3))
    assert span_of(roles, 5) == Span(0, 3, pytest.approx(5 / 3))
    assert span_of(roles, 1, [0.0, 2.0, 3.0, 4.0, 5.0, 6.0]).fraction == pytest.approx(0.5)  # times, not indices
    assert span_of(["observed", "future", "future"], 2) is None  # one observed frame: copy-last


def test_registration_finds_a_known_shift():
    moving, fixed = blob(28.0), blob(34.0)
    u = register(fixed, moving)
    inside = fixed > 0.5
    assert np.median(u[..., 0][inside]) == pytest.approx(-6.0, abs=0.6)  # moving(x - 6) = fixed(x) along i
    assert np.abs(u[..., 1:][inside]).max() < 1.0
    assert rmse(warp_by(moving, u), fixed) < 0.25 * rmse(moving, fixed)


def test_a_known_displacement_is_interpolated_halfway():
    frames = [blob(28.0), None, blob(36.0)]
    roles = ["observed", "missing", "observed"]
    truth = blob(32.0)
    made = registered_frames(frames, roles)[1]
    assert centre_i(made) == pytest.approx(32.0, abs=0.5)
    linear = 0.5 * (frames[0] + frames[2])
    assert rmse(made, truth) < 0.5 * rmse(linear, truth)  # a moved blob, not two half-bright ones


def test_the_same_motion_moves_other_frames_without_registering_again():
    noisy = {0: blob(28.0), 2: blob(36.0)}
    rng = np.random.default_rng(0)
    for volume in noisy.values():
        volume += rng.normal(0.0, 0.02, volume.shape).astype(np.float32)
    pairs = PairFields(noisy)
    span = span_of(["observed", "missing", "observed"], 1)
    made = pairs.frame_at(span)
    fields = dict(pairs._fields)
    shifted = pairs.applied_to({index: volume + 1.0 for index, volume in noisy.items()})
    np.testing.assert_allclose(shifted.frame_at(span), made + 1.0, atol=1e-5)  # warping is linear, the fields shared
    assert shifted._fields.keys() == fields.keys() and all(shifted._fields[k] is fields[k] for k in fields)
    with pytest.raises(ValueError, match="registered positions"):
        pairs.applied_to({0: noisy[0]})


def test_one_observed_frame_gives_copy_last():
    frames = np.stack([blob(30.0), blob(33.0), blob(36.0)])
    roles = ["observed", "future", "future"]
    made = registration(frames, roles, [0.0, 1.0, 2.0])
    expected = copy_last(frames, roles, [0.0, 1.0, 2.0])
    assert made.keys() == {1, 2}
    for index in made:
        np.testing.assert_array_equal(made[index], expected[index])


def test_a_future_frame_continues_a_constant_motion():
    frames = [blob(26.0), blob(30.0), None, None]
    roles = ["observed", "observed", "future", "future"]
    made = registered_frames(frames, roles)
    assert centre_i(made[2]) == pytest.approx(34.0, abs=0.6)
    assert centre_i(made[3]) == pytest.approx(38.0, abs=1.0)
    assert rmse(made[2], blob(34.0)) < 0.5 * rmse(frames[1], blob(34.0))  # beats copy-last


def test_a_fraction_other_than_the_span_s_moves_the_frame_that_far():
    pairs = PairFields({0: blob(28.0), 1: blob(36.0)})
    span = Span(0, 1, 0.5)
    assert centre_i(pairs.frame_at(span, 0.25)) == pytest.approx(30.0, abs=0.5)
    assert centre_i(pairs.frame_at(span, 0.0)) == pytest.approx(28.0, abs=0.1)
    assert len(pairs._fields) == 2  # each direction registered once, reused for every fraction


def test_registration_is_a_baseline_of_every_front_end():
    assert BASELINES["registration"] is registration


def test_the_model_s_drawn_fraction_replaces_the_linear_one():
    """Draws at the span's ends and at the target (model grid): the target drawn a quarter of the way
    (not halfway, as its time says) puts the native frame a quarter of the way; after the span, a
    draw that moves on half as far as the span continues half as far."""
    grid = (4, 16, 16)

    def drawn(centre: float) -> np.ndarray:
        return resample_to_shape(blob(centre), grid)

    between = drawn_fraction(0.5, drawn(28.0), drawn(36.0), drawn(30.0), SHAPE)
    assert between == pytest.approx(0.25, abs=0.08)
    after = drawn_fraction(2.0, drawn(28.0), drawn(32.0), drawn(34.0), SHAPE)
    assert after == pytest.approx(1.5, abs=0.1)
    assert drawn_fraction(0.5, drawn(28.0), drawn(28.0), drawn(30.0), SHAPE) == 0.5  # no motion to measure

    pairs = PairFields({0: blob(28.0), 2: blob(36.0)})
    made = pairs.frame_at(Span(0, 2, 0.5), between)
    assert centre_i(made) == pytest.approx(30.0, abs=0.7)
