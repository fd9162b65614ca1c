"""Configs are frozen, so every config object in the program has passed its validation."""

import dataclasses

import pytest

from sadm.config import ModelConfig, TrainConfig, preset
from sadm.errors import ConfigError


def test_a_config_cannot_be_changed_in_place():
    config = preset("tiny")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_frames = 12
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.attention.context = "bidirectional"
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().steps = 5


def test_updated_merges_nested_changes_and_keeps_the_rest():
    config = preset("tiny")
    changed = config.updated({"max_frames": 4, "attention": {"context": "bidirectional"}})
    assert (changed.max_frames, changed.attention.context) == (4, "bidirectional")
    assert changed.attention.dim == config.attention.dim and changed.unet == config.unet
    assert config.max_frames == 6 and config.attention.context == "causal"  # the original is untouched
    assert ModelConfig.from_dict(changed.to_dict()) == changed


def test_updated_and_replace_validate():
    config = preset("tiny")
    with pytest.raises(ConfigError, match="divisible by patch_size"):
        config.updated({"grid": [8, 16, 18]})
    with pytest.raises(ConfigError, match="max_frames must be at least 2"):
        dataclasses.replace(config, max_frames=1)
    with pytest.raises(ConfigError, match="training.steps must be at least 1"):
        dataclasses.replace(TrainConfig(), steps=0)


def test_the_native_path_is_the_models_own_and_checked():
    assert preset("tiny").native == "warp"
    assert preset("tiny").updated({"native": "register"}).native == "register"
    with pytest.raises(ConfigError, match="native must be one of"):
        preset("tiny").updated({"native": "sharpen"})
