"""Samplers: pure functions over an ε-predictor and a logSNR grid (k-diffusion's shape).

Every sampler has one signature: `sampler(eps_fn, z, log_snrs, *, clip_denoised, generator, callback,
**its own settings)` — `eps_fn(z, λ) -> ε̂`, the initial noise z (B, ...), a decreasing-noise grid of
logSNRs (t = 1 → 0, see `diffusion.log_snr_steps`), the seeded CPU generator its fresh noise comes from
(unused by deterministic samplers) and an optional `callback(info)` called after every step with
{"i", "total", "z", "denoised", "log_snr"}; a callback may raise to stop the run.

Each is registered in the torch-free `sadm.diffusion.catalogue` (default steps, grid, settings with
their defaults and ranges); its settings are keyword-only here, without defaults, so the catalogue's
are the only ones.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from sadm.diffusion.gaussian import EpsFn, alpha_sigma, posterior, predict_x

Callback = Callable[[dict[str, Any]], None]


def _denoise(eps_fn: EpsFn, z: torch.Tensor, log_snr: torch.Tensor, clip: bool) -> tuple[torch.Tensor, torch.Tensor]:
    batch_log_snr = log_snr.to(z.device).expand(z.shape[0])
    eps = eps_fn(z, batch_log_snr).float()
    x = predict_x(z, eps, batch_log_snr)
    if clip:
        x = x.clamp(-1.0, 1.0)
    return x, eps


@torch.no_grad()
def sample_ancestral(
    eps_fn: EpsFn,
    z: torch.Tensor,
    log_snrs: torch.Tensor,
    *,
    clip_denoised: bool = True,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    v: float,
) -> torch.Tensor:
    """Ancestral sampling of the paper (Eq. 3): z_s = μ̃(z_t, x̂) + sqrt((σ̃²)^{1−v} (σ²_{t|s})^v) ε."""
    total = len(log_snrs) - 1
    x = z
    for i in range(total):
        log_snr_t, log_snr_s = log_snrs[i], log_snrs[i + 1]
        x, _ = _denoise(eps_fn, z, log_snr_t, clip_denoised)
        if i == total - 1:
            z = x  # the last step lands on the data: return the denoised estimate, not a noisy z_0
        else:
            mean, variance, transition = posterior(z, x, log_snr_t.to(z.device), log_snr_s.to(z.device))
            std = (variance ** (1 - v) * transition**v).sqrt()
            noise = torch.randn(z.shape, generator=generator).to(z.device)
            z = mean + std * noise
        if callback is not None:
            callback({"i": i, "total": total, "z": z, "denoised": x, "log_snr": log_snr_t})
    return z


@torch.no_grad()
def sample_ddim(
    eps_fn: EpsFn,
    z: torch.Tensor,
    log_snrs: torch.Tensor,
    *,
    clip_denoised: bool = True,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Deterministic DDIM (Song et al. 2021, η = 0): z_s = α_s x̂ + σ_s ε̂, for any number of steps
    (`generator` is unused: every sampler takes one, so callers need not know which are stochastic)."""
    total = len(log_snrs) - 1
    for i in range(total):
        log_snr_t, log_snr_s = log_snrs[i], log_snrs[i + 1]
        x, eps = _denoise(eps_fn, z, log_snr_t, clip_denoised)
        if i == total - 1:
            z = x
        else:
            if clip_denoised:
                # Keep ε consistent with the clipped x̂ so the trajectory stays on the data manifold.
                alpha_t, sigma_t = alpha_sigma(log_snr_t.to(z.device))
                eps = (z - alpha_t * x) / sigma_t
            alpha_s, sigma_s = alpha_sigma(log_snr_s.to(z.device))
            z = alpha_s * x + sigma_s * eps
        if callback is not None:
            callback({"i": i, "total": total, "z": z, "denoised": x, "log_snr": log_snr_t})
    return z


@torch.no_grad()
def sample_dpmpp_2m(
    eps_fn: EpsFn,
    z: torch.Tensor,
    log_snrs: torch.Tensor,
    *,
    clip_denoised: bool = True,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    eta: float,
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022), the multistep second-order solver of the diffusion ODE in
    its data-prediction form, which stays stable under classifier-free guidance.

    With h = (λ_s − λ_t)/2 (DPM-Solver's λ is half our logSNR) and x̂ the denoised estimate:
    z_s = (σ_s/σ_t) e^{−ηh}·z_t + α_s (1 − e^{−(1+η)h}) D + σ_s sqrt(1 − e^{−2ηh}) ε, where D = x̂_t at the
    first and last steps and D = (1 + 1/2r) x̂_t − (1/2r) x̂_prev between them (r = h_prev / h); the last
    step jumps to the clipped λ_max, where extrapolating x̂ would overshoot (DPM-Solver's "lower order final"). η = 0 is the ODE
    solver; η > 0 adds fresh noise each step (the SDE variant, 1 = DPM-Solver++(2M) SDE).
    """
    total = len(log_snrs) - 1
    previous_x, previous_h = None, None
    for i in range(total):
        log_snr_t, log_snr_s = log_snrs[i].to(z.device), log_snrs[i + 1].to(z.device)
        x, _ = _denoise(eps_fn, z, log_snr_t, clip_denoised)
        h = (log_snr_s - log_snr_t) / 2
        d = x
        if previous_x is not None and i < total - 1:  # first order on the last step, which jumps to λ_max
            r = previous_h / h
            d = (1 + 1 / (2 * r)) * x - (1 / (2 * r)) * previous_x
        alpha_s, sigma_s = alpha_sigma(log_snr_s)
        _, sigma_t = alpha_sigma(log_snr_t)
        z = (sigma_s / sigma_t) * torch.exp(-eta * h) * z - alpha_s * torch.expm1(-(1 + eta) * h) * d
        if eta > 0 and i < total - 1:
            noise = torch.randn(z.shape, generator=generator).to(z.device)
            z = z + sigma_s * torch.sqrt(-torch.expm1(-2 * eta * h)) * noise
        previous_x, previous_h = x, h
        if i == total - 1:
            # z now lies at λ_max: return the data it denotes, x̂ = (z − σ ε̂)/α, as the other samplers
            # do (σ_max ε̂ is below 1e-4, so one more network call would change nothing visible), clipped
            # like every x̂.
            z = z / alpha_s
            if clip_denoised:
                z = z.clamp(-1.0, 1.0)
        if callback is not None:
            callback({"i": i, "total": total, "z": z, "denoised": x, "log_snr": log_snr_t})
    return z
