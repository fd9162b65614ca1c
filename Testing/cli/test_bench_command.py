"""`sadm bench` on a tiny model: every case measured, gaps to the reference, table and JSON written."""

from __future__ import annotations

import json

import pytest

from sadm.cli import main
from sadm.config import preset
from sadm.evaluation.bench import BenchCase, bench_cases, fastest_within
from sadm.networks.sadm import SADM
from sadm.storage.checkpoint import save_model


@pytest.fixture(scope="module")
def tiny_twelve_frame_model(tmp_path_factory):
    config = preset("tiny").updated({"max_frames": 12})
    return save_model(tmp_path_factory.mktemp("models") / "tiny-12", SADM(config))


@pytest.mark.slow
def test_bench_measures_every_case_against_the_reference(tiny_twelve_frame_model, tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(
        [
            "bench",
            "--model",
            str(tiny_twelve_frame_model),
            "--samplers",
            "dpm++2m,ddim",
            "--steps",
            "1,2",
            "--reference-steps",
            "3",
            "--subjects",
            "1",
            "--repeats",
            "1",
            "--out",
            str(out),
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    record = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    cases = [(c["sampler"], c["steps"]) for c in record["cases"]]
    assert cases == [("ancestral", 3), ("dpm++2m", 1), ("dpm++2m", 2), ("ddim", 1), ("ddim", 2)]
    reference = record["cases"][0]
    assert reference["ssim_gap"] == 0.0 and reference["speedup_per_frame"] == 1.0
    for case in record["cases"]:
        assert case["frame_seconds"] > 0 and case["sequence_seconds"] > 0  # measured, never compared (wall clock)
        assert case["generated_frames"] == 11 and case["peak_rss_gib"] > 0 and case["peak_cuda_gib"] is None
        assert -1 <= case["ssim"] <= 1
    table = (out / "bench.md").read_text(encoding="utf-8")
    assert table.count("\n| ") == 1 + len(cases)  # header + one row per case
    assert "Fastest within 0.01 SSIM of ancestral 3" in capsys.readouterr().out


def test_cases_put_the_reference_first_and_never_twice():
    reference = BenchCase("ancestral", 1000)
    cases = bench_cases(["dpm++2m", "ancestral"], [10, 1000], reference)
    assert cases == [reference, BenchCase("dpm++2m", 10), BenchCase("dpm++2m", 1000), BenchCase("ancestral", 10)]


def test_the_recommendation_is_the_fastest_case_within_the_tolerance():
    records = [
        {"sampler": "ancestral", "steps": 1000, "frame_seconds": 10.0, "ssim_gap": 0.0},
        {"sampler": "dpm++2m", "steps": 10, "frame_seconds": 0.1, "ssim_gap": 0.02},
        {"sampler": "dpm++2m", "steps": 20, "frame_seconds": 0.2, "ssim_gap": 0.005},
        {"sampler": "ddim", "steps": 50, "frame_seconds": 0.5, "ssim_gap": -0.001},
    ]
    assert fastest_within(records, 0.01)["steps"] == 20
    assert fastest_within(records, 0.001)["sampler"] == "ddim"
    assert fastest_within(records[:2], 0.01) is None


def test_cases_cross_every_guidance_weight_and_keep_the_reference_once():
    reference = BenchCase("ancestral", 1000)
    cases = bench_cases(["ddim"], [10, 20], reference, [None, 0.0])
    assert cases == [
        reference,
        BenchCase("ddim", 10),
        BenchCase("ddim", 10, 0.0),
        BenchCase("ddim", 20),
        BenchCase("ddim", 20, 0.0),
    ]
    assert [c.label for c in cases[1:3]] == ["ddim 10", "ddim 10 w=0"]


@pytest.mark.slow
def test_each_guidance_weight_reaches_the_sampler(tiny_twelve_frame_model, tmp_path, monkeypatch):
    import sadm.generation.autoregressive as autoregressive

    used = []
    guided = autoregressive.guided_eps_fn
    monkeypatch.setattr(
        autoregressive, "guided_eps_fn", lambda d, c, w, batch=True: used.append(w) or guided(d, c, w, batch)
    )
    out = tmp_path / "bench"
    cases = ["--samplers", "ddim", "--steps", "1", "--guidance", "0,0.5", "--reference-steps", "1"]
    small = ["--subjects", "1", "--repeats", "1", "--frames", "3", "--no-progress", "--device", "cpu"]
    code = main(["bench", "--model", str(tiny_twelve_frame_model), *cases, *small, "--out", str(out)])
    assert code == 0
    record = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    default = preset("tiny").diffusion.guidance
    assert [(c["sampler"], c["guidance"]) for c in record["cases"]] == [
        ("ancestral", default),
        ("ddim", 0.0),
        ("ddim", 0.5),
    ]
    assert set(used) == {default, 0.0, 0.5}
    assert "| ddim | 1 | 0.5 |" in (out / "bench.md").read_text(encoding="utf-8")


def test_bad_bench_options_are_refused(tiny_twelve_frame_model, tmp_path, capsys):
    code = main(["bench", "--model", str(tiny_twelve_frame_model), "--samplers", "euler", "--out", str(tmp_path / "b")])
    assert code == 2 and "--samplers 'euler': choose from" in capsys.readouterr().err
    code = main(["bench", "--model", str(tiny_twelve_frame_model), "--steps", "10,0", "--out", str(tmp_path / "b")])
    assert code == 2 and "at least 1" in capsys.readouterr().err
    code = main(
        ["bench", "--model", str(tiny_twelve_frame_model), "--guidance", "0.1,-1", "--out", str(tmp_path / "b")]
    )
    assert code == 2 and "guidance w must be a finite number >= 0" in capsys.readouterr().err
    code = main(
        ["bench", "--model", str(tiny_twelve_frame_model), "--guidance", "strong", "--out", str(tmp_path / "b")]
    )
    assert code == 2 and "--guidance 'strong': give comma-separated numbers" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_bench_on_the_first_frames_only(tiny_twelve_frame_model, tmp_path):
    out = tmp_path / "bench"
    code = main(
        [
            "bench",
            "--model",
            str(tiny_twelve_frame_model),
            "--samplers",
            "ddim",
            "--steps",
            "1",
            "--reference-steps",
            "2",
            "--subjects",
            "1",
            "--repeats",
            "1",
            "--frames",
            "4",
            "--out",
            str(out),
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    record = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    assert record["frames"] == 4 and all(case["generated_frames"] == 3 for case in record["cases"])


def test_a_bench_of_one_frame_is_refused(tiny_twelve_frame_model, tmp_path, capsys):
    code = main(["bench", "--model", str(tiny_twelve_frame_model), "--frames", "1", "--out", str(tmp_path / "b")])
    assert code == 2 and "--frames 1: a sequence needs at least 2 frames" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
