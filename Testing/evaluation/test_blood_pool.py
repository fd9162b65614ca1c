"""The LV blood-pool volume error (issue 18 item 2): one rule for truth and generated frames alike,
checked against volumes counted by hand, and its place in `evaluate`'s rows and tables."""

from __future__ import annotations

import numpy as np
import pytest

from sadm.evaluation.baselines import BASELINES
from sadm.evaluation.blood_pool import blood_pool_rule
from sadm.evaluation.runner import BaselineMethod, HeldOutSequence, evaluate
from sadm.evaluation.tables import markdown_table, summarize
from sadm.phantoms.cardiac import LV_LABEL, MYO_LABEL

SPACING = (1.0, 1.0, 2.0)  # mm along i, j, k: a voxel is 2 mm³ = 0.002 ml
VOXEL_ML = 0.002


def ed_phantom() -> tuple[np.ndarray, np.ndarray]:
    """A 4×4×4 cavity (blood 1.0) in a myocardial shell (0.3); far away a bright 'RV' block (1.0)."""
    frame = np.zeros((12, 24, 40), np.float32)
    labels = np.zeros(frame.shape, np.int16)
    labels[2:10, 6:18, 4:16] = MYO_LABEL
    labels[4:8, 10:14, 8:12] = LV_LABEL
    frame[labels == MYO_LABEL] = 0.3
    frame[labels == LV_LABEL] = 1.0
    frame[4:8, 10:14, 30:36] = 1.0  # RV blood: 16 voxels in-plane beyond the margin, never counted
    return frame, labels


def test_volumes_match_a_hand_count():
    frame, labels = ed_phantom()
    rule = blood_pool_rule(frame, labels, SPACING)
    assert rule.threshold == pytest.approx(0.65)  # midway between cavity 1.0 and myocardium 0.3
    assert rule.voxel_ml == pytest.approx(VOXEL_ML)
    assert rule.volume_ml(frame) == pytest.approx(64 * VOXEL_ML)  # the RV block is outside the ROI

    systole = frame.copy()
    systole[4:8, 10:14, 8:10] = 0.3  # half the cavity contracted into wall
    assert rule.volume_ml(systole) == pytest.approx(32 * VOXEL_ML)

    drawn_off = frame.copy()
    drawn_off[4:8, 10:14, 12:15] = 0.9  # blood drawn 3 voxels (3 mm) past the ED wall: inside the 4 mm margin
    assert rule.volume_ml(drawn_off) == pytest.approx((64 + 48) * VOXEL_ML)
    dim = frame * 0.5  # a frame whose blood is no brighter than the ED wall counts no blood
    assert rule.volume_ml(dim) == 0.0


def test_a_rule_needs_cavity_and_myocardium():
    frame, labels = ed_phantom()
    with pytest.raises(ValueError, match="no LV cavity or no myocardium"):
        blood_pool_rule(frame, np.where(labels == LV_LABEL, 0, labels), SPACING)


def test_evaluate_reports_the_volume_error_of_each_frame_on_the_native_grid():
    ed, labels = ed_phantom()
    frames = np.stack([ed, ed, ed])
    frames[1, 4:8, 10:14, 8:10] = 0.3  # 32 voxels of blood left
    frames[2, 4:8, 10:14, 8:11] = 0.3  # 16 left
    rule = blood_pool_rule(ed, labels, SPACING)
    sequence = HeldOutSequence("p1", frames, (0.0, 1.0, 2.0), rule)
    rows = evaluate(
        [BaselineMethod("copy-last", BASELINES["copy-last"])], [sequence], ["single"], model_grid=(6, 12, 20)
    ).rows
    native = {r["frame"]: r["lv_ml"] for r in rows if r["grid"] == "native"}
    assert native == {1: pytest.approx(32 * VOXEL_ML), 2: pytest.approx(48 * VOXEL_ML)}  # |64 − 32|, |64 − 16|
    assert all("lv_ml" not in r for r in rows if r["grid"] == "model")  # the rule lives on the native grid
    table = markdown_table(summarize(rows), ["copy-last"], ["single"], grid="native")
    assert "LV blood-pool volume error ml (single)" in table and "0.08" in table  # mean of 0.064 and 0.096
    assert len({line.count("|") for line in table.splitlines()}) == 1  # no stray pipe in a heading splits a column
    assert "LV blood-pool" not in markdown_table(summarize(rows), ["copy-last"], ["single"], grid="model")
