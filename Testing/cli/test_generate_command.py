"""A user runs `sadm generate` on their files with a model folder and gets generated frames, a Slicer
sequence and a record of what was run — or one line saying what to fix, and nothing written."""

from __future__ import annotations

import json
import math
import signal

import numpy as np
import pytest
import SimpleITK as sitk
import slicer

from sadm.cli import generate as generate_command
from sadm.cli import main
from sadm.config import preset
from sadm.io.images import read_volume
from sadm.io.readers import read_sequence
from sadm.io.sequence import Geometry
from sadm.io.writers import write_sequence

SHAPE = (6, 10, 12)  # (k, j, i): not the tiny model's grid, so the engine resamples both ways


def rotation_about_k(angle_rad: float) -> tuple[float, ...]:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0)


OBLIQUE = Geometry(spacing=(0.8, 1.25, 3.0), origin=(12.5, -30.0, 7.25), direction=rotation_about_k(0.3))


def blob_frames(count: int, shape=SHAPE) -> list[np.ndarray]:
    """A bright blob moving along i on a dim background, int16 like scanner data."""
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    frames = []
    for t in range(count):
        distance = np.sqrt((k - shape[0] / 2) ** 2 + (j - shape[1] / 2) ** 2 + (i - 3 - 2 * t) ** 2)
        frames.append((100 + 800 * (distance < 3)).astype(np.int16))
    return frames


def write_4d_nrrd(path, frames, geometry=OBLIQUE):
    images = [geometry.apply_to(sitk.GetImageFromArray(frame)) for frame in frames]
    sitk.WriteImage(sitk.JoinSeries(images), str(path), True)
    return path


def write_3d(path, frame, geometry=OBLIQUE):
    sitk.WriteImage(geometry.apply_to(sitk.GetImageFromArray(frame)), str(path), True)
    return path


def generate(model, inputs, out, *options) -> int:
    command = ["generate", "--model", str(model), "--input", *map(str, inputs), "--out", str(out), "--steps", "2"]
    return main(command + list(options))


def assert_on_grid(geometry: Geometry, expected: Geometry = OBLIQUE) -> None:
    np.testing.assert_allclose(geometry.spacing, expected.spacing, rtol=1e-9)
    np.testing.assert_allclose(geometry.origin, expected.origin, atol=1e-9)
    np.testing.assert_allclose(geometry.direction, expected.direction, atol=1e-9)


def snapshot(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_fills_a_missing_and_a_future_frame_of_a_4d_file(tmp_path, tiny_model, capsys):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    cine = write_4d_nrrd(inputs / "cine.nrrd", blob_frames(3))
    before = snapshot(inputs)

    code = generate(tiny_model, [cine], tmp_path / "out", "--roles", "o,m,observed", "--future", "1", "--seed", "3")

    assert code == 0
    out = tmp_path / "out"
    names = ["frame_01.nrrd", "frame_03.nrrd", "generation.json", "sequence.seq.nrrd"]
    assert sorted(p.name for p in out.iterdir()) == names
    generated = {}
    for index in (1, 3):
        volume, geometry = read_volume(out / f"frame_{index:02d}.nrrd")
        assert volume.shape == SHAPE and np.isfinite(volume).all()
        assert_on_grid(geometry)
        generated[index] = volume
    sequence = read_sequence(out / "sequence.seq.nrrd")
    assert len(sequence) == 4
    np.testing.assert_array_equal(sequence.frames[0], blob_frames(3)[0])
    np.testing.assert_array_equal(sequence.frames[2], blob_frames(3)[2])
    np.testing.assert_array_equal(sequence.frames[1], generated[1])
    np.testing.assert_array_equal(sequence.frames[3], generated[3])
    assert_on_grid(sequence.geometries[0])

    record = json.loads((out / "generation.json").read_text(encoding="utf-8"))
    assert record["roles"] == ["observed", "missing", "observed", "future"]
    assert (record["model"], record["sampler"], record["steps"]) == (str(tiny_model), "ddim", 2)
    assert (record["seed"], record["samples"]) == (3, 1)
    assert record["guidance"] == pytest.approx(preset("tiny").diffusion.guidance)
    assert record["files"]["generated"] == {"1": "frame_01.nrrd", "3": "frame_03.nrrd"}
    assert set(record["timings_s"]) == {"read_input", "load_model", "generate", "write", "total"}
    assert record["timings_s"]["total"] >= record["timings_s"]["generate"] > 0

    assert snapshot(inputs) == before  # inputs untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind
    err = capsys.readouterr().err
    assert "4/4" in err and "frame 3" in err  # the progress bar saw every step of both frames


def test_a_slicer_sequence_keeps_its_time_axis_and_future_frames_continue_it(tmp_path, tiny_model):
    cine = write_sequence(tmp_path / "cine.seq.nrrd", blob_frames(3), OBLIQUE, times=[0, 40, 80], time_unit="ms")

    assert generate(tiny_model, [cine], tmp_path / "out", "--future", "2", "--no-progress") == 0

    sequence = read_sequence(tmp_path / "out" / "sequence.seq.nrrd")
    assert sequence.times == [0.0, 40.0, 80.0, 120.0, 160.0]
    assert (sequence.metadata["index_name"], sequence.metadata["index_unit"]) == ("time", "ms")
    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLSequenceNode")
    storage = slicer.vtkMRMLVolumeSequenceStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(tmp_path / "out" / "sequence.seq.nrrd"))
    assert storage.ReadData(node) == 1 and node.GetNumberOfDataNodes() == 5
    record = json.loads((tmp_path / "out" / "generation.json").read_text(encoding="utf-8"))
    assert record["roles"] == ["observed"] * 3 + ["future"] * 2
    assert record["time_unit"] == "ms"


