"""Continuous-time Gaussian diffusion of the paper's §2.1 (as in Ho & Salimans' classifier-free
guidance): the cosine logSNR schedule, q(z_t|x), the posterior of Eq. 2, the ε-loss with condition
dropout, and the guided ε-predictor."""

from __future__ import annotations

import math
from typing import Callable

import torch

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""An ε-predictor: (z_t (B, ...), λ_t (B,)) -> ε̂ (B, ...). Samplers only ever see this."""


def _broadcast(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.reshape(values.shape + (1,) * (like.dim() - values.dim()))


def cosine_log_snr(t: torch.Tensor, log_snr_min: float = -20.0, log_snr_max: float = 20.0) -> torch.Tensor:
    """λ(t) = −2 log tan(a t + b), clipped so that λ(0) = log_snr_max and λ(1) = log_snr_min."""
    b = math.atan(math.exp(-0.5 * log_snr_max))
    a = math.atan(math.exp(-0.5 * log_snr_min)) - b
    return -2.0 * torch.log(torch.tan(a * t.double() + b)).to(torch.float32)


def log_snr_steps(steps: int, log_snr_min: float = -20.0, log_snr_max: float = 20.0) -> torch.Tensor:
    """steps + 1 logSNRs from t = 1 (pure noise) to t = 0 (data), uniform in t: a sampler's grid."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1; got {steps}")
    t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return cosine_log_snr(t, log_snr_min, log_snr_max)


GRID_SPACINGS = ("cosine", "log-snr")
LOG_SNR_GRID_RANGE = (-10.0, 10.0)  # where uniform-logSNR grids spend their steps; beyond it nothing changes


def sampling_grid(
    steps: int, spacing: str = "cosine", log_snr_min: float = -20.0, log_snr_max: float = 20.0
) -> torch.Tensor:
    """steps + 1 logSNRs from noise to data. "cosine": uniform in t (the training schedule, as the
    paper samples). "log-snr": uniform in λ over [−10, 10] ∩ the schedule's range, then one last jump
    to λ_max — a high-order solver's steps go where the image forms, not into the clipped tails
    (README, "Design decisions beyond the paper", has the measurement)."""
    if spacing == "cosine":
        return log_snr_steps(steps, log_snr_min, log_snr_max)
    if spacing != "log-snr":
        raise ValueError(f"unknown grid spacing {spacing!r}; choose one of {GRID_SPACINGS}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1; got {steps}")
    low, high = max(log_snr_min, LOG_SNR_GRID_RANGE[0]), min(log_snr_max, LOG_SNR_GRID_RANGE[1])
    uniform = torch.linspace(low, high, steps, dtype=torch.float64)
    return torch.cat([uniform, torch.tensor([log_snr_max], dtype=torch.float64)]).to(torch.float32)


