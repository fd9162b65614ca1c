"""The calibrated spread map (issue 28): its noise estimate, its fit on a toy case whose truth is drawn
from a known predictive distribution, its round trip through config.json and its use by the Engine."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from sadm import Engine
from sadm.config import ModelConfig
from sadm.errors import ConfigError
from sadm.evaluation.calibration import FitSet
from sadm.evaluation.coverage import changed_voxels, coverage_row, moved_voxels
from sadm.generation.registration import PairFields, span_of
from sadm.generation.uncertainty import (
    MOVED_CAP,
    PARTS,
    Z_95,
    BucketFit,
    Calibration,
    Features,
    NoiseProfile,
    bucket_of,
    features,
    in_plane_maximum,
    noise_sigma,
)
from sadm.networks.sadm import SADM
from sadm.storage.checkpoint import save_model
from sadm_testing import moving_blob_sequence


def smooth_volume(rng: np.random.Generator, shape=(16, 64, 64)) -> np.ndarray:
    """Anatomy-like: smooth blobs with sharp-ish edges, values in about [0.2, 1]."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), 4.0)
    return (0.2 + 0.8 * (field > 0) * 0.8 + 0.1 * field / field.std()).astype(np.float64)


@pytest.mark.parametrize("sigma", [0.01, 0.03, 0.1])
def test_the_noise_estimate_finds_a_known_noise_level_beside_edges_and_a_masked_background(sigma):
    rng = np.random.default_rng(0)
    clean = smooth_volume(rng)
    noisy = clean + sigma * rng.standard_normal(clean.shape)
    noisy[:, :, :8] = 0.0  # a skull-stripped background: exact zeros, not noise
    assert noise_sigma(noisy) == pytest.approx(sigma, rel=0.1)


def test_buckets_say_how_a_frame_is_made():
    roles = ["observed", "missing", "missing", "observed", "future", "future"]
    assert [bucket_of(roles, t) for t in (1, 2, 4, 5)] == ["between", "between", "beyond", "beyond"]
    single = ["observed"] + ["future"] * 8
    assert bucket_of(single, 1) == bucket_of(single, 8) == "one"


def toy_fit_set(
    noise_weight: float, motion: float, noise: float, rng: np.random.Generator, frames: int = 6
) -> tuple[FitSet, list]:
    """Frames whose truth is drawn from N(mean, α·noise²·2 + γ·|∇mean|²): the model's own assumption,
    with the noise estimate off by a factor α (as texture on a coarse grid makes it)."""
    fit, held = FitSet(max_voxels_per_frame=30000), []
    for _ in range(frames):
        mean = smooth_volume(rng, (8, 48, 48))
        parts = features(mean[None], noise * noise, ["observed", "future"], 1)
        truth = mean + np.sqrt(parts.variance(noise_weight, 1.0, motion)) * rng.standard_normal(mean.shape)
        fit.add("one-1", truth, mean, parts)
        held.append((truth, mean, parts))
    return fit, held


def test_on_a_toy_case_drawn_from_the_predicted_distribution_the_fit_finds_the_weights_and_nominal_coverage():
    fit, _ = toy_fit_set(noise_weight=2.25, motion=0.64, noise=0.02, rng=np.random.default_rng(1))
    calibration = fit.fit("register", 8, "toy")
    one = calibration.buckets["one-1"]
    assert one.noise == pytest.approx(2.25, rel=0.1)
    assert one.motion == pytest.approx(0.64, rel=0.15)
    assert one.draws == 1.0  # one draw: no spread to weigh
    assert one.scale == pytest.approx(1.0, abs=0.05)
    # fresh frames from the same distribution: every band holds its nominal share
    _, fresh = toy_fit_set(noise_weight=2.25, motion=0.64, noise=0.02, rng=np.random.default_rng(2), frames=3)
    for truth, mean, parts in fresh:
        sigma = calibration.sigma("one-1", parts)
        row = coverage_row(truth, mean, sigma, np.ones(truth.shape, bool))
        assert row["cover_50"] == pytest.approx(0.50, abs=0.02)
        assert row["cover_95"] == pytest.approx(0.95, abs=0.01)
        assert row["cover_2sigma_changed"] == pytest.approx(0.954, abs=0.01)


