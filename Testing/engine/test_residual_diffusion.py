"""diffusion.residual_scale: the UNet diffuses the frame's residual against c, and generation adds
c back — checked in the loss and in Alg. 2 with a stand-in sampler whose answer is known."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import sadm.generation.autoregressive as autoregressive
from sadm.config import ConfigError, ModelConfig, preset
from sadm.diffusion.catalogue import CATALOGUE
from sadm.diffusion.gaussian import diffusion_loss
from sadm.generation.request import SamplingOptions
from sadm.networks.sadm import SADM
from sadm.training.batches import make_batch


def residual_model(scale: float = 0.1, variant: str = "sadm") -> SADM:
    config = preset("tiny").updated({"variant": variant, "diffusion": {"residual_scale": scale}})
    return SADM(config)


def test_the_loss_diffuses_the_scaled_residual_of_the_frame_against_c():
    model = residual_model(0.1)
    batch = make_batch(
        torch.rand(2, model.config.max_frames, *model.config.grid), generator=torch.Generator().manual_seed(0)
    )
    c = model.condition(batch["context"], batch["context_mask"], batch["positions"], batch["target_position"])
    residual = (batch["target"] - (2 * c - 1)) / 0.1
    d = model.config.diffusion
    by_hand = diffusion_loss(
        model.network_output,
        residual,
        c,
        d.log_snr_min,
        d.log_snr_max,
        d.p_uncond,
        torch.Generator().manual_seed(1),
        d.prediction,
    )
    torch.testing.assert_close(model.loss(batch, torch.Generator().manual_seed(1)), by_hand)
    torch.testing.assert_close(
        model.frame_from_diffused(model.diffused_from_frame(batch["target"], c), c), batch["target"]
    )


@pytest.mark.parametrize("scale", [0.0, 0.1])
def test_generation_adds_c_back_to_the_sampled_residual(scale, monkeypatch):
    """A sampler that returns zeros: the paper's model then yields grey (x = 0 ↔ 0.5), a residual
    model yields c itself — Aθ's regression of the frame."""
    model = residual_model(scale).eval()
    zeros = replace(CATALOGUE["ddim"], function=lambda eps_fn, noise, log_snrs, **_: torch.zeros_like(noise))
    monkeypatch.setitem(CATALOGUE, "ddim", zeros)
    length = 4
    sequence = torch.rand(1, length, *model.config.grid)
    roles = ["observed", "missing", "observed", "future"]
    times = torch.arange(length, dtype=torch.float32)
    filled = autoregressive.autoregressive_generate(model, sequence, roles, times, SamplingOptions("ddim", 2))
    with torch.no_grad():
        context = filled.clone()
        context[:, 3] = 0.0  # frame 3 saw frame 1 generated and itself not yet
        members = autoregressive.context_indices(length, 3, model.config.attention.context)
        c = model.condition(
            context[:, members], torch.ones(1, len(members), dtype=torch.bool), times[members][None], times[3:4]
        )
    expected = c[:, 0].clamp(0, 1) if scale else torch.full_like(c[:, 0], 0.5)
    torch.testing.assert_close(filled[:, 3], expected)
    torch.testing.assert_close(filled[:, [0, 2]], sequence[:, [0, 2]])  # observed frames pass through


def test_the_ablations_ignore_the_residual_and_bad_scales_are_refused():
    assert not residual_model(0.1, "diffusion-only").is_residual
    assert not residual_model(0.1, "attention-only").is_residual
    config = preset("tiny").to_dict()
    config["diffusion"]["residual_scale"] = -1.0
    with pytest.raises(ConfigError, match="residual_scale must be 0"):
        ModelConfig.from_dict(config)
    config["diffusion"]["residual_scale"] = 0.1
    config["attention"]["conditioning_channels"] = 2
    with pytest.raises(ConfigError, match="c must be one volume"):
        ModelConfig.from_dict(config)
