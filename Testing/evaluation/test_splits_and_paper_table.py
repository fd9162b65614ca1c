"""Choices are made on validation subjects, so `sadm bench` scores them unless told otherwise; the
paper's own protocol (the last frame alone, in recent work's units) is a table of its own."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from sadm.cli.main import build_parser
from sadm.evaluation.held_out import HELD_OUT_SEED, VALIDATION_SEED, synthetic_held_out
from sadm.evaluation.tables import last_frame_rows, paper_units_table


def test_bench_scores_validation_subjects_unless_told():
    assert build_parser().parse_args(["bench"]).split == "validation"
    assert build_parser().parse_args(["bench", "--split", "test"]).split == "test"
    assert VALIDATION_SEED != HELD_OUT_SEED
    engine = SimpleNamespace(config=SimpleNamespace(max_frames=2))
    validation, test = synthetic_held_out(engine, 1), synthetic_held_out(engine, 1, "test")
    assert validation[0].subject == "validation-0" and test[0].subject == "test-0"
    assert not np.array_equal(validation[0].frames, test[0].frames)


def _row(method, setting, subject, frame, ssim):
    return {"method": method, "setting": setting, "grid": "native", "subject": subject, "frame": frame,
            "ssim": ssim, "psnr": 30.0 + frame, "nrmse": 0.1}  # fmt: skip


def test_the_paper_table_scores_each_subject_s_last_frame_in_its_units():
    rows = [
        _row("SADM", "single", "a", 1, 0.5),
        _row("SADM", "single", "a", 2, 0.9),  # a's last frame
        _row("SADM", "single", "b", 3, 0.7),  # b's last frame
        _row("SADM", "missing", "a", 1, 0.1),  # not the last frame: left out
        {**_row("SADM", "single", "a", 2, 0.0), "grid": "model"},  # another grid: left out
    ]
    assert [(r["subject"], r["frame"]) for r in last_frame_rows(rows)] == [("a", 2), ("b", 3)]
    table = paper_units_table(rows, ["SADM"], ["single", "missing"])
    assert "| SADM | 80.0 / – | 32.50 / – | 0.100 / – |" in table  # SSIM ×100 of (0.9 + 0.7) / 2
    assert "Subjects per setting: 2 / 0" in table


@pytest.mark.parametrize("split", ["validation", "test"])
def test_each_split_is_named_in_its_subjects(split):
    engine = SimpleNamespace(config=SimpleNamespace(max_frames=2))
    assert all(s.subject.startswith(split) for s in synthetic_held_out(engine, 2, split))
