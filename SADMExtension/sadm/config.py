"""Model and training configuration: the dataclasses are exactly what a model folder's config.json
and an experiment's "training" hold. They are frozen — change one with `ModelConfig.updated` or
`dataclasses.replace`, so that every config object has passed its validation."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sadm.defaults import DEFAULT_NATIVE_PATH, NATIVE_PATHS
from sadm.errors import ConfigError

FORMAT_VERSION = 1
VARIANTS = ("sadm", "diffusion-only", "attention-only")
TIME_EMBEDDINGS = ("index", "continuous")
PREDICTIONS = ("eps", "v")
CONTEXTS = ("causal", "bidirectional")


@dataclass(frozen=True)
class AttentionConfig:
    """Aθ, the factorized 4D ViViT that turns frames 1..i-1 into the conditioning volume of frame i."""

    patch_size: tuple[int, int, int] = (2, 4, 4)  # voxels per token along (k, j, i); l = 1 in time
    dim: int = 64
    depth: int = 2  # N: temporal-encoder blocks = spatial-decoder blocks
    heads: int = 4
    mlp_ratio: float = 2.0
    head_channels: int = 32  # channels of the upsampling head before the final 3D conv
    conditioning_channels: int = 1  # the paper's c is one volume
    skip_connections: bool = True  # decoder adds the encoder tokens of the same resolution
    time_embedding: str = "index"  # "index": learned per frame index; "continuous": Fourier of a time value
    time_scale: float = 1.0  # continuous times are divided by this (e.g. 100 for ages in years)
    # "causal": X̃ = frames before the target (the paper). "bidirectional": every frame but the target,
    # so a missing frame is imputed from the observed frames on both sides of it (beyond the paper).
    context: str = "causal"

    def __post_init__(self) -> None:  # JSON gives lists
        object.__setattr__(self, "patch_size", tuple(int(n) for n in self.patch_size))


@dataclass(frozen=True)
class UNetConfig:
    """The 3D ε-prediction UNet; names follow MONAI's DiffusionModelUNet."""

    channels: tuple[int, ...] = (32, 64, 128)
    num_res_blocks: int = 2
    attention_levels: tuple[bool, ...] = (False, False, True)
    norm_num_groups: int = 8
    heads: int = 4
    dropout: float = 0.0

    def __post_init__(self) -> None:  # JSON gives lists
        object.__setattr__(self, "channels", tuple(int(n) for n in self.channels))
        object.__setattr__(self, "attention_levels", tuple(bool(a) for a in self.attention_levels))


