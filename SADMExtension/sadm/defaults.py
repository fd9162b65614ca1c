"""The engine's defaults, in one torch-free place: the default sampler (every sampler, with its default
step count and settings, is in `sadm.diffusion.catalogue`) and the native paths. The engine, the
command line and the Slicer panel (which fills its menus before PyTorch is installed) read them here."""

from __future__ import annotations

DEFAULT_SAMPLER = "ddim"
"""The fastest sampler and step count within 0.01 SSIM of the 1000-step ancestral sampler, as chosen
by `sadm bench` on the bundled cardiac model (the measurement is the README's "Samplers" table)."""


NATIVE_PATHS = ("warp", "resample", "register")
"""How a generated frame reaches the input grid (see sadm.generation.native): the nearest observed
native frame warped by the model's motion, the model's frame resampled up (the paper), or the observed
frames' registration wherever two of them give the motion (else warp)."""

DEFAULT_NATIVE_PATH = "warp"
"""The native path of a model folder whose config.json names none (`ModelConfig.native`). Each bundled
model names the path chosen for it on validation subjects (README, "The registration baseline and the
registration floor"); a request's `native` overrides it."""
