"""Model folders: config.json + model.safetensors + README.md, written atomically, never pickled."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sadm.config import ModelConfig
from sadm.errors import CheckpointError, ConfigError
from sadm.networks.sadm import SADM, parameter_count
from sadm.storage.atomic import atomic_folder, atomic_path, atomic_write_bytes
from sadm.storage.registry import CONFIG_FILE, WEIGHTS_FILE
from sadm.storage.registry import read_config as read_config  # torch-free, in registry; callers use both

CARD_FILE = "README.md"


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """safetensors file written atomically (temp file in the same folder + rename)."""
    with atomic_path(path) as staging:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(staging), metadata=metadata)
        os.chmod(staging, 0o666 & ~_umask())  # safetensors creates 0600 files; a shared model folder must be readable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file, turning a missing or truncated file into a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; a model folder needs {WEIGHTS_FILE} beside {CONFIG_FILE}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path} could not be read as safetensors ({error}); the file is truncated or not a "
            "weights file — copy the model folder again or retrain"
        ) from error


def default_model_card(config: ModelConfig, model: SADM) -> str:
    prov = config.provenance
    lines = [
        f"# SADM model ({config.variant})",
        "",
        "Sequence-Aware Diffusion Model (Yoon et al., IPMI 2023) for longitudinal 3D image generation.",
        "",
        f"- grid (k, j, i): {list(config.grid)}, up to {config.max_frames} frames",
        f"- parameters: Aθ {parameter_count(model.attention):,}, UNet {parameter_count(model.unet):,}",
        f"- trained: {prov.get('command', 'not recorded')}",
    ]
    if config.metrics:
        lines += ["", "## Metrics", "", "```json", json.dumps(config.metrics, indent=2), "```"]
    return "\n".join(lines) + "\n"


def write_model_files(folder: Path, model: SADM, model_card: str | None = None) -> None:
    """The three files of a model folder, into an existing (staging) folder."""
    config = model.config
    metadata = {"format": "pt", "sadm_architecture": json.dumps(config.architecture(), sort_keys=True)}
    save_tensors(folder / WEIGHTS_FILE, model.state_dict(), metadata)
    atomic_write_bytes(folder / CONFIG_FILE, config.to_json().encode())
    atomic_write_bytes(folder / CARD_FILE, (model_card or default_model_card(config, model)).encode())


def save_model(folder: Path | str, model: SADM, model_card: str | None = None) -> Path:
    """Write a model folder atomically (see `atomic_folder`)."""
    with atomic_folder(folder) as staging:
        write_model_files(staging, model, model_card)
    return Path(folder)


def describe_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> list[str]:
    """Human-readable differences between two state dicts (names and shapes)."""
    problems = []
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing:
        problems.append(f"missing tensors: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected tensors: {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    for name in sorted(set(expected) & set(found)):
        if tuple(expected[name].shape) != tuple(found[name].shape):
            problems.append(f"{name}: expected shape {tuple(expected[name].shape)}, found {tuple(found[name].shape)}")
    return problems


def architecture_differences(expected: dict[str, Any], found: dict[str, Any], prefix: str = "") -> list[str]:
    """Field-by-field differences of two architecture dicts, e.g. 'grid: [8, 16, 16] != [16, 32, 32]'."""
    problems = []
    for key in sorted(set(expected) | set(found)):
        a, b = expected.get(key), found.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            problems += architecture_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            problems.append(f"{prefix}{key}: config.json says {a!r}, the weights were made for {b!r}")
    return problems


def load_model(folder: Path | str, device: torch.device | str = "cpu") -> SADM:
    """Rebuild a model from its folder and load its weights, saying exactly what does not match."""
    folder = Path(folder)
    config = read_config(folder)
    weights_path = folder / WEIGHTS_FILE
    state = load_tensors(weights_path)
    with open(weights_path, "rb") as handle:
        header_size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(header_size))
    stored = header.get("__metadata__", {}).get("sadm_architecture")
    if stored is not None:
        differences = architecture_differences(config.architecture(), json.loads(stored))
        if differences:
            raise CheckpointError(f"{folder}: config.json does not match the weights: " + "; ".join(differences))
    model = SADM(config)
    problems = describe_mismatch(model.state_dict(), state)
    if problems:
        raise CheckpointError(f"{weights_path} does not fit the architecture in {CONFIG_FILE}: " + "; ".join(problems))
    model.load_state_dict(state)
    return model.to(device).eval()


def initial_weights(folder: Path | str, config: ModelConfig) -> dict[str, torch.Tensor]:
    """The weights of the model folder `folder` as the start of a new run (fine-tuning), after
    checking that it was built with exactly `config`'s architecture (grid, sizes, variant)."""
    model = load_model(folder)
    differences = architecture_differences(config.architecture(), model.config.architecture())
    if differences:
        raise ConfigError(
            f"training.init_from {folder} has another architecture than this run's model config: "
            + "; ".join(
                d.replace("config.json says", "this run has").replace("the weights were made for", "the folder has")
                for d in differences
            )
            + " — copy that folder's config.json into the training config's model section"
        )
    return model.state_dict()


def steps_before(provenance: dict[str, Any]) -> int:
    """Training steps of the models this one was fine-tuned from (training.init_from, followed back
    through their folders where no count was recorded); 0 for a model trained from scratch."""
    if provenance.get("init_steps") is not None:
        return int(provenance["init_steps"])
    folder = provenance.get("init_from")
    if not folder or not (Path(folder) / CONFIG_FILE).is_file():
        return 0
    return total_steps(read_config(folder).provenance)


def total_steps(provenance: dict[str, Any]) -> int:
    """All the training steps behind a model: its own and those of the models it was fine-tuned from."""
    return int(provenance.get("steps") or 0) + steps_before(provenance)
