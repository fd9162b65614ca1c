"""Generated frames on the input grid: a native anchor warped by the motion the model drew."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from sadm import Engine, InvalidRequestError, SamplingOptions
from sadm.config import preset
from sadm.data.resample import resample_to_shape
from sadm.generation.native import WarpSettings, _on_grid, anchors_of, motion_field, warp, warped_draw
from sadm.networks.sadm import SADM
from sadm.storage.checkpoint import save_model

NATIVE, GRID = (8, 64, 64), (4, 16, 16)


def blob(centre_i: float, shape=NATIVE) -> np.ndarray:
    """A smooth bright ellipsoid centred at column `centre_i` (sub-voxel positions allowed)."""
    k, j, i = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
    r2 = ((k - shape[0] / 2) / 2.5) ** 2 + ((j - shape[1] / 2) / 10) ** 2 + ((i - centre_i) / 10) ** 2
    return (0.1 + 0.8 / (1 + np.exp((np.sqrt(r2) - 1) * 6))).astype(np.float32)


def constant_field(shift_i: float) -> sitk.Image:
    """A field on the model grid that displaces every point by `shift_i` input voxels along i."""
    reference = _on_grid(np.zeros(GRID, np.float32), NATIVE)
    components = [np.full(GRID, value, np.float64) for value in (shift_i, 0.0, 0.0)]  # (x=i, y=j, z=k)
    field = sitk.GetImageFromArray(np.stack(components, axis=-1), isVector=True)
    field.CopyInformation(reference)
    return field


def test_a_known_field_warps_the_native_frame_by_exactly_that_shift():
    native = blob(30.0)
    warped = warp(native, constant_field(3.0))  # output(x) = native(x + 3 along i)
    np.testing.assert_allclose(warped[:, :, :-3], native[:, :, 3:], atol=1e-5)
    np.testing.assert_allclose(warp(native, constant_field(0.0)), native, atol=1e-6)
    assert warped.shape == native.shape and warped.dtype == np.float32


def test_no_drawn_change_gives_the_anchor_back():
    anchor = blob(30.0)
    on_grid = resample_to_shape(anchor, GRID)
    np.testing.assert_allclose(warped_draw(anchor, on_grid, on_grid), anchor, atol=1e-4)


def test_the_motion_the_model_drew_moves_the_native_frame_and_keeps_its_detail():
    """The draw (model grid) shows the blob 4 voxels further along i; the warped native anchor lands
    near the native truth — far nearer than the anchor and than the draw resampled up."""
    rng = np.random.default_rng(0)
    anchor = blob(30.0) + rng.normal(0, 0.02, NATIVE).astype(np.float32)  # detail the model grid cannot hold
    truth = np.roll(anchor, 4, axis=2)  # the whole frame, detail included, moved 4 voxels along i
    draw = resample_to_shape(truth, GRID)
    warped = warped_draw(anchor, resample_to_shape(anchor, GRID), draw)

    def error(volume):
        return float(np.sqrt(np.mean((volume - truth) ** 2)))

    assert error(warped) < 0.5 * error(anchor)
    assert error(warped) < 0.5 * error(resample_to_shape(draw, NATIVE))
    field = sitk.GetArrayFromImage(motion_field(resample_to_shape(anchor, GRID), draw, NATIVE, WarpSettings()))
    centre = field[GRID[0] // 2, GRID[1] // 2, GRID[2] // 2 + 1]
    assert centre[0] == pytest.approx(-4.0, abs=1.5)  # anchor(x − 4) ≈ truth(x): the blob came from the left


def test_a_future_frame_has_one_anchor_and_a_missing_frame_the_two_around_it_weighted_by_time():
    roles = ["observed", "missing", "missing", "observed", "future"]
    assert anchors_of(roles, 4) == [(3, 1.0)]
    assert anchors_of(roles, 1) == [(0, pytest.approx(2 / 3)), (3, pytest.approx(1 / 3))]
    assert anchors_of(roles, 2, times=[0.0, 1.0, 2.5, 3.0, 4.0]) == [
        (0, pytest.approx(1 / 6)),
        (3, pytest.approx(5 / 6)),
    ]


def test_an_unknown_native_path_is_refused_naming_the_choices():
    with pytest.raises(
        InvalidRequestError, match="native path 'sharpen' is unknown; choose one of warp, resample, register"
    ):
        SamplingOptions(native="sharpen")


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory):
    return Engine.load(save_model(tmp_path_factory.mktemp("m") / "tiny", SADM(preset("tiny"))), device="cpu")


def test_resample_is_the_papers_path_and_warp_starts_from_the_native_anchor(tiny_engine):
    frames = [blob(30.0 + 2 * t) * 100 for t in range(3)]
    roles = ["observed", "missing", "observed"]
    paper = tiny_engine.generate(frames, roles, sampler="ddim", steps=2, seed=1, native="resample")
    warped = tiny_engine.generate(frames, roles, sampler="ddim", steps=2, seed=1, native="warp")
    np.testing.assert_array_equal(paper.on_model_grid[1], warped.on_model_grid[1])  # same draw
    np.testing.assert_allclose(paper[1], resample_to_shape(paper.on_model_grid[1][0], NATIVE), atol=1e-5)
    assert warped[1].shape == NATIVE and np.isfinite(warped[1]).all()
    low, high = min(f.min() for f in frames), max(f.max() for f in frames)
    assert low - 1e-3 <= warped[1].min() and warped[1].max() <= high + 1e-3  # values of the anchor, moved


@pytest.mark.parametrize("context", ["causal", "bidirectional"])
def test_the_anchor_is_redrawn_from_the_targets_context_and_noise_at_the_anchors_position(context):
    """Beside the last frame the model also draws the frame that frame's context gives at its anchor's
    position: exactly the last frame's draw with its position replaced by the anchor's, from the same
    noise; the last frame's own draw is unchanged. Also with frame 0 the only observed frame."""
    import torch

    from sadm.generation.autoregressive import autoregressive_generate
    from sadm.generation.request import SamplingOptions as Options

    torch.manual_seed(0)
    model = SADM(preset("tiny").updated({"max_frames": 3, "attention": {"context": context}})).eval()
    with torch.no_grad():  # zero-initialised output layers would make c ignore positions and frames
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    frames = torch.rand(1, 3, *preset("tiny").grid)
    options = Options(sampler="ddim", steps=3)

    def run(sequence, roles, positions=None, **extra):
        generator = torch.Generator().manual_seed(5)
        at = torch.arange(len(roles), dtype=torch.float32) if positions is None else torch.tensor(positions)
        return autoregressive_generate(model, sequence, roles, at, options, generator=generator, **extra)

    cases = (  # (roles, the anchor redrawn beside the last frame, the positions that ask for it there)
        (["observed", "observed", "future"], 1, (0.0, 1.0, 1.0)),
        (["observed", "future"], 0, (0.0, 0.0)),  # one observed frame: its redraw needs nothing hidden
    )
    for roles, anchor, asked in cases:
        target = len(roles) - 1
        sequence = frames[:, : len(roles)]
        redraws = {}
        with_anchor = run(sequence, roles, redraw_at={target: [anchor]}, redraws=redraws)
        plain = run(sequence, roles)
        torch.testing.assert_close(with_anchor, plain, rtol=0, atol=1e-3)
        at_anchor = run(sequence, roles, positions=asked)  # the last frame asked for at the anchor's position
        torch.testing.assert_close(redraws[target][0], at_anchor[:, target], rtol=0, atol=1e-3)  # batched vs alone
        assert (redraws[target][0] - plain[:, target]).abs().max() > 1e-2  # the position asked for matters


