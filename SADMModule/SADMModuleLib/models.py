"""Models: the bundled ones, resolving a name or folder, and why a model or a set of roles cannot be used."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from sadm.errors import CheckpointError, InvalidRolesError
from sadm.generation import request as engineRequest  # torch-free: the one set of request rules

DEFAULT_MODEL = "cardiac-demo"


def availableModels() -> dict:
    """Bundled model names -> folders; empty when the engine cannot be imported yet (no torch)."""
    try:
        from sadm.storage.registry import available_models
    except ImportError:
        return {}
    return available_models()


def resolveModel(model: str):
    """(folder, config) of a bundled model name or a model folder; CheckpointError says why not."""
    from sadm.storage.registry import read_config, resolve_model

    if not model:
        raise CheckpointError("no model selected: choose a bundled model or load a model folder")
    folder = resolve_model(model)
    return folder, read_config(folder)


def modelProblem(model: str) -> str | None:
    """Why `model` cannot be used, or None (cheap: reads config.json only)."""
    try:
        resolveModel(model)
    except (CheckpointError, ImportError) as error:
        return str(error)
    return None


def rolesProblem(roles: Sequence[str], model: str) -> str | None:
    """The rule `roles` break for `model`, or None; quiet when the engine is not importable yet."""
    maxFrames = None
    with contextlib.suppress(CheckpointError, ImportError):
        maxFrames = resolveModel(model)[1].max_frames
    try:
        engineRequest.validate_roles(roles, maxFrames)
    except InvalidRolesError as error:
        return str(error)
    return None


def frameCounts(roles: Sequence[str], model: str) -> tuple[int, int]:
    """(frames the model draws, frames registration makes) for `roles` on `model`'s own native path
    (the engine's `progress_plan`); every target counts as drawn when the model cannot be read."""
    targets = [index for index, role in enumerate(roles) if role != engineRequest.OBSERVED]
    try:
        from sadm.generation.native import registered_spans

        native = resolveModel(model)[1].native
    except (CheckpointError, ImportError):
        return len(targets), 0
    registered = len(registered_spans(roles, targets, None, native))
    return len(targets) - registered, registered
