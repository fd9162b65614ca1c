"""Fixtures for the engine tests: tiny models and sequences that the tests build themselves."""

from __future__ import annotations

import pytest
import torch

from sadm.config import preset
from sadm.networks.sadm import SADM
from sadm.storage.checkpoint import save_model


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