def test_3d_files_on_different_grids_are_aligned_onto_the_first(tmp_path, tiny_model, capsys):
    shifted = Geometry(OBLIQUE.spacing, (13.0, -30.0, 7.25), OBLIQUE.direction)
    first = write_3d(tmp_path / "t0.nrrd", blob_frames(1)[0])
    second = write_3d(tmp_path / "t1.nii.gz", blob_frames(2)[1], shifted)
    third = write_3d(tmp_path / "t2.mha", blob_frames(3)[2], shifted)

    assert generate(tiny_model, [first, second, third], tmp_path / "out", "--roles", "o,o,m", "--no-progress") == 0

    err = capsys.readouterr().err
    assert "warning: frame 1" in err and "resampled onto frame 0's grid" in err
    assert "frame 2" not in err.split("warning:", 1)[1]  # the missing frame is not read into the run
    volume, geometry = read_volume(tmp_path / "out" / "frame_02.nrrd")
    assert volume.shape == SHAPE
    assert_on_grid(geometry)  # the first frame's grid, not the shifted one
    record = json.loads((tmp_path / "out" / "generation.json").read_text(encoding="utf-8"))
    assert len(record["warnings"]) == 1


def test_one_baseline_volume_predicts_future_frames(tmp_path, tiny_model):
    baseline = write_3d(tmp_path / "baseline.nrrd", blob_frames(1)[0])

    assert generate(tiny_model, [baseline], tmp_path / "out", "--future", "2", "--no-progress") == 0

    assert sorted(p.name for p in (tmp_path / "out").glob("frame_*")) == ["frame_01.nrrd", "frame_02.nrrd"]
    assert len(read_sequence(tmp_path / "out" / "sequence.seq.nrrd")) == 3


def test_several_samples_give_a_mean_and_a_spread(tmp_path, tiny_model):
    cine = write_4d_nrrd(tmp_path / "cine.nrrd", blob_frames(2))

    # resample: the untrained model's draws differ by their noise only, and the warp path turns draws
    # that do not depend on the position asked for into no motion (every draw the anchor itself)
    options = ("--roles", "o,m", "--samples", "3", "--native", "resample", "--no-progress")
    assert generate(tiny_model, [cine], tmp_path / "out", *options) == 0

    mean, _ = read_volume(tmp_path / "out" / "frame_01.nrrd")
    std, geometry = read_volume(tmp_path / "out" / "frame_01_std.nrrd")
    assert mean.shape == std.shape == SHAPE
    assert std.min() >= 0 and std.max() > 0  # three different draws
    assert_on_grid(geometry)
    record = json.loads((tmp_path / "out" / "generation.json").read_text(encoding="utf-8"))
    assert record["samples"] == 3 and record["files"]["std"] == {"1": "frame_01_std.nrrd"}


