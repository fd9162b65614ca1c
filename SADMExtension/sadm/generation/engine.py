"""The numpy-in / numpy-out Engine that every front end calls with one `GenerationRequest`, and the
`Generation` it returns."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from typing import Callable

import numpy as np
import torch

from sadm.config import ModelConfig
from sadm.data.normalize import IntensityRange
from sadm.data.resample import resample_to_shape
from sadm.devices import describe_device, resolve_device
from sadm.errors import GenerationCancelled
from sadm.generation.autoregressive import autoregressive_generate
from sadm.generation.context import padded_length
from sadm.generation.frames import validate_frames
from sadm.generation.native import native_draws, progress_plan, redrawn_positions, registered_spans
from sadm.generation.registration import PairFields, span_of
from sadm.generation.request import FUTURE, GenerationRequest, SamplingOptions, extend_times
from sadm.generation.uncertainty import Calibration, Features, NoiseProfile, bucket_of, features, observed_noise_var
from sadm.networks.sadm import SADM
from sadm.storage.checkpoint import load_model
from sadm.storage.registry import resolve_model

Progress = Callable[[int, int, int], None]
"""progress(done_steps, total_steps, frame_index), called after every denoising step: the one progress
protocol of the engine (the CLI feeds a tqdm bar with it, the Slicer Logic a queue)."""


class Generation(Mapping):
    """The result of one request: a mapping {frame index: generated frame} (the mean of the draws
    when samples > 1) on the input's grid and in its intensities, plus every draw, their std and the
    draws as the model made them on its own grid (what model-grid scores read)."""

    def __init__(
        self,
        request: GenerationRequest,
        on_model_grid: dict[int, np.ndarray],
        native_shape: tuple[int, ...],
        pairs: PairFields | None = None,
        intensity: IntensityRange | None = None,
        redraws: dict[int, np.ndarray] | None = None,
        registered: dict[int, np.ndarray] | None = None,
        calibration: Calibration | None = None,
    ):
        self.request = request
        self.calibration = calibration
        self.on_model_grid = on_model_grid
        """{index: (samples, *config.grid)} in the observed frames' intensities."""
        self.native_shape = tuple(native_shape)
        self.pairs = pairs or PairFields({})
        """The observed native frames (`pairs.frames`) and their registrations, once per pair."""
        self._intensity = intensity
        self.redraws = redraws or {}
        """{target: (positions, samples, *config.grid)} in [0, 1]: the model's draws at the observed
        positions `native.redrawn_positions` names, from the target's own context and noise (what the
        warp measures the motion against)."""
        self.registered = registered or {}
        """{target: (k, j, i)}, `register` path: the targets made by registering the observed native
        frames alone (`native.registered_spans`); the model drew none of them."""

    @cached_property
    def _native(self) -> tuple[dict[int, np.ndarray], dict[int, list[float]]]:
        return native_draws(
            self.request,
            self.on_model_grid,
            self.native_shape,
            self.pairs,
            self._intensity,
            self.redraws,
            self.registered,
        )

    @property
    def draws(self) -> dict[int, np.ndarray]:
        """{index: (samples, k, j, i)}: each draw on the input grid, as `request.sampling.native` says
        (`native.native_draws`)."""
        return self._native[0]

    @property
    def fractions(self) -> dict[int, list[float]]:
        """{target: per draw}, `register` path: how far along its span's motion it lies."""
        return self._native[1]

    @cached_property
    def mean(self) -> dict[int, np.ndarray]:
        """{index: (k, j, i) float32}: the voxel-wise mean of the draws (the one draw for samples = 1)."""
        return _mean_of_draws(self.draws)

    @cached_property
    def mean_on_model_grid(self) -> dict[int, np.ndarray]:
        """{index: config.grid float32}: the mean of the draws as the model made them."""
        return _mean_of_draws(self.on_model_grid)

    @property
    def calibrated(self) -> bool:
        """Whether `std` is the calibrated predictive spread: the model carries a calibration fitted for
        this request's native path (sadm.generation.uncertainty)."""
        return self.calibration is not None and self.calibration.native == self.request.sampling.native

    @cached_property
    def draw_std(self) -> dict[int, np.ndarray]:
        """{index: (k, j, i) float32}: the voxel-wise std of the draws alone (0 for one sample)."""
        return {
            index: volumes.std(axis=0, dtype=np.float64).astype(np.float32) for index, volumes in self.draws.items()
        }

    @cached_property
    def spread_parts(self) -> dict[int, tuple[str, Features]]:
        """{index: (its calibration bucket, the parts of its predictive variance)}: what `spread` scales
        and what `sadm calibrate` fits (sadm.generation.uncertainty)."""
        noise_var = observed_noise_var(self.pairs.frames)
        profile = NoiseProfile.of(list(self.pairs.frames.values()))
        roles, times = self.request.roles, self.request.times
        return {
            index: (
                bucket_of(roles, index, times),
                features(
                    volumes,
                    noise_var,
                    roles,
                    index,
                    times,
                    self.pairs.frames,
                    noise_profile=profile,
                    pairs=self.pairs if index in self.registered else None,
                ),
            )
            for index, volumes in self.draws.items()
        }

    @cached_property
    def spread(self) -> dict[int, np.ndarray]:
        """{index: (k, j, i) float32}: the calibrated predictive σ — acquisition noise, the draws'
        spread and the motion's error, scaled so that ±1.96σ holds the truth at 95 % of voxels on the
        validation subjects. Needs `calibrated`."""
        if not self.calibrated:
            raise ValueError("this model has no spread calibration for the request's native path")
        return {index: self.calibration.sigma(bucket, parts) for index, (bucket, parts) in self.spread_parts.items()}

    @cached_property
    def std(self) -> dict[int, np.ndarray] | None:
        """{index: (k, j, i) float32}: the map written beside each frame with samples > 1 (None for one
        sample): the calibrated `spread` where the model has one (`calibrated`), else the draws' std,
        which counts neither noise nor the motion's error."""
        if self.request.sampling.samples == 1:
            return None
        return self.spread if self.calibrated else self.draw_std

    def moving(self, observed: Mapping[int, np.ndarray]) -> Generation:
        """The same draws and motions moving other observed frames (e.g. noise-free twins of the ones
        given): what the motion alone makes of them, apart from their noise. Nothing is drawn or
        registered again."""
        pairs = self.pairs.applied_to({index: np.asarray(frame, np.float32) for index, frame in observed.items()})
        roles, times = self.request.roles, self.request.times
        registered = {index: pairs.frame_at(span_of(roles, index, times)) for index in self.registered}
        return Generation(
            self.request,
            self.on_model_grid,
            self.native_shape,
            pairs,
            self._intensity,
            self.redraws,
            registered,
            self.calibration,
        )

    def __getitem__(self, index: int) -> np.ndarray:
        return self.mean[index]

    def __iter__(self) -> Iterator[int]:
        return iter(self.on_model_grid)

    def __len__(self) -> int:
        return len(self.on_model_grid)


