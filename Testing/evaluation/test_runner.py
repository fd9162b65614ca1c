"""The evaluation runner's bookkeeping with an oracle method, and the summary over subjects."""

from __future__ import annotations

import numpy as np
import pytest

from sadm.evaluation.baselines import BASELINES
from sadm.evaluation.runner import BaselineMethod, HeldOutSequence, Prediction, evaluate
from sadm.evaluation.tables import markdown_table, summarize
from sadm_testing import moving_blob_sequence


class Oracle:
    """Knows the truth: every score must be perfect."""

    name = "oracle"

    def __init__(self, truth: np.ndarray) -> None:
        self.truth = truth

    def predict(self, frames, roles, times, seed, grid_frames=None):
        native = {i: self.truth[i].copy() for i, role in enumerate(roles) if role != "observed"}
        grid = None if grid_frames is None else {i: grid_frames[i].copy() for i in native}
        return Prediction(native, grid)


def test_every_setting_scores_each_predicted_frame_and_an_oracle_is_perfect():
    frames = np.stack(moving_blob_sequence(5, (8, 16, 16))).astype(np.float64)
    frames /= frames.max()
    sequence = HeldOutSequence("s0", frames, tuple(float(t) for t in range(5)))
    result = evaluate([Oracle(frames)], [sequence], ["single", "missing", "full"], seed=3)
    by_setting = {s: [r for r in result.rows if r["setting"] == s] for s in ("single", "missing", "full")}
    assert [r["frame"] for r in by_setting["single"]] == [1, 2, 3, 4]
    assert [r["frame"] for r in by_setting["full"]] == [1, 2, 3, 4]
    assert 1 <= len(by_setting["missing"]) <= 4
    assert all(r["ssim"] == pytest.approx(1.0) and r["nrmse"] == 0.0 for r in result.rows)
    assert all(r["grid"] == "native" and r["change"] == pytest.approx(1.0) for r in result.rows)


def test_frames_are_scored_on_the_native_grid_and_on_the_model_grid_when_asked():
    """A native-grid truth is resampled onto the model grid for the model-grid rows; a baseline runs on
    each grid's own frames, so copy-last scores its change correlation 0 on both."""
    frames = np.stack(moving_blob_sequence(4, (8, 32, 32))).astype(np.float32)
    frames /= frames.max()
    sequence = HeldOutSequence("s0", frames, (0.0, 1.0, 2.0, 3.0))
    methods = [Oracle(frames), BaselineMethod("copy-last", BASELINES["copy-last"])]
    rows = evaluate(methods, [sequence], ["single"], model_grid=(4, 8, 8)).rows
    assert {(r["method"], r["grid"]) for r in rows} == {
        (m, g) for m in ("oracle", "copy-last") for g in ("native", "model")
    }
    assert all(r["ssim"] == pytest.approx(1.0) for r in rows if r["method"] == "oracle")
    assert all(r["change"] == 0.0 for r in rows if r["method"] == "copy-last")
    native = {r["frame"]: r["psnr"] for r in rows if r["method"] == "copy-last" and r["grid"] == "native"}
    coarse = {r["frame"]: r["psnr"] for r in rows if r["method"] == "copy-last" and r["grid"] == "model"}
    assert native != coarse  # the model grid blurs the blob's motion: the two tables differ
    summary = summarize(
        [r for r in rows if r["method"] == "copy-last"]
        + [dict(r, method="oracle", psnr=99.0) for r in rows if r["method"] == "oracle"]
    )
    assert {s["grid"] for s in summary} == {"native", "model"}
    native_table = markdown_table(summary, ["oracle", "copy-last"], ["single"], grid="native")
    assert "change r (single)" in native_table and "| copy-last |" in native_table


def test_summary_averages_frames_per_subject_before_subjects():
    rows = [
        {
            "method": "m",
            "setting": "single",
            "grid": "native",
            "subject": "a",
            "frame": 1,
            "ssim": 0.2,
            "psnr": 10.0,
            "nrmse": 0.5,
        },
        {
            "method": "m",
            "setting": "single",
            "grid": "native",
            "subject": "a",
            "frame": 2,
            "ssim": 0.4,
            "psnr": 20.0,
            "nrmse": 0.3,
        },
        {
            "method": "m",
            "setting": "single",
            "grid": "native",
            "subject": "b",
            "frame": 1,
            "ssim": 0.9,
            "psnr": 30.0,
            "nrmse": 0.1,
        },
    ]
    ssim = next(s for s in summarize(rows) if s["metric"] == "ssim")
    assert ssim["mean"] == pytest.approx((0.3 + 0.9) / 2) and ssim["std"] == pytest.approx(0.3)
    assert ssim["subjects"] == 2
    table = markdown_table(summarize(rows), ["m"], ["single"])
    assert "| m | **0.600** | **22.50** | **0.250** |" in table