@pytest.mark.parametrize(
    "case, expected",
    [
        ("too few roles", "roles gives 2 role(s) but the input has 3 frame(s)"),
        ("unknown role", "roles[1] is 'x'; each role must be one of"),
        ("nothing to generate", "nothing to generate: every one of the 3 input frame(s) is observed"),
        ("future before observed", "future frames must follow every observed and missing frame"),
        ("unreadable input", "cannot read"),
        ("missing input", "does not exist"),
        ("unknown model", "no model folder or bundled model named 'no-such-model'"),
        ("unknown sampler", "sampler 'euler' is unknown; choose one of ancestral, ddim"),
        ("out not empty", "is not empty (1 entries); choose a new folder or pass --overwrite"),
        ("out holds the input", "holds the input"),
    ],
)
def test_bad_requests_get_one_line_naming_the_fix_and_write_nothing(tmp_path, tiny_model, capsys, case, expected):
    cine = write_4d_nrrd(tmp_path / "cine.nrrd", blob_frames(3))
    out = tmp_path / "out"
    model, inputs, options = tiny_model, [cine], []
    if case == "too few roles":
        options = ["--roles", "o,m"]
    elif case == "unknown role":
        options = ["--roles", "o,x,o"]
    elif case == "future before observed":
        options = ["--roles", "o,f,o"]
    elif case == "unreadable input":
        (tmp_path / "broken.nrrd").write_bytes(b"NRRD0004\ntype: float\nsizes: 3\n")
        inputs = [tmp_path / "broken.nrrd"]
        options = ["--future", "1"]
    elif case == "missing input":
        inputs = [tmp_path / "nowhere.nii.gz"]
    elif case == "unknown model":
        model, options = "no-such-model", ["--future", "1"]
    elif case == "unknown sampler":
        options = ["--future", "1", "--sampler", "euler"]
    elif case == "out not empty":
        out.mkdir()
        (out / "notes.txt").write_text("keep me", encoding="utf-8")
        options = ["--future", "1"]
    elif case == "out holds the input":
        out = tmp_path
        options = ["--future", "1", "--overwrite"]
    before = snapshot(tmp_path)

    code = generate(model, inputs, out, *options)

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("sadm generate: error: ") and err.count("\n") == 1, err
    assert expected in err
    assert "Traceback" not in err
    assert snapshot(tmp_path) == before  # nothing written, nothing changed


def test_overwrite_replaces_a_previous_run_whole(tmp_path, tiny_model):
    cine = write_4d_nrrd(tmp_path / "cine.nrrd", blob_frames(3))
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("previous run", encoding="utf-8")

    assert generate(tiny_model, [cine], out, "--roles", "o,o,m", "--overwrite", "--no-progress") == 0

    assert sorted(p.name for p in out.iterdir()) == ["frame_02.nrrd", "generation.json", "sequence.seq.nrrd"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cine.nrrd", "out"]


def test_ctrl_c_cancels_cleanly_and_leaves_nothing(tmp_path, tiny_model, monkeypatch, capsys):
    cine = write_4d_nrrd(tmp_path / "cine.nrrd", blob_frames(3))
    steps_seen = []

    def press_ctrl_c(self, done, total, frame_index):
        steps_seen.append(done)
        if done == 1:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(generate_command.StepProgress, "__call__", press_ctrl_c)
    previous_handler = signal.getsignal(signal.SIGINT)

    code = generate(tiny_model, [cine], tmp_path / "out", "--roles", "o,m,m", "--steps", "5")

    assert code == generate_command.CANCELLED_EXIT_CODE
    assert steps_seen == [1]  # stopped at the next step, long before the 10 steps of the run
    assert "cancelled; nothing was written" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cine.nrrd"]
    assert signal.getsignal(signal.SIGINT) is previous_handler
