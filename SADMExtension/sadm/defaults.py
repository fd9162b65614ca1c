"""Sampler names, their default step counts and the default sampler, in one torch-free place: the
engine, the command line and the Slicer panel (which fills its menus before PyTorch is installed)
all read them here."""

from __future__ import annotations

DEFAULT_STEPS: dict[str, int] = {"ancestral": 1000, "ddim": 10, "dpm++2m": 20}
"""Denoising steps per frame when the caller gives none: the paper's T = 1000 for ancestral."""


def steps_or_default(sampler: str, steps: int | None) -> int:
    """`steps`, or the sampler's default when the caller gave none (None)."""
    return DEFAULT_STEPS[sampler] if steps is None else steps


DEFAULT_SAMPLER = "ddim"
"""The fastest sampler and step count within 0.01 SSIM of the 1000-step ancestral sampler, as chosen
by `sadm bench` on the bundled cardiac model (the measurement is the README's "Samplers" table)."""


DEFAULT_NATIVE_PATH = "warp"
"""Generated frames reach the input grid by warping the nearest observed native frame with the
model's motion (sadm.generation.native); "resample" is the paper's upsampled model frame. Chosen by
`sadm evaluate` on the native grid (README, "Native-resolution generation")."""
