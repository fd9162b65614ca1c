"""`sadm evaluate` end to end on tiny data (the runner's bookkeeping: Testing/evaluation/test_runner.py)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from sadm.cli import main
from sadm.config import preset
from sadm.evaluation.runner import HeldOutSequence, evaluate
from sadm.networks.sadm import SADM
from sadm.storage.checkpoint import save_model
from sadm_testing import moving_blob_sequence


@pytest.fixture
def held_out(tmp_path):
    root = tmp_path / "held-out"
    root.mkdir()
    for subject in range(3):
        frames = moving_blob_sequence(5, (8, 16, 16), scale=200.0 + 50 * subject)
        image = sitk.JoinSeries([sitk.GetImageFromArray(f.astype(np.float32)) for f in frames])
        sitk.WriteImage(image, str(root / f"subject{subject}.nii.gz"))
    return root


@pytest.fixture
def tiny_models(tmp_path):
    sadm = save_model(tmp_path / "models" / "sadm", SADM(preset("tiny")))
    config = preset("tiny").updated({"variant": "attention-only"})
    attention_only = save_model(tmp_path / "models" / "attention-only", SADM(config))
    return sadm, attention_only


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_evaluate_writes_tables_for_models_and_baselines(held_out, tiny_models, tmp_path, capsys):
    out = tmp_path / "evaluation"
    code = main(
        [
            "evaluate",
            *(option for m in tiny_models for option in ["--model", str(m)]),
            "--data",
            str(held_out),
            "--out",
            str(out),
            "--steps",
            "2",
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["evaluation.json", "per_frame.csv", "summary.csv", "table.md"]
    rows = read_rows(out / "per_frame.csv")
    methods = ["SADM", "attention-only", "copy-last", "linear", "registration"]
    assert sorted({r["method"] for r in rows}) == sorted(methods)
    for method in methods:
        for grid in ("native", "model"):
            mine = [r for r in rows if r["method"] == method and r["grid"] == grid]
            assert len([r for r in mine if r["setting"] == "single"]) == 3 * 4  # 3 subjects × frames 1..4
            assert len([r for r in mine if r["setting"] == "full"]) == 3 * 4
    assert {r["change"] for r in rows if r["method"] == "copy-last"} == {"0"}
    missing = {
        (m, g): sorted(
            (r["subject"], r["frame"]) for r in rows if (r["method"], r["grid"], r["setting"]) == (m, g, "missing")
        )
        for m in methods
        for g in ("native", "model")
    }
    assert len({tuple(v) for v in missing.values()}) == 1  # every method imputes the same frames
    table = (out / "table.md").read_text(encoding="utf-8")
    for method in methods:
        assert f"| {method} |" in table
    assert "SSIM (single / missing / full)" in table and "change r (single / missing / full)" in table
    assert table.index("**On the native grid**") < table.index("**On the model grid** (8×16×16")
    record = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))
    assert record["subjects"] == ["subject0", "subject1", "subject2"] and record["frames"] == 5
    assert sorted(record["method_seconds"]) == sorted(methods)  # what each answer cost
    assert table.index("**The last frame alone**") > table.index("Mean ± std") and "SSIM ×100" in table
    assert "| SADM |" in capsys.readouterr().out


def test_the_same_seed_gives_the_same_numbers(held_out, tiny_models, tmp_path):
    for name in ("a", "b"):
        assert (
            main(
                [
                    "evaluate",
                    "--model",
                    str(tiny_models[0]),
                    "--data",
                    str(held_out),
                    "--out",
                    str(tmp_path / name),
                    "--steps",
                    "2",
                    "--settings",
                    "single",
                    "--baselines",
                    "none",
                    "--subjects",
                    "1",
                    "--no-progress",
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
    assert (tmp_path / "a" / "per_frame.csv").read_text(encoding="utf-8") == (
        tmp_path / "b" / "per_frame.csv"
    ).read_text(encoding="utf-8")


def test_samples_scores_the_mean_of_that_many_draws_of_each_diffusion_model(held_out, tiny_models, tmp_path):
    """--samples N: a diffusion model's prediction is the voxel-wise mean of N sequences drawn with the
    run's seed (a regressor is scored as it is); the record and table say so, and reuse tells the two apart."""
    from sadm import Engine
    from sadm.evaluation.runner import ModelMethod

    common = [
        "--data",
        str(held_out),
        "--steps",
        "2",
        "--settings",
        "full",
        "--baselines",
        "none",
        "--subjects",
        "1",
        "--no-progress",
        "--device",
        "cpu",
    ]
    one, three = tmp_path / "one", tmp_path / "three"
    assert (
        main(["evaluate", *(option for m in tiny_models for option in ["--model", str(m)]), *common, "--out", str(one)])
        == 0
    )
    assert (
        main(
            [
                "evaluate",
                *(option for m in tiny_models for option in ["--model", str(m)]),
                *common,
                "--out",
                str(three),
                "--samples",
                "3",
                "--reuse",
                str(one),
            ]
        )
        == 0
    )
    record = json.loads((three / "evaluation.json").read_text(encoding="utf-8"))
    assert record["samples"] == 3 and record["reused"] == {}  # one sample's rows are not the mean's
    assert "mean of 3 samples" in (three / "table.md").read_text(encoding="utf-8")
    rows = {(r["method"], r["frame"]): float(r["psnr"]) for r in read_rows(three / "per_frame.csv")}
    single = {(r["method"], r["frame"]): float(r["psnr"]) for r in read_rows(one / "per_frame.csv")}
    assert {m for m, _ in rows} == {"SADM (mean of 3 samples)", "attention-only"}
    assert all(rows[("attention-only", f)] == single[("attention-only", f)] for m, f in single if m == "attention-only")

    engine = Engine.load(tiny_models[0], device="cpu")
    frames = np.random.default_rng(0).random((4, *engine.config.grid)).astype(np.float32)
    roles = ["observed", "missing", "observed", "future"]
    draws = engine.generate(list(frames), roles, sampler="ddim", steps=2, seed=5, samples=3).draws
    assert all(v.std(axis=0).max() > 0 for v in draws.values())  # the draws differ, so the mean is not one of them
    mean = ModelMethod("m", engine, "ddim", 2, samples=3).predict(frames, roles, (0.0, 1.0, 2.0, 3.0), seed=5).native
    for index, volumes in draws.items():
        np.testing.assert_allclose(mean[index], volumes.mean(axis=0), rtol=1e-5, atol=1e-6)
    one_draw = ModelMethod("m", engine, "ddim", 2).predict(frames, roles, (0.0, 1.0, 2.0, 3.0), seed=5).native
    assert all(
        np.array_equal(one_draw[i], engine.generate(list(frames), roles, sampler="ddim", steps=2, seed=5)[i])
        for i in one_draw
    )