def alpha_sigma(log_snr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """α² = sigmoid(λ), σ² = sigmoid(−λ)."""
    return torch.sigmoid(log_snr).sqrt(), torch.sigmoid(-log_snr).sqrt()


def q_sample(x: torch.Tensor, log_snr: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """z_t = α_t x + σ_t ε, i.e. a draw from q(z_t | x)."""
    alpha, sigma = alpha_sigma(log_snr)
    return _broadcast(alpha, x) * x + _broadcast(sigma, x) * noise


def predict_x(z: torch.Tensor, eps: torch.Tensor, log_snr: torch.Tensor) -> torch.Tensor:
    """x̂ = (z_t − σ_t ε̂) / α_t."""
    alpha, sigma = alpha_sigma(log_snr)
    return (z - _broadcast(sigma, z) * eps) / _broadcast(alpha, z)


def posterior(
    z_t: torch.Tensor, x: torch.Tensor, log_snr_t: torch.Tensor, log_snr_s: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 2, q(z_s | z_t, x) for s < t (λ_s > λ_t): returns (mean μ̃, variance σ̃², forward
    transition variance σ²_{t|s}); the last two are per batch element."""
    alpha_t, _ = alpha_sigma(log_snr_t)
    alpha_s, sigma_s = alpha_sigma(log_snr_s)
    _, sigma_t = alpha_sigma(log_snr_t)
    ratio = torch.exp(log_snr_t - log_snr_s)  # e^{λ_t − λ_s} in (0, 1]
    mean = _broadcast(ratio * alpha_s / alpha_t, z_t) * z_t + _broadcast((1 - ratio) * alpha_s, x) * x
    variance = (1 - ratio) * sigma_s**2
    transition_variance = (1 - ratio) * sigma_t**2
    return mean, variance, transition_variance


def condition_dropout_mask(batch: int, p_uncond: float, generator: torch.Generator | None, device) -> torch.Tensor:
    """I ~ Bernoulli(1 − p_uncond) per sequence, shaped to multiply a (B, C, D, H, W) condition."""
    keep = torch.rand(batch, generator=generator, device="cpu") >= p_uncond
    return keep.to(device=device, dtype=torch.float32)[:, None, None, None, None]


def eps_from_prediction(z: torch.Tensor, output: torch.Tensor, log_snr: torch.Tensor, prediction: str) -> torch.Tensor:
    """The network's raw output as ε̂: itself for "eps", σ z + α v̂ for "v"."""
    if prediction == "eps":
        return output
    alpha, sigma = alpha_sigma(log_snr)
    return _broadcast(sigma, z) * z + _broadcast(alpha, z) * output


def diffusion_loss(
    network: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    conditioning: torch.Tensor,
    log_snr_min: float,
    log_snr_max: float,
    p_uncond: float,
    generator: torch.Generator | None = None,
    prediction: str = "eps",
) -> torch.Tensor:
    """Alg. 1 line 11–13: mean ||ε̂θ(z_t, c·I, λ_t) − ε||² with t ~ U(0, 1), I ~ Be(1 − p_uncond).

    `network(z_t, λ_t, c)` returns the raw output: ε̂ (prediction "eps", the paper) or v̂, whose
    loss ||v̂ − v||² with v = α ε − σ x weights low-SNR steps by 1/α² more. x (B, 1, D, H, W) is
    the target frame in [−1, 1]. Random draws come from `generator` on the CPU so a run is
    reproducible on any device.
    """
    batch = x.shape[0]
    t = torch.rand(batch, generator=generator, dtype=torch.float64)
    log_snr = cosine_log_snr(t, log_snr_min, log_snr_max).to(x.device)
    noise = torch.randn(x.shape, generator=generator).to(x.device)
    keep = condition_dropout_mask(batch, p_uncond, generator, x.device)
    z_t = q_sample(x, log_snr, noise)
    output = network(z_t, log_snr, conditioning * keep).float()
    if prediction == "eps":
        target = noise
    else:
        alpha, sigma = alpha_sigma(log_snr)
        target = _broadcast(alpha, x) * noise - _broadcast(sigma, x) * x
    return torch.mean((output - target) ** 2)


def guided_eps_fn(
    denoiser: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    conditioning: torch.Tensor,
    guidance: float,
    batch_guidance: bool = True,
) -> EpsFn:
    """Classifier-free guidance: ε̃ = (1 + w) ε̂(z, c) − w ε̂(z, ∅) with ∅ a zero condition.

    With `batch_guidance` the conditional and unconditional passes run as ONE forward pass over
    a doubled batch; w = 0 skips the unconditional pass altogether.
    """
    unconditional = torch.zeros_like(conditioning)

    def eps_fn(z: torch.Tensor, log_snr: torch.Tensor) -> torch.Tensor:
        if guidance == 0:
            return denoiser(z, log_snr, conditioning)
        if batch_guidance:
            both = denoiser(torch.cat([z, z]), torch.cat([log_snr, log_snr]), torch.cat([conditioning, unconditional]))
            cond_eps, uncond_eps = both.chunk(2)
        else:
            cond_eps = denoiser(z, log_snr, conditioning)
            uncond_eps = denoiser(z, log_snr, unconditional)
        return (1 + guidance) * cond_eps - guidance * uncond_eps

    return eps_fn
