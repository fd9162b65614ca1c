"""Finding model folders by name: bundled demo models and folders on SADM_MODEL_PATH."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sadm.config import FORMAT_VERSION, ModelConfig
from sadm.errors import CheckpointError, ConfigError

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # sadm/
CONFIG_FILE = "config.json"  # kept here, not in checkpoint, so listing models and reading configs needs no torch
WEIGHTS_FILE = "model.safetensors"


def model_search_path() -> list[Path]:
    """Where bundled models are looked up, in order: $SADM_MODEL_PATH (os.pathsep-separated), the
    package's own `models/` (as installed beside the Slicer module), the repository's
    `Resources/Models/` (source checkout)."""
    paths = [Path(p) for p in os.environ.get("SADM_MODEL_PATH", "").split(os.pathsep) if p]
    paths.append(PACKAGE_DIR / "models")
    paths.append(PACKAGE_DIR.parents[1] / "Resources" / "Models")
    return paths


def available_models() -> dict[str, Path]:
    """Bundled model names -> folders (first hit on the search path wins)."""
    found: dict[str, Path] = {}
    for root in model_search_path():
        if root.is_dir():
            for child in sorted(root.iterdir()):
                if (child / CONFIG_FILE).is_file() and child.name not in found:
                    found[child.name] = child
    return found


def resolve_model(path_or_name: str | os.PathLike) -> Path:
    """A model folder from a path, or from the name of a bundled model."""
    candidate = Path(path_or_name).expanduser()
    if candidate.is_dir():
        return candidate
    models = available_models()
    if str(path_or_name) in models:
        return models[str(path_or_name)]
    names = ", ".join(sorted(models)) or "none found"
    raise CheckpointError(
        f"no model folder or bundled model named {str(path_or_name)!r}; bundled models: {names} "
        f"(searched {', '.join(str(p) for p in model_search_path())})"
    )


def read_config(folder: Path | str) -> ModelConfig:
    """Read and check a model folder's config.json."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"model folder {folder} does not exist or is not a folder")
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {CONFIG_FILE}; a model folder holds {CONFIG_FILE} + {WEIGHTS_FILE}")
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({error})") from error
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {version!r}, but this sadm ({FORMAT_VERSION=}) reads only "
            f"version {FORMAT_VERSION}; use the sadm release that wrote it or retrain"
        )
    try:
        return ModelConfig.from_dict(data)
    except (ConfigError, TypeError) as error:
        raise CheckpointError(f"{path} does not describe a valid model: {error}") from error
