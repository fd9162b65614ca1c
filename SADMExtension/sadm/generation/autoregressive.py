"""Algorithm 2: walk the sequence, generating each missing / future frame from noise given
c = Aθ(X̃), and feed it forward to the frames after it."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Callable

import torch

from sadm.devices import autocast
from sadm.diffusion.catalogue import sampler_spec
from sadm.diffusion.gaussian import guided_eps_fn, sampling_grid
from sadm.generation.context import context_indices
from sadm.generation.request import OBSERVED, SamplingOptions
from sadm.networks.sadm import SADM


@torch.no_grad()
def autoregressive_generate(
    model: SADM,
    sequence: torch.Tensor,
    roles: Sequence[str],
    positions: torch.Tensor,
    sampling: SamplingOptions,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, int], None] | None = None,
    redraw_at: dict[int, Sequence[int]] | None = None,
    redraws: dict[int, torch.Tensor] | None = None,
    skip: Collection[int] = (),
) -> torch.Tensor:
    """Alg. 2 on a batch of N draws of one sequence.

    `sequence` (N, L, D, H, W) in [0, 1] holds the observed frames (other frames are ignored);
    `positions` (L,) are what Aθ embeds (indices or times). Returns a new tensor in which every
    non-observed frame has been generated from noise, given c = Aθ(X̃) computed once per frame. X̃ is
    frames 0..i−1 (causal, the paper), or every frame but i (bidirectional models): observed and
    already generated frames as images, frames still to generate as zero volumes.
    `on_step(frame_index, step)` runs after every denoising step (it may raise to cancel).

    `redraw_at` {target: observed indices}: alongside each such target, also draw the frame the
    target's own context X̃ gives at each of those frames' positions a (its index or time), from the
    same noise, in the same batch; the draws go into `redraws` {target: (positions, N, D, H, W)}. The two draws
    share everything but the position asked for, so they differ by what the model thinks changes
    between a and the target, not by its style (see sadm.generation.native).

    `skip`: targets the caller makes without the model; they stay zero volumes and are not drawn.
    """
    device = sequence.device
    draws = sequence.shape[0]
    filled = sequence.clone()
    for index, role in enumerate(roles):
        if role != OBSERVED:
            filled[:, index] = 0.0  # not yet generated: a zero volume that keeps its position
    sampler = sampler_spec(sampling.sampler)
    sample_fn, settings = sampler.load(), sampling.sampler_settings
    config = model.config
    guidance = config.diffusion.guidance if sampling.guidance is None else sampling.guidance
    # On the device once: the step loop then never copies between host and device (noise for the
    # stochastic samplers excepted: it comes from the seeded CPU generator so seeds mean the same everywhere).
    log_snrs = sampling_grid(
        sampling.steps, sampler.grid, config.diffusion.log_snr_min, config.diffusion.log_snr_max
    ).to(device)
    positions = positions.to(device=device, dtype=torch.float32)
    for index, role in enumerate(roles):
        if role == OBSERVED or index in skip:
            continue
        redrawn = list(redraw_at.get(index, ())) if redraw_at is not None and redraws is not None else []
        conditioning = _conditioning(model, filled, index, positions)
        for position in redrawn:
            conditioning = torch.cat(
                [conditioning, _conditioning(model, filled, index, positions, positions[position])]
            )
        if not model.is_diffusion:
            if redrawn:
                redraws[index] = conditioning[draws:, 0].clamp(0.0, 1.0).unflatten(0, (len(redrawn), draws))
                conditioning = conditioning[:draws]
            filled[:, index] = conditioning[:, 0].clamp(0.0, 1.0)
            if on_step is not None:
                on_step(index, 0)
            continue

        def denoiser(z: torch.Tensor, log_snr: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            with autocast(device):
                return model.denoise(z, log_snr, c).float()

        eps_fn = guided_eps_fn(denoiser, conditioning, guidance, sampling.batch_guidance)
        noise = torch.randn((draws, 1, *sequence.shape[2:]), generator=generator).to(device)
        if redrawn:
            noise = noise.repeat(1 + len(redrawn), 1, 1, 1, 1)  # the same noise: draws differ by their conditioning
        callback = None if on_step is None else (lambda info, index=index: on_step(index, info["i"]))
        x = sample_fn(eps_fn, noise, log_snrs, generator=generator, callback=callback, **settings)
        frame = ((model.frame_from_diffused(x, conditioning)[:, 0] + 1.0) / 2.0).clamp(0.0, 1.0)
        filled[:, index] = frame[:draws]
        if redrawn:
            redraws[index] = frame[draws:].unflatten(0, (len(redrawn), draws))
    return filled


def _conditioning(
    model: SADM, filled: torch.Tensor, target: int, positions: torch.Tensor, at: torch.Tensor | None = None
) -> torch.Tensor:
    """c = Aθ(X̃) for `target` from the sequence as it stands, asking for the frame at position `at`
    (default: the target's own)."""
    draws, length = filled.shape[:2]
    at = positions[target] if at is None else at
    members = context_indices(length, target, model.config.attention.context)
    mask = torch.ones(draws, len(members), dtype=torch.bool, device=filled.device)
    with autocast(filled.device):
        return model.condition(
            filled[:, members], mask, positions[members].expand(draws, len(members)), at.expand(draws)
        ).float()
