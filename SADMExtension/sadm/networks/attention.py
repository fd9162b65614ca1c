"""Aθ: the factorized 4D ViViT of the paper (§2.2, "Model 3") that turns frames 1..i-1 into the
conditioning volume c of frame i."""

from __future__ import annotations

import torch
from einops import rearrange, repeat
from torch import nn

from sadm.config import ModelConfig
from sadm.networks.layers import FeedForward, SelfAttention, TimeEmbedding


class PatchEmbedding(nn.Module):
    """Non-overlapping 3D patches of every frame → tokens (l = 1: no fusion over time, because of
    missing frames). (B, L, D, H, W) -> (B, L, d, h, w, C)."""

    def __init__(self, patch_size: tuple[int, int, int], dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(1, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        batch = frames.shape[0]
        tokens = self.proj(rearrange(frames, "b l d h w -> (b l) 1 d h w"))
        return rearrange(tokens, "(b l) c d h w -> b l d h w c", b=batch)


class TokenMerge(nn.Module):
    """The MLP after temporal attention that reduces the number of spatial tokens by 2³.
    (B, L, d, h, w, C) -> (B, L, d/2, h/2, w/2, C)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(8 * dim)
        self.proj = nn.Linear(8 * dim, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        merged = rearrange(tokens, "b l (d p1) (h p2) (w p3) c -> b l d h w (p1 p2 p3 c)", p1=2, p2=2, p3=2)
        return self.proj(self.norm(merged))


class TokenUpsample(nn.Module):
    """Learned ×2 upsampling per spatial axis (a linear "pixel shuffle").
    (N, d, h, w, C) -> (N, 2d, 2h, 2w, C)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, 8 * dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        expanded = self.proj(self.norm(tokens))
        return rearrange(expanded, "n d h w (p1 p2 p3 c) -> n (d p1) (h p2) (w p3) c", p1=2, p2=2, p3=2)


class TemporalBlock(nn.Module):
    """Self-attention over time for every spatial token, then the 2³ token merge."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.attention = SelfAttention(dim, heads)
        self.feed_forward = FeedForward(dim, mlp_ratio)
        self.merge = TokenMerge(dim)

    def forward(self, tokens: torch.Tensor, frame_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (B, L, d, h, w, C), frame_mask (B, L) -> (merged tokens, tokens before merging)."""
        b, _, d, h, w, _ = tokens.shape
        x = rearrange(tokens, "b l d h w c -> (b d h w) l c")
        key_mask = repeat(frame_mask, "b l -> (b n) l", n=d * h * w)
        x = self.feed_forward(self.attention(x, key_mask))
        attended = rearrange(x, "(b d h w) l c -> b l d h w c", b=b, d=d, h=h, w=w)
        return self.merge(attended), attended


class SpatialBlock(nn.Module):
    """Self-attention over the spatial tokens of each timepoint, then ×2 upsampling per axis.
    (N, d, h, w, C) -> (N, 2d, 2h, 2w, C), N = valid (sequence, frame) pairs."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.attention = SelfAttention(dim, heads)
        self.feed_forward = FeedForward(dim, mlp_ratio)
        self.upsample = TokenUpsample(dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        _n, d, h, w, _ = tokens.shape
        x = rearrange(tokens, "n d h w c -> n (d h w) c")
        x = self.feed_forward(self.attention(x))
        return self.upsample(rearrange(x, "n (d h w) c -> n d h w c", d=d, h=h, w=w))


class AttentionModule(nn.Module):
    """Aθ: frames 1..i-1 (missing ones as zero volumes) -> conditioning volume c of frame i.

    Input frames (B, L, D, H, W) with L <= max_frames - 1, `frame_mask` (B, L) True for real
    context frames (False = padding of shorter sequences in the batch), `positions` (B, L) and
    `target_position` (B,) as frame indices or times. Output (B, conditioning_channels, D, H, W).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        att = config.attention
        self.max_frames = config.max_frames
        self.skip_connections = att.skip_connections
        dim = att.dim
        token_grid = tuple(g // p for g, p in zip(config.grid, att.patch_size))
        self.patch_embedding = PatchEmbedding(att.patch_size, dim)
        self.spatial_position = nn.Parameter(torch.zeros(1, 1, *token_grid, dim))
        nn.init.trunc_normal_(self.spatial_position, std=0.02)
        self.frame_position = TimeEmbedding(dim, config.max_frames, att.time_embedding, att.time_scale)
        self.target_position = TimeEmbedding(dim, config.max_frames, att.time_embedding, att.time_scale)
        self.encoder = nn.ModuleList(TemporalBlock(dim, att.heads, att.mlp_ratio) for _ in range(att.depth))
        self.decoder = nn.ModuleList(SpatialBlock(dim, att.heads, att.mlp_ratio) for _ in range(att.depth))
        # The last block's tokens of all (padded) frames side by side: (d, h, w, max_context · dim).
        self.max_context = config.max_frames - 1
        self.fuse = nn.Sequential(
            nn.LayerNorm(self.max_context * dim), nn.Linear(self.max_context * dim, att.head_channels)
        )
        self.upsample = nn.ConvTranspose3d(att.head_channels, att.head_channels, att.patch_size, stride=att.patch_size)
        self.output = nn.Sequential(
            nn.GroupNorm(min(8, att.head_channels), att.head_channels),
            nn.SiLU(),
            nn.Conv3d(att.head_channels, att.conditioning_channels, kernel_size=3, padding=1),
        )

    def embed(self, frames: torch.Tensor, positions: torch.Tensor, target_position: torch.Tensor) -> torch.Tensor:
        """Patch tokens + spatial, frame and target position codes: (B, L, D, H, W) -> (B, L, d, h, w, C).
        A missing frame (zero volume) still gets a non-zero, position-specific code."""
        tokens = self.patch_embedding(frames) + self.spatial_position
        position = self.frame_position(positions) + self.target_position(target_position)[:, None]
        return tokens + position[:, :, None, None, None, :]

    def forward(
        self,
        frames: torch.Tensor,
        frame_mask: torch.Tensor,
        positions: torch.Tensor,
        target_position: torch.Tensor,
    ) -> torch.Tensor:
        batch, length = frames.shape[:2]
        if length > self.max_context:
            raise ValueError(f"Aθ got {length} context frames; this model takes at most {self.max_context}")
        tokens = self.embed(frames, positions, target_position)
        skips = []
        for block in self.encoder:
            tokens, attended = block(tokens, frame_mask)
            skips.append(attended)

        # The spatial decoder only runs on real frames: padding of short sequences costs nothing.
        valid = frame_mask.reshape(-1)
        x = tokens.reshape(batch * length, *tokens.shape[2:])[valid]
        for block, skip in zip(self.decoder, reversed(skips)):
            x = block(x)
            if self.skip_connections:
                x = x + skip.reshape(batch * length, *skip.shape[2:])[valid]

        out = x.new_zeros(batch * self.max_context, *x.shape[1:])
        index = torch.arange(batch * length, device=x.device)[valid]
        index = (index // length) * self.max_context + index % length
        out[index] = x
        fused = self.fuse(rearrange(out, "(b l) d h w c -> b d h w (l c)", b=batch))
        volume = self.upsample(rearrange(fused, "b d h w c -> b c d h w"))
        return self.output(volume)
