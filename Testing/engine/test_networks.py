"""Shapes of Aθ, the UNet and SADM for several sequence lengths, roles and batch mixes."""

from __future__ import annotations

import pytest
import torch

from sadm.config import ModelConfig, preset
from sadm.errors import ConfigError
from sadm.networks.attention import AttentionModule
from sadm.networks.sadm import SADM
from sadm.networks.unet import UNet3D
from sadm.training.batches import make_batch


@pytest.mark.parametrize("length", [1, 2, 5])
def test_attention_module_turns_any_context_length_into_one_conditioning_volume(tiny_config, length):
    module = AttentionModule(tiny_config)
    frames = torch.rand(2, length, *tiny_config.grid)
    mask = torch.ones(2, length, dtype=torch.bool)
    positions = torch.arange(length, dtype=torch.float32).expand(2, length)
    out = module(frames, mask, positions, torch.full((2,), float(length)))
    assert out.shape == (2, 1, *tiny_config.grid)
    assert torch.isfinite(out).all()


def test_padding_of_shorter_sequences_does_not_change_their_conditioning(tiny_config):
    torch.manual_seed(1)
    module = AttentionModule(tiny_config).eval()
    short = torch.rand(1, 2, *tiny_config.grid)
    positions = torch.arange(4, dtype=torch.float32)[None]
    alone = module(short, torch.ones(1, 2, dtype=torch.bool), positions[:, :2], torch.tensor([2.0]))
    padded = torch.cat([short, torch.rand(1, 2, *tiny_config.grid)], dim=1)
    mixed_frames = torch.cat([padded, torch.rand(1, 4, *tiny_config.grid)])
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    mixed = module(mixed_frames, mask, positions.expand(2, 4), torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(mixed[:1], alone, rtol=1e-4, atol=1e-5)


def test_a_missing_frame_still_carries_its_position(tiny_config):
    """Zero volumes get non-zero tokens that differ with their frame index (not a mask)."""
    module = AttentionModule(tiny_config).eval()
    zeros = torch.zeros(1, 3, *tiny_config.grid)
    tokens = module.embed(zeros, torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([3.0]))
    assert tokens[0, 1].abs().mean() > 0
    assert not torch.allclose(tokens[0, 1], tokens[0, 2])


def test_unet_predicts_noise_of_the_frame_shape_for_a_batch_of_log_snrs(tiny_config):
    unet = UNet3D(2, tiny_config.unet, (-20.0, 20.0))
    x = torch.randn(3, 2, *tiny_config.grid)
    assert unet(x, torch.tensor([-20.0, 0.0, 20.0])).shape == (3, 1, *tiny_config.grid)


def test_unet_uses_log_snr_in_every_residual_block(tiny_config):
    unet = UNet3D(2, tiny_config.unet, (-20.0, 20.0))
    from sadm.networks.unet import ResBlock

    blocks = [m for m in unet.modules() if isinstance(m, ResBlock)]
    assert len(blocks) >= 6 and all(b.emb.in_features == unet.emb_dim for b in blocks)


@pytest.mark.parametrize("context", ["causal", "bidirectional"])
@pytest.mark.parametrize("variant", ["sadm", "diffusion-only", "attention-only"])
def test_every_variant_trains_on_a_batch_of_sequences_of_different_lengths(variant, context):
    config = preset("tiny").updated({"variant": variant, "attention": {"context": context}})
    model = SADM(config)
    sequences = torch.rand(3, config.max_frames, *config.grid)
    batch = make_batch(sequences, lengths=[6, 2, 4], generator=torch.Generator().manual_seed(0), context=context)
    loss = model.loss(batch, torch.Generator().manual_seed(1))
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_config_round_trips_through_json_exactly():
    config = preset("paper")
    assert ModelConfig.from_dict(config.to_dict()) == config


def test_grid_not_divisible_by_patches_and_merges_is_refused_with_the_axis_named():
    with pytest.raises(ConfigError, match="grid axis 2 has 20 voxels"):
        ModelConfig(grid=(8, 16, 20), max_frames=4)


def test_conditioning_loss_adds_the_weighted_l2_of_c_against_the_target_to_the_diffusion_loss():
    config = preset("tiny")
    model = SADM(config)
    sequences = torch.rand(2, config.max_frames, *config.grid)
    batch = make_batch(sequences, generator=torch.Generator().manual_seed(0))
    paper = model.loss(batch, torch.Generator().manual_seed(1))
    model.config = model.config.updated({"diffusion": {"conditioning_loss": 0.5}})
    with_regression = model.loss(batch, torch.Generator().manual_seed(1))
    c = model.condition(batch["context"], batch["context_mask"], batch["positions"], batch["target_position"])
    by_hand = torch.mean((2 * c - 1 - batch["target"]) ** 2)
    assert float(by_hand.detach()) > 0.01  # an untrained Aθ is far from the frame, so the term is visible
    torch.testing.assert_close(with_regression, paper + 0.5 * by_hand)
    with_regression.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("weight, channels, message", [(-0.1, 1, "must be 0"), (0.5, 2, "c must be one volume")])
def test_conditioning_loss_refuses_a_negative_weight_and_a_multi_channel_c(weight, channels, message):
    config = preset("tiny").to_dict()
    config["diffusion"]["conditioning_loss"] = weight
    config["attention"]["conditioning_channels"] = channels
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_dict(config)
