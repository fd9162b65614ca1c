"""`sadm demo` writes every promised file, with uncertainty maps for several samples (tiny model, fast)."""

from __future__ import annotations

import json

import pytest
import SimpleITK as sitk

from sadm.cli import main
from sadm.config import preset
from sadm.evaluation.demo import demo_roles
from sadm.networks.sadm import SADM
from sadm.storage.checkpoint import save_model


@pytest.fixture(scope="module")
def tiny_twelve_frame_model(tmp_path_factory):
    config = preset("tiny").updated({"max_frames": 12})
    return save_model(tmp_path_factory.mktemp("models") / "tiny-12", SADM(config))


def test_demo_roles_mix_missing_and_future_frames():
    assert "".join(r[0].upper() for r in demo_roles(12)) == "OMMOMMOMMFFF"


@pytest.mark.slow
def test_demo_writes_frames_sequence_montage_metrics_and_uncertainty(tiny_twelve_frame_model, tmp_path, capsys):
    out = tmp_path / "demo"
    assert (
        main(
            # an untrained model draws no motion, so only resampled draws spread
            [
                "demo",
                "--model",
                str(tiny_twelve_frame_model),
                "--out",
                str(out),
                "--steps",
                "2",
                "--samples",
                "3",
                "--native",
                "resample",
            ]
        )
        == 0
    )
    generated = [i for i, r in enumerate(demo_roles(12)) if r != "observed"]
    expected = {f"generated_t{i:02d}.nrrd" for i in generated} | {f"generated_t{i:02d}_std.nrrd" for i in generated}
    expected |= {"completed.seq.nrrd", "montage.png", "metrics.json"}
    assert {p.name for p in out.iterdir()} == expected
    mean = sitk.ReadImage(str(out / "generated_t01.nrrd"))
    std = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "generated_t01_std.nrrd")))
    assert std.shape == sitk.GetArrayFromImage(mean).shape and std.min() >= 0 and std.max() > 0
    assert sitk.ReadImage(str(out / "completed.seq.nrrd")).GetNumberOfComponentsPerPixel() == 12
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["samples"] == 3 and sorted(int(k) for k in metrics["frames"]) == generated
    assert set(metrics["baselines_mean"]) == {"copy-last", "linear", "registration"} and metrics["native"] == "resample"
    assert metrics["baselines_mean"]["copy-last"]["change"] == 0.0 and "change" in metrics["mean"]
    assert all(metrics["frames"][str(i)]["std_mean"] > 0 for i in generated)
    grid = metrics["model_grid"]
    assert grid["shape"] == list(preset("tiny").grid) and sorted(int(k) for k in grid["frames"]) == generated
    assert set(grid["baselines_mean"]) == {"copy-last", "linear", "registration"}
    assert metrics["native_shape"] == list(sitk.GetArrayFromImage(mean).shape)
    # the truth through the model grid and back loses detail, so it scores below a perfect 1.0
    assert 0 < metrics["truth_through_model_grid_mean"]["ssim"] < 1
    printed = capsys.readouterr().out
    assert "copy-last" in printed and str(out) in printed and "model's" in printed and "native" in printed


@pytest.mark.slow
def test_a_second_demo_replaces_the_first_whole(tiny_twelve_frame_model, tmp_path):
    out = tmp_path / "demo"
    assert (
        main(["demo", "--model", str(tiny_twelve_frame_model), "--out", str(out), "--steps", "1", "--samples", "2"])
        == 0
    )
    assert main(["demo", "--model", str(tiny_twelve_frame_model), "--out", str(out), "--steps", "1"]) == 0
    assert not list(out.glob("*_std.nrrd"))  # nothing left over from the earlier run
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8"))["samples"] == 1


def test_the_demo_says_which_frames_registration_made(tiny_twelve_frame_model, tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--model", str(tiny_twelve_frame_model), "--out", str(out), "--steps", "1", "--native", "register"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    generated = [i for i, r in enumerate(demo_roles(12)) if r != "observed"]
    assert metrics["native"] == "register" and metrics["registered_frames"] == generated
    assert "registration of the observed frames" in capsys.readouterr().out