@pytest.mark.parametrize(
    "options, expected",
    [
        (["--settings", "single,best"], "--settings 'single,best': choose from single, missing, full"),
        (["--baselines", "mean"], "--baselines 'mean': choose from copy-last, linear"),
        (["--missing-rate", "0"], "--missing-rate must be in (0, 1]"),
        (["--samples", "0"], "--samples must be at least 1; got 0"),
    ],
)
def test_bad_options_are_refused_and_nothing_is_written(held_out, tiny_models, tmp_path, capsys, options, expected):
    out = tmp_path / "evaluation"
    code = main(["evaluate", "--model", str(tiny_models[0]), "--data", str(held_out), "--out", str(out), *options])
    assert code == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()


def test_a_continuous_time_model_is_scored_in_every_setting(tmp_path):
    """Full-setting runs end at their target, so the model gets the times of those frames only."""
    from sadm import Engine
    from sadm.evaluation.runner import ModelMethod

    config = preset("tiny").updated({"attention": {"time_embedding": "continuous"}})
    engine = Engine.load(save_model(tmp_path / "ages", SADM(config)), device="cpu")
    frames = np.stack(moving_blob_sequence(4, tuple(config.grid))).astype(np.float32)
    frames /= frames.max()
    sequence = HeldOutSequence("s0", frames, (61.0, 64.5, 70.0, 78.0))
    result = evaluate([ModelMethod("sadm", engine, "ddim", 2)], [sequence], ["single", "missing", "full"], seed=0)
    full = [r["frame"] for r in result.rows if r["setting"] == "full"]
    assert full == [1, 2, 3] and all(np.isfinite(r["psnr"]) for r in result.rows)


