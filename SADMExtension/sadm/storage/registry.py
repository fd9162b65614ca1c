"""Finding model folders by name: bundled demo models and folders on SADM_MODEL_PATH."""

from __future__ import annotations

import os
from pathlib import Path

from sadm.errors import CheckpointError

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # sadm/
CONFIG_FILE = "config.json"  # kept here, not imported from checkpoint, so listing models needs no torch


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