def test_register_gives_the_registration_floor_where_two_frames_are_observed(tiny_engine):
    """`--native register`: a frame between or after two observed frames is the observed frames'
    registration at its time (the model's draw of it is kept for the model grid); with one observed
    frame the model's motion moves it, as on the warp path."""
    from sadm.generation.registration import registered_frames

    frames = [blob(28.0 + 2 * t) * 100 for t in range(4)]
    roles = ["observed", "missing", "observed", "future"]
    made = tiny_engine.generate(frames, roles, sampler="ddim", steps=2, seed=1, native="register", samples=2)
    floor = registered_frames(frames, roles)
    for index in (1, 3):
        np.testing.assert_allclose(made[index], floor[index], rtol=1e-5, atol=1e-3)
        assert made.on_model_grid[index].shape == (2, *tiny_engine.config.grid)
    assert made.fractions == {1: [0.5, 0.5], 3: [1.5, 1.5]}

    single = ["observed", "future", "future"]
    warped = tiny_engine.generate(frames[:3], single, sampler="ddim", steps=2, seed=1, native="warp")
    registered = tiny_engine.generate(frames[:3], single, sampler="ddim", steps=2, seed=1, native="register")
    for index in (1, 2):
        np.testing.assert_array_equal(registered[index], warped[index])


