"""Irregular times (ages): a continuous-time model learns from a manifest's ages and generation
takes target times ("this subject at 80"); an index model ignores the ages it is trained on."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from sadm import Engine
from sadm.cli import main
from sadm.training.experiment import build_trainer
from sadm_testing import moving_blob_sequence

AGES = {
    "s0": [61.0, 64.5, 70.0, 77.0],
    "s1": [55.0, 58.0, 66.0, 69.5],
    "s2": [70.0, 71.0, 75.5, 81.0],
    "s3": [62.0, 67.0, 68.0, 74.0],
    "s4": [58.5, 60.0, 65.0, 72.0],
}


@pytest.fixture
def aged_manifest(tmp_path) -> Path:
    """Five subjects, four 3D NIfTI scans each at irregular ages, listed in a CSV manifest with a time column."""
    root = tmp_path / "ageing"
    rows = []
    for n, (subject, ages) in enumerate(AGES.items()):
        (root / subject).mkdir(parents=True)
        for timepoint, (age, frame) in enumerate(zip(ages, moving_blob_sequence(4, (8, 16, 16), 100.0 + 30 * n)), 1):
            path = f"{subject}/{subject}_age-{age:g}.nii.gz"
            sitk.WriteImage(sitk.GetImageFromArray(frame.astype(np.float32)), str(root / path))
            rows.append({"subject": subject, "timepoint": timepoint, "path": path, "time": age})
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["subject", "timepoint", "path", "time"])
        writer.writeheader()
        writer.writerows(rows)
    return root / "manifest.csv"


def experiment(tmp_path: Path, time_embedding: str) -> Path:
    path = tmp_path / f"{time_embedding}.json"
    attention = {"time_embedding": time_embedding, "time_scale": 100.0}
    training = {
        "steps": 3,
        "batch_size": 2,
        "warmup_steps": 1,
        "checkpoint_every": 3,
        "validate_every": 3,
        "val_fraction": 0.2,
        "val_generate": 1,
        "val_sampler_steps": 2,
        "log_every": 1,
    }
    path.write_text(
        json.dumps({"model": {"preset": "tiny", "max_frames": 6, "attention": attention}, "training": training}),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def continuous_model(aged_manifest, tmp_path) -> Path:
    trainer = build_trainer(experiment(tmp_path, "continuous"), aged_manifest, tmp_path / "run", show_progress=False)
    trainer.run()
    return tmp_path / "run" / "model"


def test_an_index_model_trains_on_aged_data_with_frame_indices(aged_manifest, tmp_path):
    trainer = build_trainer(experiment(tmp_path, "index"), aged_manifest, tmp_path / "run", show_progress=False)
    trainer.run()  # ages such as 77 would be out of range of a 4-entry index table
    assert trainer.step == 3


def test_a_continuous_time_model_conditions_on_the_target_age(continuous_model, aged_manifest):
    engine = Engine.load(continuous_model, device="cpu")
    frames = moving_blob_sequence(3, (8, 16, 16), 100.0)
    roles = ["observed", "observed", "future"]
    at_70 = engine.generate([*frames[:2], None], roles, steps=2, seed=3, times=[61.0, 64.0, 70.0])[2]
    again = engine.generate([*frames[:2], None], roles, steps=2, seed=3, times=[61.0, 64.0, 70.0])[2]
    at_90 = engine.generate([*frames[:2], None], roles, steps=2, seed=3, times=[61.0, 64.0, 90.0])[2]
    np.testing.assert_array_equal(at_70, again)
    assert np.abs(at_70 - at_90).max() > 0


def one_subject_manifest(manifest: Path, subject: str) -> Path:
    """The manifest's rows of one subject, beside it (its paths are relative to its folder)."""
    lines = manifest.read_text(encoding="utf-8").splitlines()
    path = manifest.parent / f"{subject}.csv"
    path.write_text(
        "\n".join([lines[0]] + [line for line in lines[1:] if line.startswith(f"{subject},")]) + "\n", encoding="utf-8"
    )
    return path


def test_generate_predicts_a_subject_at_requested_ages(continuous_model, aged_manifest, tmp_path):
    out = tmp_path / "at-80"
    code = main(
        [
            "generate",
            "--model",
            str(continuous_model),
            "--input",
            str(one_subject_manifest(aged_manifest, "s0")),
            "--future-times",
            "80,83",
            "--out",
            str(out),
            "--steps",
            "2",
            "--no-progress",
        ]
    )
    assert code == 0
    record = json.loads((out / "generation.json").read_text(encoding="utf-8"))
    assert record["times"] == [61.0, 64.5, 70.0, 77.0, 80.0, 83.0]
    assert record["roles"][-2:] == ["future", "future"]
    assert sorted(p.name for p in out.glob("frame_*.nrrd")) == ["frame_04.nrrd", "frame_05.nrrd"]


@pytest.mark.parametrize(
    "options, expected",
    [
        (["--future-times", "76,80"], "increase strictly"),
        (["--times", "1,2,3"], "times gives 3 value(s) but there are 4 timepoint(s)"),
        (["--future", "3", "--future-times", "80,83"], "disagree"),
    ],
)
def test_bad_times_are_refused_before_generating(continuous_model, aged_manifest, tmp_path, capsys, options, expected):
    one_subject = one_subject_manifest(aged_manifest, "s0")
    code = main(
        [
            "generate",
            "--model",
            str(continuous_model),
            "--input",
            str(one_subject),
            "--roles",
            "o,o,o,m",
            "--out",
            str(tmp_path / "out"),
            "--steps",
            "2",
            "--no-progress",
            *options,
        ]
    )
    assert code != 0
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_index_model_refuses_target_times(aged_manifest, tmp_path, capsys):
    from sadm.config import preset
    from sadm.networks.sadm import SADM
    from sadm.storage.checkpoint import save_model

    model = save_model(tmp_path / "index-model", SADM(preset("tiny")))
    code = main(
        [
            "generate",
            "--model",
            str(model),
            "--input",
            str(one_subject_manifest(aged_manifest, "s0")),
            "--future-times",
            "80",
            "--out",
            str(tmp_path / "out"),
            "--steps",
            "2",
            "--no-progress",
        ]
    )
    assert code != 0
    assert "places frames by their index" in capsys.readouterr().err
