"""Small building blocks shared by Aθ and the UNet: embeddings, transformer sublayers."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def sinusoidal_embedding(values: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer sinusoids of a real value per element: (...,) -> (..., dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=values.device, dtype=torch.float32) / half)
    angles = values.float()[..., None] * freqs
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class FeedForward(nn.Module):
    """Pre-norm transformer MLP with a residual: (N, S, C) -> (N, S, C)."""

    def __init__(self, dim: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class SelfAttention(nn.Module):
    """Pre-norm multi-head self-attention with a residual, via scaled_dot_product_attention.

    (N, S, C) -> (N, S, C); `key_mask` (N, S) is True where a key may be attended to.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = rearrange(self.to_qkv(self.norm(x)), "n s (three h c) -> three n h s c", three=3, h=self.heads)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return x + self.to_out(rearrange(out, "n h s c -> n s (h c)"))


class TimeEmbedding(nn.Module):
    """Embeds a frame's position in the sequence: a learned vector per frame index, or a Fourier
    embedding of a continuous time (ages, ms in the cycle) when the data carry irregular times."""

    def __init__(self, dim: int, max_frames: int, mode: str = "index", time_scale: float = 1.0) -> None:
        super().__init__()
        self.mode = mode
        self.time_scale = time_scale
        if mode == "index":
            self.table = nn.Embedding(max_frames, dim)
            nn.init.normal_(self.table.weight, std=0.02)
        else:
            self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """(...,) frame indices (index mode) or times (continuous mode) -> (..., dim)."""
        if self.mode == "index":
            return self.table(positions.long())
        # Scale so that typical time spans cover a few radians of the slowest useful frequencies.
        dim = self.mlp[0].in_features
        return self.mlp(sinusoidal_embedding(positions.float() / self.time_scale * 100.0, dim))
