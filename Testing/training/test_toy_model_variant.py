"""ARCHITECTURE.md, "Where to add", a model variant: a config field (here the residual diffusion's
`diffusion.residual_scale`, standing in for a new one), an experiment file that names its recipe with
"base" and gives only what differs, and the rest follows — it builds, trains a step, saves, loads in
the Engine, generates, is named apart by `sadm evaluate`, and a config.json from before the field
loads with its default."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from sadm.config import ModelConfig
from sadm.evaluation.naming import model_name
from sadm.generation.engine import Engine
from sadm.generation.request import build_request
from sadm.networks.sadm import SADM
from sadm.storage.checkpoint import read_config, save_model
from sadm.training.experiment import model_config_from, read_experiment
from sadm_testing import moving_blob_sequence, train_step

RECIPES = Path(__file__).resolve().parents[2] / "configs"


def test_a_toy_variant_is_one_field_and_an_experiment_file(tmp_path):
    toy = tmp_path / "toy-residual.json"
    toy.write_text(
        json.dumps(
            {
                "description": "A toy variant: the bundled recipe with a residual UNet.",
                "base": str(RECIPES / "cardiac-demo.json"),
                "model": {"diffusion": {"residual_scale": 0.25}, "grid": [8, 16, 16], "max_frames": 4},
            }
        )
    )
    recipe = model_config_from(read_experiment(RECIPES / "cardiac-demo.json")["model"])
    config = model_config_from(read_experiment(toy)["model"])
    assert config.diffusion.residual_scale == 0.25 and config.unet == recipe.unet  # only what it gave differs

    torch.manual_seed(0)
    model = SADM(config)
    sequence = torch.from_numpy(np.stack(moving_blob_sequence(4, config.grid)))[None]
    train_step(model, torch.optim.AdamW(model.parameters(), lr=1e-3), sequence.expand(2, -1, -1, -1, -1))
    folder = save_model(tmp_path / "toy-model", model.eval())

    engine = Engine.load(folder, "cpu")
    frames = [*sequence[0].numpy()[:3], None]
    result = engine.generate(frames, build_request("o,o,o", 3, future=1, steps=2))
    assert result.mean[3].shape == tuple(config.grid)
    assert model_name(engine.config) == f"{model_name(recipe)}, residual (s=0.25)"

    # A config.json written before the field existed loads as the paper's model (the field's default).
    stored = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    del stored["diffusion"]["residual_scale"]
    (folder / "config.json").write_text(json.dumps(stored), encoding="utf-8")
    assert read_config(folder).diffusion.residual_scale == ModelConfig().diffusion.residual_scale == 0.0