def test_a_map_ten_times_too_small_covers_far_less_and_the_fit_repairs_it():
    """What issue 28 found (the draws' std alone, a tenth of the error): the fitted weights make up for it."""
    _, held = toy_fit_set(noise_weight=1.0, motion=0.0, noise=0.05, rng=np.random.default_rng(3))
    shrunk = [(t, m, Features(p.noise / 100.0, p.draws, p.motion)) for t, m, p in held]
    truth, mean, parts = shrunk[0]
    assert coverage_row(truth, mean, np.sqrt(parts.variance()), np.ones(truth.shape, bool))["cover_95"] < 0.2
    refit = FitSet()
    for truth, mean, parts in shrunk[:4]:
        refit.add("between-2", truth, mean, parts)
    calibration = refit.fit("warp", 8, "toy")
    for truth, mean, parts in shrunk[4:]:
        sigma = calibration.sigma("between-2", parts)
        assert coverage_row(truth, mean, sigma, np.ones(truth.shape, bool))["cover_95"] == pytest.approx(0.95, abs=0.01)


def test_the_validation_voxels_are_saved_and_refit_to_the_same_calibration(tmp_path):
    fit, _ = toy_fit_set(noise_weight=1.5, motion=0.3, noise=0.02, rng=np.random.default_rng(4), frames=2)
    fit.save(tmp_path / "voxels.npz")
    assert FitSet.load(tmp_path / "voxels.npz").fit("warp", 8, "toy") == fit.fit("warp", 8, "toy")
    # a set saved before the change part, the moved mark and the later parts, under the names its
    # parts had then (four arrays a bucket), refits the same: the toy's later parts are all zero
    earlier = {"error2": "error2", "noise": "noise_var", "draws": "draw_var", "motion": "gradient2"}
    with np.load(tmp_path / "voxels.npz") as data:
        older = {
            f"{name.split('/')[0]}/{earlier[name.split('/')[1]]}": data[name]
            for name in data.files
            if name.split("/")[1] in earlier
        }
    assert len(older) == 4
    np.savez_compressed(tmp_path / "older.npz", **older)
    assert FitSet.load(tmp_path / "older.npz").fit("warp", 8, "toy") == fit.fit("warp", 8, "toy")


def test_a_bucket_never_fitted_falls_back_to_its_kind_in_an_older_calibration_then_to_all():
    calibration = Calibration(
        {
            "all": BucketFit(1.0, 1.0, 0.1, 1.0, 5000),
            "one-1": BucketFit(1.0, 1.0, 0.5, 2.0, 5000),
            "one-3": BucketFit(1.0, 1.0, 0.7, 3.0, 5000),
        },
        "register",
        8,
    )
    assert calibration.fit_for("one-1").scale == 2.0
    assert calibration.fit_for("one").scale == 3.0  # keyed by distance before: the farthest of its kind
    assert calibration.fit_for("between").scale == 1.0


def test_the_calibration_goes_through_config_json_and_a_broken_one_is_refused_with_a_clear_error(tmp_path):
    calibration = Calibration(
        {"all": BucketFit(2.0, 1.0, 0.25, 1.5, 9000), "beyond-1": BucketFit(1.0, 0.5, 1.5, 2.0, 4000)}, "warp", 8, "toy"
    )
    config = ModelConfig.from_dict({**ModelConfig().to_dict(), "uncertainty": calibration.to_dict()})
    (tmp_path / "config.json").write_text(config.to_json(), encoding="utf-8")
    again = ModelConfig.from_dict(json.loads((tmp_path / "config.json").read_text(encoding="utf-8")))
    assert Calibration.from_dict(again.uncertainty) == calibration
    with pytest.raises(ConfigError, match="sadm calibrate"):
        Calibration.from_dict({"buckets": {"all": {"noise": 1.0}}, "native": "warp", "samples": 8})
    with pytest.raises(ConfigError, match="'all' bucket"):
        Calibration.from_dict(
            {
                **calibration.to_dict(),
                "buckets": {"one-1": {"noise": 1, "draws": 1, "motion": 1, "scale": 1, "voxels": 9}},
            }
        )


