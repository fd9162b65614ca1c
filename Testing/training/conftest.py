"""A tiny longitudinal data set on disk (4D NIfTI files) and a tiny training config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from sadm_testing import moving_blob_sequence


def write_4d_nifti(path: Path, frames: list[np.ndarray]) -> None:
    image = sitk.JoinSeries([sitk.GetImageFromArray(f) for f in frames])
    image.SetSpacing((1.5, 1.5, 3.0, 1.0))
    sitk.WriteImage(image, str(path))


@pytest.fixture
def blob_dataset(tmp_path) -> Path:
    """Six subjects, each a ball moving and growing over 4 frames, with its own speed and brightness."""
    root = tmp_path / "data"
    root.mkdir()
    for subject in range(6):
        frames = moving_blob_sequence(4, (8, 16, 16), scale=100.0 + 20 * subject)
        write_4d_nifti(root / f"subject{subject:02d}.nii.gz", frames)
    return root


@pytest.fixture
def tiny_experiment(tmp_path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(
        json.dumps(
            {
                "model": {"preset": "tiny", "max_frames": 4},
                "training": {
                    "steps": 6,
                    "batch_size": 2,
                    "lr": 1e-3,
                    "warmup_steps": 2,
                    "checkpoint_every": 3,
                    "validate_every": 3,
                    "val_fraction": 0.2,
                    "val_generate": 1,
                    "val_sampler_steps": 2,
                    "log_every": 1,
                },
            }
        )
    )
    return path