def _padded(roles: Sequence[str], positions: Sequence[float], config: ModelConfig) -> tuple[int, tuple[float, ...]]:
    """The length the model's sequence takes (`context.padded_length`) and every frame's position:
    the padding frames continue the request's positions (indices, or times at the last interval);
    a continuous-time request whose times cannot be continued is not padded."""
    length = padded_length(len(roles), config.max_frames, config.attention.context)
    if length == len(roles):
        return length, tuple(positions)
    if config.attention.time_embedding == "index":
        return length, tuple(float(index) for index in range(length))
    continued = extend_times(positions, length)
    return (length, continued) if continued is not None else (len(roles), tuple(positions))


def _mean_of_draws(draws: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """{index: (samples, ...)} -> {index: voxel-wise mean, float32}; one draw is returned as it is."""
    return {
        index: volumes[0] if len(volumes) == 1 else volumes.mean(axis=0, dtype=np.float64).astype(np.float32)
        for index, volumes in draws.items()
    }


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
        torch.compile the UNet — off by default, because on a CPU compiling costs more than it saves
        (README, "Design decisions beyond the paper"); try it on a GPU with `sadm bench --compile`."""
        self.model = model.to(device).eval().use_channels_last(channels_last)
        uncertainty = model.config.uncertainty
        self.calibration = Calibration.from_dict(uncertainty) if uncertainty else None
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
    ) -> Engine:
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
        request: GenerationRequest | Sequence[str],
        *,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        **options,
    ) -> Generation:
        """Generate every missing and future frame of `request` (a `GenerationRequest`, or roles with
        `times=` and `SamplingOptions` fields as keywords) on the grid and in the intensity range of
        the observed frames (by the request's native path, else the model's). Inputs are never modified. `progress(done, total, frame)` runs after every
        denoising step; setting `cancel` stops within one step (GenerationCancelled)."""
        if not isinstance(request, GenerationRequest):
            times = options.pop("times", None)
            request = GenerationRequest(tuple(request), times, SamplingOptions(**options))
        elif options:
            raise TypeError(f"options {sorted(options)} were given beside a GenerationRequest; put them in it")
        config = self.config
        if request.sampling.native is None:
            request = request.with_sampling(native=config.native)  # the path chosen for this model
        native_shape = validate_frames(frames, request.roles)
        positions = request.positions_for(
            config.max_frames, config.attention.time_embedding, self.source or "this model"
        )
        sampling = request.sampling
        roles = list(request.roles)
        length, positions = _padded(roles, positions, config)

        observed = [np.asarray(frames[i]) for i in request.observed]
        intensity = IntensityRange.of_frames(observed, config.normalization.get("clip_percentiles"))
        sequence = torch.zeros(sampling.samples, length, *config.grid)
        for index in request.observed:
            volume = resample_to_shape(intensity.normalize(frames[index]), config.grid)
            sequence[:, index] = torch.from_numpy(np.clip(volume, 0.0, 1.0))

        generated = request.targets
        spans = registered_spans(roles, generated, request.times, sampling.native)
        drawn = [index for index in generated if index not in spans]
        plan = progress_plan(
            roles, generated, request.times, sampling.native, sampling.steps if self.model.is_diffusion else 1
        )
        total = sum(plan.values())
        before = dict(zip(plan, itertools.accumulate([0, *plan.values()])))  # steps done before each frame

        def on_step(frame_index: int, step: int) -> None:
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled(f"generation was cancelled at frame {frame_index}, step {step + 1}")
            if progress is not None:
                progress(before[frame_index] + step + 1, total, frame_index)

        if cancel is not None and cancel.is_set():
            raise GenerationCancelled("generation was cancelled before it started")
        redraw_at, redraws = None, {}
        if sampling.native != "resample":
            # Beside each target, the model's draw at observed frames' positions (sadm.generation.native).
            redraw_at = {index: redrawn_positions(roles, index, request.times, sampling.native) for index in drawn}
        filled = autoregressive_generate(
            self.model,
            sequence.to(self.device),
            roles + [FUTURE] * (length - len(roles)),
            torch.tensor(positions, dtype=torch.float32),
            sampling,
            generator=torch.Generator().manual_seed(sampling.seed),
            on_step=on_step,
            redraw_at=redraw_at,
            redraws=redraws,
            skip=set(spans) | set(range(len(roles), length)),  # padding frames are never drawn
        ).cpu()
        observed = {index: np.asarray(frames[index], dtype=np.float32) for index in request.observed}
        registered, pairs = {}, PairFields(observed)
        for index, span in spans.items():
            registered[index] = pairs.frame_at(span)
            on_step(index, 0)
        on_model_grid = {
            index: np.stack([intensity.denormalize(filled[n, index].numpy()) for n in range(sampling.samples)])
            if index not in registered
            else np.stack([resample_to_shape(registered[index], config.grid)] * sampling.samples)
            for index in generated
        }
        return Generation(
            request,
            on_model_grid,
            native_shape,
            pairs,
            intensity,
            {index: volumes.cpu().numpy() for index, volumes in redraws.items()},
            registered,
            self.calibration,
        )