def test_reuse_takes_a_moved_models_rows_from_an_earlier_evaluation_without_running_it(
    held_out, tiny_models, tmp_path, monkeypatch, capsys
):
    import shutil

    import sadm.evaluation.runner

    common = ["--data", str(held_out), "--steps", "2", "--subjects", "2", "--no-progress", "--device", "cpu"]
    first = tmp_path / "first"
    assert main(["evaluate", "--model", str(tiny_models[0]), *common, "--out", str(first)]) == 0
    other = tmp_path / "other"
    assert main(["evaluate", "--model", str(tiny_models[1]), *common, "--out", str(other), "--baselines", "none"]) == 0
    moved = shutil.copytree(tiny_models[0], tmp_path / "moved" / "sadm")  # same weights, another folder

    def not_again(*args, **kwargs):
        raise AssertionError("a reused model was run again")

    monkeypatch.setattr(sadm.evaluation.runner.ModelMethod, "predict", not_again)
    second = tmp_path / "second"
    assert main(["evaluate", "--model", str(moved), *common, "--out", str(second), "--reuse", str(first)]) == 0

    def ordered(path):
        return sorted(read_rows(path), key=lambda r: (r["method"], r["setting"], r["subject"], int(r["frame"])))

    assert ordered(second / "per_frame.csv") == ordered(first / "per_frame.csv")
    record = json.loads((second / "evaluation.json").read_text(encoding="utf-8"))
    assert record["reused"] == {"SADM": str(first)}

    # several earlier outputs: each model comes from the first that scored it, a new one is run
    both = tmp_path / "both"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(moved),
                "--model",
                str(tiny_models[1]),
                *common,
                "--out",
                str(both),
                "--reuse",
                str(first),
                "--reuse",
                str(other),
            ]
        )
        == 0
    )
    record = json.loads((both / "evaluation.json").read_text(encoding="utf-8"))
    assert sorted(record["reused"].values()) == sorted([str(first), str(other)])
    assert {r["method"] for r in read_rows(both / "per_frame.csv")} >= set(record["reused"])

    # another protocol (here the seed) scores the model again, and says why
    with pytest.raises(AssertionError, match="run again"):
        main(
            [
                "evaluate",
                "--model",
                str(moved),
                *common,
                "--out",
                str(tmp_path / "third"),
                "--reuse",
                str(first),
                "--seed",
                "7",
            ]
        )
    assert "nothing reused (seed differs)" in capsys.readouterr().err


def resave_with_reordered_header(folder, tensor_change=0.0):
    """The folder's weights written again with the header's keys in another order (as safetensors
    may write them), and optionally one tensor changed by `tensor_change`."""
    import struct

    from safetensors import safe_open
    from safetensors.torch import save_file

    path = folder / "model.safetensors"
    with safe_open(str(path), "pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118  (safe_open is not iterable)
        metadata = handle.metadata()
    first = next(iter(tensors))
    tensors[first] = tensors[first] + tensor_change
    save_file(tensors, str(path), metadata=metadata)
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    header["__metadata__"] = dict(reversed(list(header["__metadata__"].items())))
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length :])