def test_changed_voxels_are_where_the_truth_moved_by_more_than_five_percent_of_its_range():
    reference = np.zeros((2, 4, 4))
    truth = reference.copy()
    truth[0, 0, 0], truth[1, 1, 1] = 1.0, 0.04
    assert changed_voxels(truth, reference).sum() == 1


def moving_square(
    noise: float, rng: np.random.Generator, shift: int = 3, levels: tuple[float, float] = (0.3, 0.9)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A static scene with one bright square that moves `shift` voxels, both frames with white noise:
    (reference, truth, the clean truth)."""
    clean_reference = np.full((6, 64, 64), levels[0])
    clean_reference[:, 20:36, 20:36] = levels[1]
    clean_truth = np.full_like(clean_reference, levels[0])
    clean_truth[:, 20 + shift : 36 + shift, 20:36] = levels[1]
    reference = clean_reference + noise * rng.standard_normal(clean_reference.shape)
    truth = clean_truth + noise * rng.standard_normal(clean_truth.shape)
    return reference, truth, clean_truth


def test_moved_voxels_are_where_the_anatomy_moved_not_where_two_noise_samples_differ():
    reference, truth, _ = moving_square(0.02, np.random.default_rng(5))
    really_moved = np.zeros(truth.shape, bool)
    really_moved[:, 20:23, 20:36] = really_moved[:, 36:39, 20:36] = True
    static = ~ndimage.binary_dilation(really_moved, np.ones((1, 5, 5), bool))  # 2 voxels from any motion
    moved, changed = moved_voxels(truth, reference), changed_voxels(truth, reference)
    assert (moved & static).mean() < 0.002  # noise alone hardly ever counts as motion
    assert (moved & really_moved).sum() >= 0.9 * really_moved.sum()
    # voxel-wise, a noise difference beyond 5 % of the range is a 1.8σ event: thousands of static voxels
    assert (changed & static).sum() > 10 * max((moved & static).sum(), 1)
    assert (changed & static).mean() > 0.03


def test_a_perfect_map_covers_the_moved_voxels_but_not_the_voxels_where_the_noise_changed():
    """A frame made as the native paths make it, by moving the observed frame exactly as the anatomy
    moved (so it carries that frame's noise), with the exact σ (both frames' noise): the error is
    the difference of two noise samples. Where that difference exceeds 5 % of the range — the
    voxel-wise "changed" test — the error is large by selection, so no honest map reaches 85 % there;
    over the moved voxels the same map is nominal."""
    rng = np.random.default_rng(6)
    reference, truth, _ = moving_square(0.0175, rng, levels=(0.05, 1.0))  # the cardiac phantom's noise / range
    made = reference.copy()  # the background stays, the square moves by exactly its shift
    made[:, 20:39, 20:36] = reference[:, 17:36, 20:36]
    sigma = np.full(truth.shape, 0.0175 * np.sqrt(2.0))
    row = coverage_row(truth, made, sigma, moved_voxels(truth, reference), changed_voxels(truth, reference))
    assert row["cover_2sigma"] == pytest.approx(0.954, abs=0.01)
    assert row["cover_2sigma_changed"] == pytest.approx(0.954, abs=0.03)
    assert row["cover_2sigma_changed_raw"] < 0.5


def test_the_change_part_is_the_largest_squared_change_from_the_nearest_observed_frame_in_plane():
    observed = {0: np.zeros((2, 5, 5)), 3: np.ones((2, 5, 5))}
    mean = np.zeros((2, 5, 5))
    mean[1, 2, 2] = 0.5
    roles = ["observed", "missing", "missing", "observed"]
    near_start = features(mean[None], 0.0, roles, 1, observed=observed).change  # weights 2/3, 1/3: frame 0
    assert near_start[1, 1:4, 1:4] == pytest.approx(np.full((3, 3), 0.25))
    assert near_start[0].max() == 0.0 and near_start[1, 0].max() == 0.0
    near_end = features(mean[None], 0.0, roles, 2, observed=observed).change  # frame 3 is nearer
    assert near_end[0, 0, 0] == 1.0 and near_end[1, 2, 2] == 1.0
    columns = np.arange(4.0)[None, None].repeat(3, axis=1)  # (1, 3, 4): 0 1 2 3 in every row
    assert np.array_equal(in_plane_maximum(columns)[0, 1], [1.0, 2.0, 3.0, 3.0])


def motion_fit_set(rng: np.random.Generator, frames: int) -> tuple[FitSet, FitSet, list]:
    """Frames in which the anatomy moves in six rows of each slice, but the prediction moves only
    three of them (the other three keep the reference: a motion missed, an error of 0.1 plus noise);
    the same voxels fitted without and with the moved mark."""
    plain, marked, held = FitSet(max_voxels_per_frame=40000), FitSet(max_voxels_per_frame=40000), []
    for _ in range(frames):
        reference = smooth_volume(rng, (8, 48, 48))
        moved = np.zeros(reference.shape, bool)
        moved[:, 10:16, :] = True
        predicted = np.zeros(reference.shape, bool)
        predicted[:, 10:13, :] = True
        mean = reference + 0.1 * predicted
        parts = features(mean[None], 0.02**2, ["observed", "future"], 1, observed={0: reference})
        # the smoothed change reaches the three missed rows beside the predicted ones; without it no
        # part can tell the missed rows from the static ones, and only the weighting lifts their cover
        parts = dataclasses.replace(parts, change_spread=0.0)
        spread = np.where(predicted, 0.06, 0.02 * np.sqrt(2.0))
        truth = reference + 0.1 * moved + spread * rng.standard_normal(mean.shape)
        plain.add("one-1", truth, mean, parts)
        marked.add("one-1", truth, mean, parts, reference)
        held.append((truth, mean, parts, moved_voxels(truth, reference)))
    return plain, marked, held


def test_weighing_the_moved_voxels_like_the_rest_lifts_their_coverage_within_the_cap():
    plain, marked, _ = motion_fit_set(np.random.default_rng(7), frames=4)
    _, _, fresh = motion_fit_set(np.random.default_rng(8), frames=3)
    covered = {}
    for name, fit in (("plain", plain), ("marked", marked)):
        calibration = fit.fit("register", 8, "toy")
        rows = [coverage_row(t, m, calibration.sigma("one-1", p), moved) for t, m, p, moved in fresh]
        covered[name] = (np.mean([r["cover_2sigma_changed"] for r in rows]), np.mean([r["cover_2sigma"] for r in rows]))
    assert covered["plain"][0] < 0.75 and covered["plain"][1] == pytest.approx(0.954, abs=0.01)
    assert covered["marked"][0] > covered["plain"][0] + 0.06
    assert 0.95 <= covered["marked"][1] <= MOVED_CAP + 0.01  # wider, but never past the cap


@pytest.fixture
def calibrated_engine(tmp_path, tiny_config):
    torch.manual_seed(0)
    calibration = Calibration(
        {"all": BucketFit(1.0, 1.0, 0.25, 3.0, 9000), "one-1": BucketFit(1.5, 0.5, 1.0, 2.0, 9000)}, "warp", 2, "toy"
    )
    config = tiny_config.updated({"uncertainty": calibration.to_dict()})
    return Engine.load(save_model(tmp_path / "calibrated", SADM(config).eval()), device="cpu")


def test_the_engine_writes_the_calibrated_spread_for_its_path_and_the_draws_std_for_another(calibrated_engine):
    frames = [f + 1.0 for f in moving_blob_sequence(3, (8, 16, 16))]
    roles = ["observed", "future", "future"]
    inputs = [frames[0], None, None]
    calibrated = calibrated_engine.generate(inputs, roles, steps=2, samples=2, native="warp")
    assert calibrated.calibrated
    noise_var = noise_sigma(frames[0]) ** 2
    expected = 2.0 * np.sqrt(features(calibrated.draws[1], noise_var, roles, 1).variance(1.5, 0.5, 1.0))
    assert np.allclose(calibrated.std[1], expected, rtol=1e-5)
    assert np.all(calibrated.std[1] > calibrated.draw_std[1])  # noise and motion come on top of the draws
    other = calibrated_engine.generate(inputs, roles, steps=2, samples=2, native="resample")
    assert not other.calibrated and np.array_equal(other.std[1], other.draw_std[1])
    one = calibrated_engine.generate(inputs, roles, steps=2, samples=1, native="warp")
    assert one.std is None


def test_the_engine_gives_registered_frames_the_parts_of_their_motion_and_drawn_frames_none(tmp_path, tiny_config):
    """On the `register` path a frame between or beyond two observed frames is registered: its σ counts
    the motion it travelled, the registration's residual and its overshoot; a frame the model drew from
    one observed frame has none of them, and the noise read by intensity reaches both."""
    torch.manual_seed(0)
    weights = {"travel": 1.0, "residual": 1.0, "intensity_noise": 1.0, "overshoot": 1.0}
    calibration = Calibration({"all": BucketFit(0.0, 0.0, 0.0, 1.0, 9000, **weights)}, "register", 2, "toy")
    engine = Engine.load(
        save_model(tmp_path / "m", SADM(tiny_config.updated({"uncertainty": calibration.to_dict()})).eval()),
        device="cpu",
    )
    frames = moving_blob_sequence(4, (8, 16, 16))
    roles = ["observed", "missing", "observed", "future"]
    registered = engine.generate([frames[0], None, frames[2], None], roles, steps=2, samples=2, native="register")
    assert set(registered.registered) == {1, 3}
    for index in (1, 3):
        parts = registered.spread_parts[index][1]
        assert np.max(parts.travel) > 0 and np.max(parts.intensity_noise) > 0 and np.max(parts.overshoot) > 0
        expected = np.sqrt(parts.travel + parts.residual + parts.intensity_noise + parts.overshoot)
        assert np.allclose(registered.std[index], expected, rtol=1e-5)
    drawn = engine.generate([frames[0], None], ["observed", "future"], steps=2, samples=2, native="register")
    parts = drawn.spread_parts[1][1]
    assert np.max(parts.travel) == 0.0 and np.max(parts.residual) == 0.0 and np.max(parts.intensity_noise) > 0
    assert np.max(parts.overshoot) == 0.0
    # on the warp path the model draws the frame between two observed ones: no registered motion in it
    warped = engine.generate([frames[0], None, frames[2]], roles[:3], steps=2, samples=2, native="warp")
    assert not warped.registered and np.max(warped.spread_parts[1][1].travel) == 0.0


def test_a_model_with_a_broken_calibration_fails_to_load_naming_it(tmp_path, tiny_config):
    folder = save_model(tmp_path / "broken", SADM(tiny_config).eval())
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["uncertainty"] = {"buckets": {}, "native": "warp"}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ConfigError, match="uncertainty"):
        Engine.load(folder, device="cpu")


def test_the_conformal_constant_is_the_two_sided_95_percent_normal_quantile():
    from statistics import NormalDist

    assert pytest.approx(NormalDist().inv_cdf(0.975), abs=1e-6) == Z_95


def test_the_noise_profile_gives_dark_and_bright_tissue_each_its_own_noise_level():
    """Magnitude noise is weaker in air than in tissue: one σ per frame is wrong in both."""
    rng = np.random.default_rng(9)
    clean = np.full((8, 64, 64), 0.1)
    clean[:, :, 32:] = 0.8
    sigma = np.where(clean > 0.5, 0.04, 0.01)
    noisy = clean + sigma * rng.standard_normal(clean.shape)
    noisy[:, :6, :] = 0.0  # a masked background: exact zeros are not noise, and leave no empty bin
    profile = NoiseProfile.of([noisy])
    assert np.all(np.isfinite(profile.sigmas)) and np.all(np.diff(profile.levels) >= 0)
    variance = profile.variance_at(clean)
    assert np.sqrt(variance[:, 20, 5]) == pytest.approx(np.full(8, 0.01), rel=0.15)
    assert np.sqrt(variance[:, 20, 60]) == pytest.approx(np.full(8, 0.04), rel=0.15)


def test_a_registered_frame_carries_the_motion_it_travelled_and_what_the_registration_left_unexplained():
    """Two observed frames: a square moves 3 voxels and, apart from any motion, a disc brightens. The
    target half-way is registered: its travel and overshoot parts lie on the square's moving edges,
    its residual on the disc (no motion explains a change of brightness), all 0 far from either; a
    target the model drew has none."""
    start = np.full((4, 64, 64), 0.2)
    start[:, 10:26, 10:26] = 0.9
    end = np.full_like(start, 0.2)
    end[:, 13:29, 10:26] = 0.9
    rows, columns = np.mgrid[:64, :64]
    disc = (rows - 46) ** 2 + (columns - 46) ** 2 < 36
    start[:, disc] = 0.4
    end[:, disc] = 0.8
    pairs = PairFields({0: start, 2: end})
    roles = ["observed", "missing", "observed"]
    mean = pairs.frame_at(span_of(roles, 1))
    registered = features(mean[None], 0.0, roles, 1, observed=pairs.frames, pairs=pairs)
    drawn = features(mean[None], 0.0, roles, 1, observed=pairs.frames)
    assert np.max(drawn.travel) == 0.0 and np.max(drawn.residual) == 0.0 and np.max(drawn.overshoot) == 0.0
    far = np.zeros(start.shape, bool)
    far[:, 2:6, 40:60] = True  # static background, away from the square and the disc
    assert registered.travel[:, 24:30, 12:24].max() > 1e-4  # its lower edge moved 3 voxels
    assert registered.travel[far].max() < 1e-3 * registered.travel.max()
    # moved back by half its 3-voxel motion, the square's lower edge (contrast 0.7) leaves its rows
    assert registered.overshoot[:, 25:29, 12:24].max() > 0.25 * 0.7**2
    assert registered.overshoot[far].max() < 1e-3 * registered.overshoot.max()
    assert registered.residual[:, 46, 46].min() > 0.5 * 0.4**2  # brightened by 0.4, unexplained
    assert registered.residual[far].max() < 1e-3 * registered.residual.max()


def test_a_calibration_fitted_before_the_later_parts_loads_with_them_weighing_nothing():
    earlier = {"noise": 1.5, "draws": 0.5, "motion": 1.0, "scale": 2.0, "voxels": 9000, "change": 0.3}
    calibration = Calibration.from_dict({"buckets": {"all": earlier}, "native": "register", "samples": 8})
    fit = calibration.fit_for("all")
    later_parts = [name for name in PARTS if name not in earlier]
    assert later_parts and all(fit.weights[name] == 0.0 for name in later_parts)
    parts = Features(0.01, np.full((2, 3, 3), 0.02), np.full((2, 3, 3), 0.5), 0.1, **dict.fromkeys(later_parts, 7.0))
    assert np.allclose(calibration.sigma("one", parts), 2.0 * np.sqrt(1.5 * 0.01 + 0.5 * 0.02 + 0.5 + 0.3 * 0.1))
    later = Calibration({"all": BucketFit(1.0, 1.0, 0.2, 1.5, 9000, 0.1, 0.4, 0.5, 0.6, 0.7, 0.8)}, "register", 8)
    assert Calibration.from_dict(json.loads(json.dumps(later.to_dict()))) == later
