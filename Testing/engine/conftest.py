"""Fixtures for the engine tests: tiny models and sequences that the tests build themselves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sadm.checkpoint import save_model
from sadm.config import preset
from sadm.model import SADM


@pytest.fixture
def tiny_config():
    return preset("tiny")


@pytest.fixture
def tiny_model(tiny_config):
    torch.manual_seed(0)
    return SADM(tiny_config).eval()


@pytest.fixture
def tiny_model_folder(tmp_path, tiny_model):
    return save_model(tmp_path / "tiny-model", tiny_model)


def moving_blob_sequence(length: int = 4, shape=(8, 16, 16), scale: float = 1.0) -> list[np.ndarray]:
    """A bright ball that moves along i and grows over time on a dim background (k, j, i)."""
    k, j, i = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    frames = []
    for t in range(length):
        centre = (shape[0] / 2, shape[1] / 2, 4.0 + 2.5 * t)
        radius = 3.0 + 0.5 * t
        distance = np.sqrt((k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2)
        frame = 0.1 + 0.9 / (1 + np.exp((distance - radius) * 2.0))
        frames.append((frame * scale).astype(np.float32))
    return frames
