"""Algorithm 2 (autoregressive sampling over the sequence) and the numpy-in / numpy-out Engine
facade that the CLI and the Slicer module call."""

from __future__ import annotations

import inspect
import os
import threading
from typing import Callable, Sequence

import numpy as np
import torch

from sadm.checkpoint import load_model
from sadm.config import ModelConfig
from sadm.data.resample import resample_to_shape
from sadm.devices import autocast, describe_device, resolve_device
from sadm.diffusion import guided_eps_fn, sampling_grid
from sadm.errors import GenerationCancelled, InvalidRolesError
from sadm.frames import validate_frames
from sadm.model import SADM
from sadm.normalize import IntensityRange
from sadm.registry import resolve_model
from sadm.roles import OBSERVED, context_indices, validate_roles
from sadm.defaults import DEFAULT_SAMPLER, DEFAULT_STEPS
from sadm.samplers import GRIDS, SAMPLERS

Progress = Callable[[int, int, int], None]
"""progress(done_steps, total_steps, frame_index), called after every denoising step."""


@torch.no_grad()
def autoregressive_generate(
    model: SADM,
    sequence: torch.Tensor,
    roles: Sequence[str],
    times: torch.Tensor,
    sampler: str = DEFAULT_SAMPLER,
    steps: int = 50,
    guidance: float = 0.1,
    generator: torch.Generator | None = None,
    batch_guidance: bool = True,
    on_step: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Alg. 2 on a batch of N draws of one sequence.

    `sequence` (N, L, D, H, W) in [0, 1] holds the observed frames (other frames are ignored);
    returns a new tensor in which every non-observed frame has been generated from noise, given
    c = Aθ(X̃) computed once per frame, and fed forward to the frames after it. X̃ is frames 0..i−1
    (causal, the paper), or every frame but i (bidirectional models): observed and already generated
    frames as images, frames still to generate as zero volumes.
    `on_step(frame_index, step)` runs after every denoising step (it may raise to cancel).
    """
    device = sequence.device
    draws = sequence.shape[0]
    filled = sequence.clone()
    for index, role in enumerate(roles):
        if role != OBSERVED:
            filled[:, index] = 0.0  # not yet generated: a zero volume that keeps its position
    sample_fn = SAMPLERS[sampler]
    config = model.config
    # On the device once: the step loop then never copies between host and device (noise for the
    # stochastic samplers excepted: it comes from the seeded CPU generator so seeds mean the same everywhere).
    log_snrs = sampling_grid(steps, GRIDS[sampler], config.diffusion.log_snr_min, config.diffusion.log_snr_max).to(device)
    times = times.to(device=device, dtype=torch.float32)
    for index, role in enumerate(roles):
        if role == OBSERVED:
            continue
        members = context_indices(len(roles), index, config.attention.context)
        mask = torch.ones(draws, len(members), dtype=torch.bool, device=device)
        with autocast(device):
            conditioning = model.condition(
                filled[:, members], mask, times[members].expand(draws, len(members)), times[index].expand(draws)
            ).float()
        if not model.is_diffusion:
            filled[:, index] = conditioning[:, 0].clamp(0.0, 1.0)
            if on_step is not None:
                on_step(index, 0)
            continue

        def denoiser(z: torch.Tensor, log_snr: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            with autocast(device):
                return model.denoise(z, log_snr, c).float()

        eps_fn = guided_eps_fn(denoiser, conditioning, guidance, batch_guidance)
        noise = torch.randn((draws, 1, *sequence.shape[2:]), generator=generator).to(device)
        callback = None if on_step is None else (lambda info, index=index: on_step(index, info["i"]))
        extra = {"generator": generator} if "generator" in inspect.signature(sample_fn).parameters else {}
        x = sample_fn(eps_fn, noise, log_snrs, callback=callback, **extra)
        frame = model.frame_from_diffused(x, conditioning)
        filled[:, index] = ((frame[:, 0] + 1.0) / 2.0).clamp(0.0, 1.0)
    return filled


class Engine:
    """A loaded model that generates missing and future frames of a sequence of numpy volumes.

    >>> engine = Engine.load("cardiac-demo")          # bundled name, or a model folder
    >>> result = engine.generate(frames, ["observed", "missing", "observed", "future"])
    >>> result[1].shape == frames[0].shape            # native grid and intensity range
    """

    def __init__(
        self, model: SADM, device: torch.device, source: str = "", channels_last: bool = True, compile: bool = False
    ) -> None:
        """`channels_last`: the UNet in NDHWC layout (faster on CPU, same results). `compile`:
        torch.compile the UNet — off by default: on a 2-core CPU it took 42 s to compile and no step
        got faster (Testing/benchmarks/generation_step.py); try it on a GPU with `sadm bench --compile`."""
        self.model = model.to(device).eval().use_channels_last(channels_last)
        if compile and self.model.unet is not None:
            self.model.unet.compile()
        self.device = device
        self.source = source

    @classmethod
    def load(
        cls,
        path_or_name: str | os.PathLike = "cardiac-demo",
        device: str | torch.device = "auto",
        channels_last: bool = True,
        compile: bool = False,
    ) -> "Engine":
        folder = resolve_model(path_or_name)
        resolved = resolve_device(device)
        return cls(load_model(folder, resolved), resolved, str(folder), channels_last, compile)

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    def describe_device(self) -> str:
        return describe_device(self.device)

    def generate(
        self,
        frames: Sequence[np.ndarray | None],
        roles: Sequence[str],
        sampler: str = DEFAULT_SAMPLER,
        steps: int | None = None,
        guidance: float | None = None,
        seed: int = 0,
        batch_guidance: bool = True,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        times: Sequence[float] | None = None,
    ) -> dict[int, np.ndarray]:
        """Generate every missing and future frame: {index: (k, j, i) float32 array} on the grid and
        in the intensity range of the observed frames. Inputs are never modified."""
        draws = self.generate_samples(
            frames, roles, sampler, steps, guidance, seed, 1, batch_guidance, progress, cancel, times
        )
        return {index: volumes[0] for index, volumes in draws.items()}

    def generate_samples(
        self,
        frames: Sequence[np.ndarray | None],
        roles: Sequence[str],
        sampler: str = DEFAULT_SAMPLER,
        steps: int | None = None,
        guidance: float | None = None,
        seed: int = 0,
        samples: int = 1,
        batch_guidance: bool = True,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        times: Sequence[float] | None = None,
    ) -> dict[int, np.ndarray]:
        """Like `generate`, drawing `samples` sequences in one batch: {index: (samples, k, j, i)}."""
        draws = self.generate_on_model_grid(
            frames, roles, sampler, steps, guidance, seed, samples, batch_guidance, progress, cancel, times
        )
        native_shape = np.shape(frames[0])  # validated there: frame 0 is observed, observed frames share a shape
        return {
            index: np.stack([resample_to_shape(volume, native_shape) for volume in volumes])
            for index, volumes in draws.items()
        }

    def generate_on_model_grid(
        self,
        frames: Sequence[np.ndarray | None],
        roles: Sequence[str],
        sampler: str = DEFAULT_SAMPLER,
        steps: int | None = None,
        guidance: float | None = None,
        seed: int = 0,
        samples: int = 1,
        batch_guidance: bool = True,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        times: Sequence[float] | None = None,
    ) -> dict[int, np.ndarray]:
        """The draws of `generate_samples` as the model made them, on its own grid (config.grid) in the
        observed frames' intensities: what `sadm evaluate` scores, before resampling to the input grid
        blurs them (linear resampling commutes with the intensity mapping, so resampling these gives
        `generate_samples` exactly)."""
        config = self.config
        roles = validate_roles(roles, config.max_frames)
        validate_frames(frames, roles)
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose one of {sorted(SAMPLERS)}")
        steps = DEFAULT_STEPS[sampler] if steps is None else int(steps)
        if steps < 1:
            raise ValueError(f"steps must be at least 1; got {steps}")
        if samples < 1:
            raise ValueError(f"samples must be at least 1; got {samples}")
        guidance = config.diffusion.guidance if guidance is None else float(guidance)
        time_values = self._times(times, len(roles))

        observed = [np.asarray(f) for f, r in zip(frames, roles) if r == OBSERVED]
        intensity = IntensityRange.of_frames(observed, config.normalization.get("clip_percentiles"))
        sequence = torch.zeros(samples, len(roles), *config.grid)
        for index, (frame, role) in enumerate(zip(frames, roles)):
            if role == OBSERVED:
                volume = resample_to_shape(intensity.normalize(frame), config.grid)
                sequence[:, index] = torch.from_numpy(np.clip(volume, 0.0, 1.0))

        generated = [i for i, r in enumerate(roles) if r != OBSERVED]
        steps_per_frame = steps if self.model.is_diffusion else 1
        total = steps_per_frame * len(generated)

        def on_step(frame_index: int, step: int) -> None:
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled(f"generation was cancelled at frame {frame_index}, step {step + 1}")
            if progress is not None:
                done = generated.index(frame_index) * steps_per_frame + step + 1
                progress(done, total, frame_index)

        if cancel is not None and cancel.is_set():
            raise GenerationCancelled("generation was cancelled before it started")
        generator = torch.Generator().manual_seed(int(seed))
        filled = autoregressive_generate(
            self.model,
            sequence.to(self.device),
            roles,
            time_values,
            sampler,
            steps,
            guidance,
            generator,
            batch_guidance,
            on_step,
        ).cpu()
        return {
            index: np.stack([intensity.denormalize(filled[n, index].numpy()) for n in range(samples)])
            for index in generated
        }

    def _times(self, times: Sequence[float] | None, length: int) -> torch.Tensor:
        """Frame positions for Aθ: indices, or the caller's times for continuous-time models."""
        if self.config.attention.time_embedding == "index":
            if times is not None:
                raise InvalidRolesError(
                    "this model embeds frame indices, not times; leave times=None (it was trained with "
                    "attention.time_embedding='index')"
                )
            return torch.arange(length, dtype=torch.float32)
        if times is None or len(times) != length:
            raise InvalidRolesError(
                f"this model embeds continuous times: pass times= with one value per frame ({length}); "
                f"got {None if times is None else len(times)}"
            )
        values = np.asarray(times, dtype=np.float64)
        if not np.all(np.isfinite(values)) or np.any(np.diff(values) <= 0):
            raise InvalidRolesError(f"times must be finite and strictly increasing; got {list(values)}")
        return torch.tensor(values, dtype=torch.float32)