def test_reuse_knows_the_same_weights_written_in_another_header_order_and_older_records(
    held_out, tiny_models, tmp_path, monkeypatch
):
    import hashlib
    import shutil

    import sadm.evaluation.runner

    common = ["--data", str(held_out), "--steps", "2", "--subjects", "2", "--no-progress", "--device", "cpu"]
    first = tmp_path / "first"
    assert main(["evaluate", "--model", str(tiny_models[0]), *common, "--out", str(first)]) == 0
    resaved = shutil.copytree(tiny_models[0], tmp_path / "resaved" / "sadm")
    resave_with_reordered_header(resaved)
    before = hashlib.sha256((tiny_models[0] / "model.safetensors").read_bytes()).hexdigest()
    assert hashlib.sha256((resaved / "model.safetensors").read_bytes()).hexdigest() != before

    def not_again(*args, **kwargs):
        raise AssertionError("a reused model was run again")

    monkeypatch.setattr(sadm.evaluation.runner.ModelMethod, "predict", not_again)
    assert (
        main(["evaluate", "--model", str(resaved), *common, "--out", str(tmp_path / "second"), "--reuse", str(first)])
        == 0
    )

    # a record written before the header was sorted holds the file's sha256: still reused
    record = json.loads((first / "evaluation.json").read_text(encoding="utf-8"))
    record.pop("weights_digest")
    record["weights"] = {"SADM": before}
    (first / "evaluation.json").write_text(json.dumps(record), encoding="utf-8")
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(tiny_models[0]),
                *common,
                "--out",
                str(tmp_path / "third"),
                "--reuse",
                str(first),
            ]
        )
        == 0
    )

    # other weights are scored again
    changed = shutil.copytree(tiny_models[0], tmp_path / "changed" / "sadm")
    resave_with_reordered_header(changed, tensor_change=0.5)
    with pytest.raises(AssertionError, match="run again"):
        main(
            [
                "evaluate",
                "--model",
                str(changed),
                *common,
                "--out",
                str(tmp_path / "fourth"),
                "--reuse",
                str(tmp_path / "second"),
            ]
        )


def test_reuse_of_a_folder_that_is_no_evaluation_is_refused(held_out, tiny_models, tmp_path, capsys):
    code = main(
        [
            "evaluate",
            "--model",
            str(tiny_models[0]),
            "--data",
            str(held_out),
            "--steps",
            "2",
            "--no-progress",
            "--out",
            str(tmp_path / "out"),
            "--reuse",
            str(tmp_path),
        ]
    )
    assert code != 0
    assert "not a `sadm evaluate` output" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_two_models_that_share_variant_steps_and_folder_name_get_rows_of_their_own(held_out, tmp_path):
    torch = pytest.importorskip("torch")
    folders = []
    for run, seed in (("run-a", 0), ("run-b", 1)):
        torch.manual_seed(seed)
        model = SADM(preset("tiny"))
        torch.nn.init.normal_(model.unet.output[-1].weight, std=0.05)  # zero at init: make the two differ
        folders.append(save_model(tmp_path / run / "step-00000100", model))
    out = tmp_path / "evaluation"
    assert evaluate_single_setting(folders, held_out, out) == 0
    rows = read_rows(out / "per_frame.csv")
    names = sorted({r["method"] for r in rows})
    assert len(names) == 2 and names[1] == names[0] + " #2"
    scores = [[r["psnr"] for r in rows if r["method"] == name] for name in names]
    assert scores[0] != scores[1]  # each model was run, not one row copied under two names


def evaluate_single_setting(models, held_out, out) -> int:
    """`sadm evaluate` of `models` on one held-out subject, single setting, no baselines, 2 steps."""
    models = [option for model in models for option in ("--model", str(model))]
    common = [
        "--steps",
        "2",
        "--settings",
        "single",
        "--baselines",
        "none",
        "--subjects",
        "1",
        "--no-progress",
        "--device",
        "cpu",
    ]
    return main(["evaluate", *models, "--data", str(held_out), "--out", str(out), *common])


def test_a_sadm_trained_with_the_conditioning_loss_is_named_apart_from_the_papers(held_out, tmp_path):
    config = preset("tiny").updated({"diffusion": {"conditioning_loss": 0.5}})
    folders = [
        save_model(tmp_path / "paper", SADM(preset("tiny"))),
        save_model(tmp_path / "regressing-c", SADM(config)),
    ]
    out = tmp_path / "evaluation"
    assert evaluate_single_setting(folders, held_out, out) == 0
    assert sorted({r["method"] for r in read_rows(out / "per_frame.csv")}) == ["SADM", "SADM + L2 on c (w=0.5)"]