def test_register_draws_nothing_where_registration_gives_the_frame(tiny_engine, monkeypatch):
    """Where two observed frames give every target's motion, `register` never runs the model: the
    progress counts one step per registered frame, and the model grid holds the registration."""
    from sadm.data.resample import resample_to_shape
    from sadm.generation.registration import registered_frames

    frames = [blob(28.0 + 2 * t) * 100 for t in range(4)]
    roles = ["observed", "missing", "observed", "future"]

    def no_model(*args, **kwargs):
        raise AssertionError("the model was run for a frame that registration gives")

    monkeypatch.setattr(tiny_engine.model, "denoise", no_model)
    monkeypatch.setattr(tiny_engine.model, "condition", no_model)
    calls = []
    made = tiny_engine.generate(
        frames, roles, sampler="ddim", steps=3, seed=1, native="register", progress=lambda *a: calls.append(a)
    )
    assert calls == [(1, 2, 1), (2, 2, 3)]
    floor = registered_frames(frames, roles)
    for index in (1, 3):
        np.testing.assert_array_equal(made[index], floor[index])
        np.testing.assert_allclose(
            made.on_model_grid[index][0], resample_to_shape(floor[index], tiny_engine.config.grid), atol=1e-5
        )


def test_a_request_without_a_native_path_takes_the_models(tiny_engine, monkeypatch):
    """config.json's `native` (chosen per model on validation subjects) is the default; a request's
    own choice overrides it."""
    frames = [blob(28.0 + 2 * t) * 100 for t in range(3)]
    roles = ["observed", "missing", "observed"]
    assert tiny_engine.generate(frames, roles, steps=1).request.sampling.native == "warp"
    monkeypatch.setattr(tiny_engine.model, "config", tiny_engine.config.updated({"native": "register"}))
    made = tiny_engine.generate(frames, roles, steps=1)
    assert made.request.sampling.native == "register" and set(made.registered) == {1}
    assert tiny_engine.generate(frames, roles, steps=1, native="warp").registered == {}


@pytest.mark.parametrize("native", ["warp", "register"])
def test_the_same_draws_and_motions_move_other_observed_frames(tiny_engine, native):
    """`Generation.moving` (what scripts/uncertainty_bound.py splits an error with): every frame is a
    blend of observed frames moved by fixed motions, so observed frames 50 brighter give frames 50
    brighter, drawn or registered, without drawing again."""
    frames = [blob(28.0 + 2 * t) * 100 for t in range(4)]
    roles = ["observed", "missing", "observed", "future"]
    made = tiny_engine.generate(frames, roles, steps=1, samples=2, seed=3, native=native)
    assert set(made.registered) == ({1, 3} if native == "register" else set())
    brighter = made.moving({index: frames[index] + 50.0 for index in (0, 2)})
    assert brighter.on_model_grid is made.on_model_grid
    for index in (1, 3):
        np.testing.assert_allclose(brighter.mean[index], made.mean[index] + 50.0, atol=1e-3)
    with pytest.raises(ValueError, match="registered positions"):
        made.moving({0: frames[0]})
