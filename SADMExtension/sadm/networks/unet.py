"""The 3D conditional UNet that predicts ε from z_t and the conditioning volume, given λ_t."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from sadm.config import UNetConfig
from sadm.networks.layers import sinusoidal_embedding


def zero_module(module: nn.Module) -> nn.Module:
    """Zero-initialise the last layer of a residual branch so each block starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm–SiLU–conv residual block with the logSNR embedding as a scale and shift."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels)
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_module(nn.Conv3d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv3d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class VoxelAttention(nn.Module):
    """Multi-head self-attention over all voxels of a low-resolution feature map, with a residual."""

    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.to_qkv = nn.Conv3d(channels, 3 * channels, 1)
        self.to_out = zero_module(nn.Conv3d(channels, channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        _, _, d, h, w = x.shape
        q, k, v = rearrange(
            self.to_qkv(self.norm(x)), "b (three n c) d h w -> three b n (d h w) c", three=3, n=self.heads
        )
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.to_out(rearrange(out, "b n (d h w) c -> b (n c) d h w", d=d, h=h, w=w))


class Downsample(nn.Module):
    """Strided 3D conv halving every spatial axis."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour ×2 then a 3D conv (no checkerboard artefacts)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Stage(nn.Module):
    """A ResBlock optionally followed by voxel attention; the unit the UNet's levels are made of."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, config: UNetConfig, attend: bool) -> None:
        super().__init__()
        self.res = ResBlock(in_channels, out_channels, emb_dim, config.norm_num_groups, config.dropout)
        self.attn = VoxelAttention(out_channels, config.heads, config.norm_num_groups) if attend else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        x = self.res(x, emb)
        return x if self.attn is None else self.attn(x)


class UNet3D(nn.Module):
    """ε-prediction UNet: (B, in_channels, D, H, W), λ (B,) -> (B, 1, D, H, W).

    in_channels = 1 (z_t) + conditioning channels. λ_t enters every residual block through a
    sinusoidal embedding of λ rescaled to [0, 1000] and an MLP.
    """

    def __init__(self, in_channels: int, config: UNetConfig, log_snr_range: tuple[float, float]) -> None:
        super().__init__()
        self.log_snr_range = log_snr_range
        base = config.channels[0]
        self.emb_dim = 4 * base
        self.embed = nn.Sequential(nn.Linear(base, self.emb_dim), nn.SiLU(), nn.Linear(self.emb_dim, self.emb_dim))
        self.input = nn.Conv3d(in_channels, base, 3, padding=1)

        self.down = nn.ModuleList()
        skip_channels = [base]
        channels = base
        levels = len(config.channels)
        for level, (out_channels, attend) in enumerate(zip(config.channels, config.attention_levels)):
            for _ in range(config.num_res_blocks):
                self.down.append(Stage(channels, out_channels, self.emb_dim, config, attend))
                channels = out_channels
                skip_channels.append(channels)
            if level < levels - 1:
                self.down.append(Downsample(channels))
                skip_channels.append(channels)

        self.middle = nn.ModuleList(
            [
                Stage(channels, channels, self.emb_dim, config, attend=True),
                Stage(channels, channels, self.emb_dim, config, attend=False),
            ]
        )

        self.up = nn.ModuleList()
        for level in reversed(range(levels)):
            out_channels, attend = config.channels[level], config.attention_levels[level]
            for _ in range(config.num_res_blocks + 1):
                self.up.append(Stage(channels + skip_channels.pop(), out_channels, self.emb_dim, config, attend))
                channels = out_channels
            if level > 0:
                self.up.append(Upsample(channels))

        self.output = nn.Sequential(
            nn.GroupNorm(config.norm_num_groups, channels), nn.SiLU(), zero_module(nn.Conv3d(channels, 1, 3, padding=1))
        )

    def embed_log_snr(self, log_snr: torch.Tensor) -> torch.Tensor:
        low, high = self.log_snr_range
        scaled = (log_snr.float() - low) / (high - low) * 1000.0
        return self.embed(sinusoidal_embedding(scaled, self.embed[0].in_features))

    def forward(self, x: torch.Tensor, log_snr: torch.Tensor) -> torch.Tensor:
        emb = self.embed_log_snr(log_snr)
        h = self.input(x)
        skips = [h]
        for block in self.down:
            h = block(h, emb)
            skips.append(h)
        for block in self.middle:
            h = block(h, emb)
        for block in self.up:
            h = block(h) if isinstance(block, Upsample) else block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.output(h)