def test_reuse_skips_a_model_whose_own_native_path_changed(held_out, tiny_models, tmp_path, capsys):
    """Same weights, but config.json now names another native path: its rows mean something else."""
    import shutil

    common = ["--data", str(held_out), "--steps", "2", "--subjects", "1", "--no-progress", "--device", "cpu"]
    common += ["--settings", "missing", "--baselines", "none"]
    first = tmp_path / "first"
    assert main(["evaluate", "--model", str(tiny_models[0]), *common, "--out", str(first)]) == 0
    record = json.loads((first / "evaluation.json").read_text(encoding="utf-8"))
    assert record["sampling"]["SADM"]["native"] == "warp"
    changed = shutil.copytree(tiny_models[0], tmp_path / "changed" / "sadm")
    config = json.loads((changed / "config.json").read_text(encoding="utf-8"))
    (changed / "config.json").write_text(json.dumps({**config, "native": "register"}), encoding="utf-8")
    second = tmp_path / "second"
    assert main(["evaluate", "--model", str(changed), *common, "--out", str(second), "--reuse", str(first)]) == 0
    assert "SADM not reused (its native differs)" in capsys.readouterr().err
    assert json.loads((second / "evaluation.json").read_text(encoding="utf-8"))["reused"] == {}


def test_calibrate_fits_on_validation_data_stores_it_and_evaluate_reports_the_calibrated_maps(
    held_out, tiny_models, tmp_path, capsys
):
    """Issue 28: `sadm calibrate --apply` writes the fit into the model's config.json; `sadm evaluate
    --samples N` then scores calibrated σ maps (coverage table, per-frame CSV, reliability diagram)."""
    import shutil

    model = tmp_path / "calibrated-model"
    shutil.copytree(tiny_models[0], model)
    common = ["--data", str(held_out), "--steps", "2", "--samples", "2", "--no-progress", "--device", "cpu"]
    fitted = tmp_path / "fit"
    assert main(["calibrate", "--model", str(model), *common, "--out", str(fitted), "--apply"]) == 0
    stored = json.loads((model / "config.json").read_text(encoding="utf-8"))["uncertainty"]
    assert stored == json.loads((fitted / "calibration.json").read_text(encoding="utf-8"))
    assert stored["samples"] == 2 and "all" in stored["buckets"] and "one" in stored["buckets"]
    refitted = tmp_path / "refit"  # from the saved validation voxels, without generating again
    assert main(["calibrate", "--model", str(model), "--refit", str(fitted), "--out", str(refitted)]) == 0
    assert json.loads((refitted / "calibration.json").read_text(encoding="utf-8")) == stored

    out = tmp_path / "evaluation"
    assert main(["evaluate", "--model", str(model), *common, "--out", str(out), "--baselines", "copy-last"]) == 0
    table = (out / "table.md").read_text(encoding="utf-8")
    assert "**The σ maps**" in table and "uncalibrated" not in table
    spread = read_rows(out / "spread_per_frame.csv")
    assert spread and all(row["calibrated"] == "True" for row in spread)
    assert {row["setting"] for row in spread} == {"single", "missing", "full"}
    # fitted on these very sequences: the pooled 95 % band holds about its share
    record = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))
    pooled = next(e for e in record["spread"] if e["setting"] == "all")
    assert 0.85 <= pooled["cover_95"] <= 1.0
    assert (out / "reliability.png").stat().st_size > 0


def test_calibrate_refuses_the_synthetic_test_subjects_and_a_single_draw(held_out, tiny_models, tmp_path, capsys):
    (held_out / "synthetic.json").write_text('{"kind": "cardiac", "seed": 1000}', encoding="utf-8")
    common = ["--model", str(tiny_models[0]), "--data", str(held_out), "--no-progress"]
    assert main(["calibrate", *common, "--out", str(tmp_path / "a")]) == 2
    assert "test subjects (seed 1000)" in capsys.readouterr().err
    (held_out / "synthetic.json").unlink()
    assert main(["calibrate", *common, "--samples", "1", "--out", str(tmp_path / "b")]) == 2
    assert "--samples must be at least 2" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
