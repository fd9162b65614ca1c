"""Metrics against hand-computed values; each setting's roles; each baseline where its answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from sadm.evaluation import copy_last, linear, setting_runs
from sadm.evaluation.metrics import change_correlation, nrmse, psnr, score, ssim


def test_psnr_of_a_uniform_error_follows_from_the_mse():
    truth = np.zeros((8, 8, 8))
    truth[:4] = 1.0  # data_range 1
    generated = truth + 0.1  # MSE 0.01
    assert psnr(truth, generated) == pytest.approx(20.0)


def test_nrmse_is_the_error_norm_over_the_truth_norm():
    truth = np.full((4, 4, 4), 2.0)
    generated = truth.copy()
    generated[0, 0, 0] = 6.0  # one voxel off by 4
    assert nrmse(truth, generated) == pytest.approx(4.0 / np.sqrt(64 * 4.0))


def test_ssim_is_one_for_the_truth_and_the_luminance_term_for_a_constant_offset():
    rng = np.random.default_rng(0)
    truth = rng.random((9, 9, 9))
    assert ssim(truth, truth) == pytest.approx(1.0)
    constant = np.full((9, 9, 9), 0.5)  # no contrast: SSIM is the luminance term, data_range falls back to 1
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * 0.5 * 0.6 + c1) / (0.5**2 + 0.6**2 + c1)
    assert ssim(constant, constant + 0.1) == pytest.approx(expected, rel=1e-6)


def test_single_gives_only_the_first_frame():
    assert setting_runs("single", 4) == [["observed", "future", "future", "future"]]


def test_full_predicts_every_frame_from_all_true_frames_before_it():
    assert setting_runs("full", 4) == [
        ["observed", "future"],
        ["observed", "observed", "future"],
        ["observed", "observed", "observed", "future"],
    ]


def test_missing_draws_are_reproducible_and_always_leave_something_to_impute():
    for seed in range(50):
        (roles,) = setting_runs("missing", 6, seed)
        assert roles == setting_runs("missing", 6, seed)[0]
        assert roles[0] == "observed" and "missing" in roles and "future" not in roles
    draws = {tuple(setting_runs("missing", 6, seed)[0]) for seed in range(50)}
    assert len(draws) > 5


def test_unknown_settings_and_one_frame_sequences_are_refused():
    with pytest.raises(ValueError, match="unknown setting 'some'"):
        setting_runs("some", 4)
    with pytest.raises(ValueError, match="at least 2"):
        setting_runs("full", 1)


def ramp_sequence(length: int = 5) -> tuple[np.ndarray, list[float]]:
    """Voxels changing linearly in (irregular) time, some up and some down."""
    times = [0.0, 1.0, 3.0, 4.0, 6.0][:length]
    start = np.array([0.0, 1.0, 0.2, 0.8]).reshape(1, 1, 4)
    slope = np.array([0.1, -0.1, 0.05, -0.05]).reshape(1, 1, 4)
    return np.stack([start + slope * t for t in times]).astype(np.float64), times


def test_copy_last_repeats_the_last_observed_frame():
    frames, times = ramp_sequence()
    result = copy_last(frames, ["observed", "observed", "missing", "observed", "future"], times)
    assert sorted(result) == [2, 4]
    np.testing.assert_array_equal(result[2], frames[1])
    np.testing.assert_array_equal(result[4], frames[3])


def test_linear_recovers_a_linear_sequence_by_interpolation_and_extrapolation():
    frames, times = ramp_sequence()
    result = linear(frames, ["observed", "missing", "observed", "observed", "future"], times)
    np.testing.assert_allclose(result[1], frames[1])  # between frames 0 and 2 in time
    np.testing.assert_allclose(result[4], frames[4])  # beyond frames 2 and 3


def test_linear_with_one_observed_frame_copies_it_and_extrapolation_stays_in_the_observed_range():
    frames, times = ramp_sequence()
    result = linear(frames, ["observed", "future", "future", "future", "future"], times)
    assert all(np.array_equal(result[i], frames[0]) for i in range(1, 5))
    steep = np.stack([np.zeros((2, 2, 2)), np.full((2, 2, 2), 0.5), np.zeros((2, 2, 2))])
    extrapolated = linear(steep, ["observed", "observed", "future"], [0.0, 1.0, 2.0])[2]
    np.testing.assert_array_equal(extrapolated, np.full((2, 2, 2), 0.5))  # 1.0 clipped to the observed max


def test_baselines_do_not_touch_their_inputs():
    frames, times = ramp_sequence()
    before = frames.copy()
    result = linear(frames, ["observed", "missing", "observed", "observed", "future"], times)
    result[1][...] = -7
    copy_last(frames, ["observed", "future", "future", "future", "future"], times)[1][...] = -7
    np.testing.assert_array_equal(frames, before)


def test_change_correlation_against_hand_computed_values():
    """r of (generated − reference) with (truth − reference): by hand on four voxels."""
    reference = np.zeros((1, 1, 4))
    truth = np.array([0.0, 1.0, 2.0, 3.0]).reshape(1, 1, 4)  # true change 0, 1, 2, 3
    assert change_correlation(truth, truth, reference) == pytest.approx(1.0)
    assert change_correlation(truth, 2 * truth + 5, reference) == pytest.approx(1.0)  # r ignores scale and offset
    assert change_correlation(truth, -truth, reference) == pytest.approx(-1.0)
    generated = np.array([1.0, 0.0, 3.0, 2.0]).reshape(1, 1, 4)
    # centred: true (-1.5, -0.5, 0.5, 1.5), predicted (-0.5, -1.5, 1.5, 0.5): 0.75+0.75+0.75+0.75 = 3 over 5
    assert change_correlation(truth, generated, reference) == pytest.approx(0.6)
    assert change_correlation(truth, reference.copy(), reference) == 0.0  # copy-last predicts no change
    assert change_correlation(reference.copy(), truth, reference) == 0.0  # nothing changed: nothing to match


def test_score_adds_the_change_only_when_it_knows_the_reference():
    truth = np.linspace(0, 1, 512).reshape(8, 8, 8)
    assert set(score(truth, truth)) == {"ssim", "psnr", "nrmse"}
    assert score(truth, truth, np.zeros_like(truth))["change"] == pytest.approx(1.0)
