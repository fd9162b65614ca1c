"""How `sadm evaluate` names each model in its tables: after its variant (and what makes it differ
from the paper's), with its training steps or its folder where two names collide, numbered where
even those do. Rows, weight digests and reuse of earlier runs are keyed by these names."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

VARIANT_LABELS = {"sadm": "SADM", "diffusion-only": "diffusion-only", "attention-only": "attention-only"}


def method_names(engines: Sequence) -> list[str]:
    """One unique table name per engine (sadm.Engine), in order."""
    names = [model_name(engine.config) for engine in engines]
    names = [f"{name} ({detail(engine)})" if names.count(name) > 1 else name for name, engine in zip(names, engines)]
    if len(set(names)) < len(names):
        names = [f"{name} [{Path(engine.source).name}]" for name, engine in zip(names, engines)]
    return numbered(names)  # checkpoints of the same step from two runs share even their folder name


def numbered(names: list[str]) -> list[str]:
    """Names made unique by numbering repeats (#2, #3, ...): rows, digests and reuse are keyed by name."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return unique


def model_name(config) -> str:
    """The variant's name in tables; a model whose X̃ also holds the frames after the target, a SADM
    whose c also regressed the frame, or whose UNet diffused the residual against c, says so (none is
    the paper's)."""
    name = VARIANT_LABELS.get(config.variant, config.variant)
    if config.attention.context == "bidirectional":
        name += " (bidirectional context)"  # the paper's X̃ holds only the frames before the target
    d = config.diffusion
    if config.variant == "sadm" and d.conditioning_loss > 0:
        name += f" + L2 on c (w={d.conditioning_loss:g})"  # ASCII: method names reach CSVs and consoles
    if config.variant == "sadm" and d.residual_scale > 0:
        name += f", residual (s={d.residual_scale:g})"
    return name


def detail(engine) -> str:
    from sadm.storage.checkpoint import steps_before

    steps = engine.config.provenance.get("steps")
    before = steps_before(engine.config.provenance)
    if not steps:
        return Path(engine.source).name
    return f"{before} + {steps} steps fine-tuning" if before else f"{steps} steps"