@dataclass(frozen=True)
class DiffusionConfig:
    """Continuous-time diffusion of the paper's §2.1: cosine logSNR schedule clipped to a range."""

    log_snr_min: float = -20.0
    log_snr_max: float = 20.0
    p_uncond: float = 0.1  # probability of dropping the condition during training (CFG)
    guidance: float = 0.1  # default w at sampling; the paper uses 0.1
    # What the UNet outputs: "eps" (the paper) or "v" = α ε − σ x (Salimans & Ho 2022). With ε a
    # small error at low SNR becomes a huge error in x̂ = (z − σ ε̂)/α (α ≈ 5e-5 at λ = −20); the
    # README's "Design decisions beyond the paper" has the measurement. Samplers always receive ε̂.
    prediction: str = "v"
    # Weight of an ℓ2 loss that makes c = Aθ(X̃) itself regress the target frame (the attention-only
    # ablation's loss), added to the diffusion loss of Alg. 1; 0 is the paper (c learns only through
    # the UNet). The ablations ignore it: attention-only is that loss alone, diffusion-only has no Aθ.
    conditioning_loss: float = 0.0
    # s > 0: the UNet diffuses the residual (x − c̃)/s of the frame x against c̃ = 2c − 1 (c read as
    # a frame in [0, 1]) and generation adds c̃ back, so that with conditioning_loss the diffusion
    # refines Aθ's regression instead of redrawing the frame from noise (predict-and-refine, as in
    # Whang et al. 2022, "Deblurring via Stochastic Refinement"); s ≈ the residual's spread. 0: the paper.
    residual_scale: float = 0.0


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model and feed it data as it was trained."""

    grid: tuple[int, int, int] = (16, 32, 32)  # model grid in numpy (k, j, i) order
    max_frames: int = 8
    variant: str = "sadm"
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    # How intensities were normalised per sequence during training; generation repeats it.
    normalization: dict[str, Any] = field(default_factory=lambda: {"method": "minmax", "clip_percentiles": None})
    native: str = DEFAULT_NATIVE_PATH  # how generated frames reach the input grid unless a request says
    # the spread map's calibration, fitted on validation subjects (sadm.generation.uncertainty); {}: none
    uncertainty: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    provenance: dict[str, Any] = field(default_factory=dict)  # training command, data, steps, hardware
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", tuple(int(n) for n in self.grid))
        self.validate()

    def updated(self, changes: dict[str, Any]) -> ModelConfig:
        """A copy with `changes` (nested like config.json, e.g. {"attention": {"context": "causal"}})
        merged in and validated."""
        return ModelConfig.from_dict(merge_dicts(self.to_dict(), changes))

    # --- checks -------------------------------------------------------------------------------
    def validate(self) -> None:
        """Fail early, naming the value, for configurations the networks cannot be built from."""
        if len(self.grid) != 3 or min(self.grid) < 1:
            raise ConfigError(f"grid must be three positive sizes (k, j, i); got {self.grid}")
        if self.variant not in VARIANTS:
            raise ConfigError(f"variant must be one of {VARIANTS}; got {self.variant!r}")
        if self.native not in NATIVE_PATHS:
            raise ConfigError(f"native must be one of {NATIVE_PATHS}; got {self.native!r}")
        if self.max_frames < 2:
            raise ConfigError(f"max_frames must be at least 2 (one observed, one generated); got {self.max_frames}")
        att = self.attention
        if att.context not in CONTEXTS:
            raise ConfigError(f"attention.context must be one of {CONTEXTS}; got {att.context!r}")
        if att.time_embedding not in TIME_EMBEDDINGS:
            raise ConfigError(f"attention.time_embedding must be one of {TIME_EMBEDDINGS}; got {att.time_embedding!r}")
        if att.dim % att.heads:
            raise ConfigError(f"attention.dim ({att.dim}) must be divisible by attention.heads ({att.heads})")
        factor = 2**att.depth
        for axis, (size, patch) in enumerate(zip(self.grid, att.patch_size)):
            if size % (patch * factor):
                raise ConfigError(
                    f"grid axis {axis} has {size} voxels, which is not divisible by patch_size[{axis}]={patch} "
                    f"times 2**depth={factor} (each temporal-encoder block merges 2 tokens per axis); "
                    f"choose a grid that is a multiple of {patch * factor} along that axis"
                )
        unet = self.unet
        if len(unet.attention_levels) != len(unet.channels):
            raise ConfigError(
                f"unet.attention_levels has {len(unet.attention_levels)} entries but unet.channels has "
                f"{len(unet.channels)}; give one flag per level"
            )
        for ch in unet.channels:
            if ch % unet.norm_num_groups:
                raise ConfigError(f"unet channel count {ch} is not divisible by norm_num_groups={unet.norm_num_groups}")
        down = 2 ** (len(unet.channels) - 1)
        for axis, size in enumerate(self.grid):
            if size % down:
                raise ConfigError(
                    f"grid axis {axis} has {size} voxels, not divisible by {down} (the UNet halves it "
                    f"{len(unet.channels) - 1} times)"
                )
        d = self.diffusion
        if not d.log_snr_min < d.log_snr_max:
            raise ConfigError(f"diffusion.log_snr_min ({d.log_snr_min}) must be below log_snr_max ({d.log_snr_max})")
        if d.prediction not in PREDICTIONS:
            raise ConfigError(f"diffusion.prediction must be one of {PREDICTIONS}; got {d.prediction!r}")
        if not 0.0 <= d.p_uncond < 1.0:
            raise ConfigError(f"diffusion.p_uncond must lie in [0, 1); got {d.p_uncond}")
        if d.conditioning_loss < 0.0:
            raise ConfigError(
                f"diffusion.conditioning_loss must be 0 (the paper) or positive; got {d.conditioning_loss}"
            )
        if d.residual_scale < 0.0:
            raise ConfigError(f"diffusion.residual_scale must be 0 (the paper) or positive; got {d.residual_scale}")
        for option, value in (("conditioning_loss", d.conditioning_loss), ("residual_scale", d.residual_scale)):
            if value > 0.0 and att.conditioning_channels != 1:
                raise ConfigError(
                    f"diffusion.{option} reads c as a frame, so c must be one volume; attention.conditioning_channels "
                    f"is {att.conditioning_channels} (set it to 1 or diffusion.{option} to 0)"
                )

    # --- (de)serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = dict(data)
        nested = {"attention": AttentionConfig, "unet": UNetConfig, "diffusion": DiffusionConfig}
        for key, klass in nested.items():
            if key in data:
                data[key] = _build(klass, data[key], key)
        return _build(cls, data, "config")

    def architecture(self) -> dict[str, Any]:
        """The fields that decide the weights' shapes (compared when loading a checkpoint)."""
        d = self.to_dict()
        keys = ("grid", "max_frames", "variant", "attention", "unet")
        return {**{k: d[k] for k in keys}, "prediction": d["diffusion"]["prediction"]}


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; `batch_size` sequences per micro-batch per process, so one optimiser
    step sees batch_size × grad_accumulation × world_size sequences."""

    steps: int = 20000
    batch_size: int = 4
    grad_accumulation: int = 1
    lr: float = 2e-4
    min_lr_ratio: float = 0.05
    warmup_steps: int = 500
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    ema_decay: float = 0.999
    checkpoint_every: int = 1000
    keep_last: int = 3
    keep_every: int | None = None  # also keep checkpoints at multiples of this step (ablations compared at equal steps)
    validate_every: int = 1000
    val_fraction: float = 0.1
    val_generate: int = 2  # held-out sequences whose last frame is generated and scored
    val_sampler_steps: int = 20
    log_every: int = 10
    seed: int = 0
    num_frames: int | None = None  # temporal resampling of every sequence (ACDC ED→ES: 12)
    clip_percentiles: list[float] | None = None
    bf16: bool = True
    truncate_probability: float = 0.0  # Alg. 1 on random prefixes too (see train.make_batch)
    missing_rate: float | None = 0.5  # None: drawn per sequence (see roles.sample_partition)
    previous_observed_probability: float = 0.0  # frame i−1 made observed, as at inference (make_batch)
    anchor_target_probability: float = 0.0  # ask for an anchor's frame from i's context (make_batch)
    normalize_by_observed: bool = True  # examples in their observed frames' window, as at generation
    init_from: str | None = None  # a model folder whose weights start this run (fine-tuning)

    def __post_init__(self) -> None:
        for name in (
            "steps",
            "batch_size",
            "grad_accumulation",
            "checkpoint_every",
            "validate_every",
            "log_every",
            "keep_last",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"training.{name} must be at least 1; got {getattr(self, name)}")
        if self.keep_every is not None and self.keep_every < 1:
            raise ConfigError(f"training.keep_every must be at least 1 (or null); got {self.keep_every}")
        if self.lr <= 0:
            raise ConfigError(f"training.lr must be positive; got {self.lr}")
        for name in ("truncate_probability", "previous_observed_probability", "anchor_target_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"training.{name} must lie in [0, 1]; got {getattr(self, name)}")
        if self.missing_rate is not None and not 0.0 <= self.missing_rate <= 1.0:
            raise ConfigError(
                f"training.missing_rate must lie in [0, 1] or be null (drawn per sequence); got {self.missing_rate}"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"training has unknown keys {unknown}; expected some of {sorted(known)}")
        return cls(**values)


def merge_dicts(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` merged in, nested dicts key by key (how experiment files and
    `ModelConfig.updated` say only what differs)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_dicts(merged[key], value)
        else:
            merged[key] = value
    return merged


def _build(klass, values: dict[str, Any], where: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a JSON object; got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(klass)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where} has unknown keys {unknown}; expected some of {sorted(known)}")
    return klass(**values)


def preset(name: str) -> ModelConfig:
    """Named configurations: `tiny` for tests, `demo` for CPU-trainable bundled models, `paper` for
    the paper's cardiac setting (12 frames at 128×128×32, i.e. numpy grid (32, 128, 128))."""
    if name == "tiny":
        return ModelConfig(
            grid=(8, 16, 16),
            max_frames=6,
            attention=AttentionConfig(patch_size=(2, 4, 4), dim=32, depth=1, heads=2, head_channels=16),
            unet=UNetConfig(channels=(16, 32), num_res_blocks=1, attention_levels=(False, True), norm_num_groups=8),
        )
    if name == "demo":
        return ModelConfig(
            grid=(16, 32, 32),
            max_frames=12,
            attention=AttentionConfig(patch_size=(2, 4, 4), dim=64, depth=2, heads=4, head_channels=32),
            unet=UNetConfig(channels=(32, 64, 128), num_res_blocks=2, attention_levels=(False, False, True)),
        )
    if name == "paper":
        return ModelConfig(
            grid=(32, 128, 128),
            max_frames=12,
            attention=AttentionConfig(patch_size=(2, 8, 8), dim=128, depth=2, heads=8, head_channels=32),
            unet=UNetConfig(
                channels=(32, 64, 128, 256),
                num_res_blocks=2,
                attention_levels=(False, False, False, True),
                norm_num_groups=16,
                heads=8,
            ),
        )
    raise ConfigError(f"unknown preset {name!r}; choose one of 'tiny', 'demo', 'paper'")
