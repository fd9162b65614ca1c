"""SADM = Aθ + the ε-prediction UNet (or one of the paper's two ablations), behind one interface
that training and generation share."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sadm.attention import AttentionModule
from sadm.config import ModelConfig
from sadm.diffusion import diffusion_loss, eps_from_prediction
from sadm.unet import UNet3D


class SADM(nn.Module):
    """The sequence-aware diffusion model.

    variant "sadm": c = Aθ(X̃) conditions the UNet (the paper's method).
    variant "diffusion-only": the raw context frames, zero-padded to max_frames − 1 channels,
    condition the UNet (Table 2's "diffusion only").
    variant "attention-only": Aθ regresses the frame itself with an ℓ2 loss, no diffusion.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.variant = config.variant
        self.attention = AttentionModule(config) if config.variant != "diffusion-only" else None
        self.unet = None
        if config.variant != "attention-only":
            in_channels = 1 + self.conditioning_channels
            d = config.diffusion
            self.unet = UNet3D(in_channels, config.unet, (d.log_snr_min, d.log_snr_max))

    @property
    def conditioning_channels(self) -> int:
        if self.variant == "diffusion-only":
            return self.config.max_frames - 1
        return self.config.attention.conditioning_channels

    @property
    def is_diffusion(self) -> bool:
        return self.unet is not None

    def condition(
        self,
        frames: torch.Tensor,
        frame_mask: torch.Tensor,
        positions: torch.Tensor,
        target_position: torch.Tensor,
    ) -> torch.Tensor:
        """X̃ = frames 1..i−1 (B, L, D, H, W) in [0, 1], zero where missing -> c (B, C, D, H, W)."""
        if self.variant == "diffusion-only":
            context = frames * frame_mask[:, :, None, None, None].to(frames.dtype)
            return F.pad(context, (0, 0, 0, 0, 0, 0, 0, self.conditioning_channels - frames.shape[1]))
        return self.attention(frames, frame_mask, positions, target_position)

    def network_output(self, z: torch.Tensor, log_snr: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        """The UNet's raw output (ε̂ or v̂, see DiffusionConfig.prediction) for z_t concatenated with c."""
        return self.unet(torch.cat([z, conditioning.to(z.dtype)], dim=1), log_snr)

    def denoise(self, z: torch.Tensor, log_snr: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        """ε̂θ(z_t, c, λ_t): (B, 1, D, H, W), (B,), (B, C, D, H, W) -> (B, 1, D, H, W)."""
        output = self.network_output(z, log_snr, conditioning).float()
        return eps_from_prediction(z.float(), output, log_snr, self.config.diffusion.prediction)

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        """The training objective (so DistributedDataParallel's hooks see it); see `loss`."""
        return self.loss(batch, generator)

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        """The training objective on a batch from `training.make_batch`: the ε-loss of Alg. 1 with
        condition dropout, or the ℓ2 regression loss of the attention-only ablation."""
        conditioning = self.condition(batch["context"], batch["context_mask"], batch["positions"], batch["target_position"])
        target = batch["target"]  # (B, 1, D, H, W) in [-1, 1]
        if not self.is_diffusion:
            return torch.mean((conditioning.float() * 2 - 1 - target) ** 2)
        d = self.config.diffusion
        return diffusion_loss(
            self.network_output, target, conditioning, d.log_snr_min, d.log_snr_max, d.p_uncond, generator, d.prediction
        )


def parameter_count(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())
