"""Training checkpoints: each a model folder (the EMA weights, loadable by the Engine) plus the exact
training state — weights, optimizer, every rank's RNG streams, step and wall time — written whole or
not at all, pruned to the last few, and read back for an exact resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from sadm.config import ModelConfig
from sadm.errors import CheckpointError
from sadm.storage.atomic import atomic_folder, atomic_write_bytes
from sadm.storage.checkpoint import (
    WEIGHTS_FILE,
    architecture_differences,
    load_tensors,
    read_config,
    save_tensors,
    write_model_files,
)

STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"


def latest_checkpoint(out: Path | str) -> Path | None:
    folders = sorted((Path(out) / "checkpoints").glob("step-*"))
    complete = [f for f in folders if (f / STATE_JSON).is_file()]
    return complete[-1] if complete else None


def truncate_log(path: Path, step: int) -> None:
    """Drop log lines of steps after the checkpoint, which the resumed run will write again."""
    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line).get("step", 0) <= step
    ]
    atomic_write_bytes(path, ("\n".join(kept) + "\n" if kept else "").encode())


def checkpoint_folder(out: Path | str, step: int) -> Path:
    return Path(out) / "checkpoints" / f"step-{step:08d}"


def write_checkpoint(
    folder: Path,
    exported: torch.nn.Module,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: dict[str, torch.Tensor],
    state: dict[str, Any],
) -> Path:
    """`exported` (the stamped EMA model) as the folder's model, with the live `model`'s weights, the
    optimizer's state, every rank's RNG states (`rng`) and `state` (step, world size, ...) beside it."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    optimizer_state = optimizer.state_dict()
    for index, values in optimizer_state["state"].items():
        for name, value in values.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value)
    tensors.update(rng)
    state = {**state, "param_groups": optimizer_state["param_groups"]}
    with atomic_folder(folder) as staging:
        write_model_files(staging, exported)
        save_tensors(staging / STATE_TENSORS, tensors)
        atomic_write_bytes(staging / STATE_JSON, json.dumps(state, indent=2).encode())
    return folder


def prune_checkpoints(out: Path, keep_last: int, keep_every: int | None) -> None:
    """Keep the last `keep_last` checkpoints and those at multiples of `keep_every`."""
    folders = sorted((out / "checkpoints").glob("step-*"))
    for old in folders[:-keep_last]:
        if keep_every is not None and int(old.name.split("-")[1]) % keep_every == 0:
            continue
        shutil.rmtree(old, ignore_errors=True)


def read_checkpoint(
    folder: Path, model_config: ModelConfig, world_size: int
) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(state, training tensors, EMA weights) of a checkpoint this run can continue: the same
    architecture, written by as many processes (each rank continues its own random stream)."""
    differences = architecture_differences(model_config.architecture(), read_config(folder).architecture())
    if differences:
        raise CheckpointError(f"cannot resume from {folder}: the model differs: " + "; ".join(differences))
    state = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
    if state["world_size"] != world_size:
        raise CheckpointError(
            f"{folder} was written by {state['world_size']} processes; resume with the same number "
            f"(now {world_size}) so that every rank continues its own random stream"
        )
    return state, load_tensors(folder / STATE_TENSORS), load_tensors(folder / WEIGHTS_FILE)


def optimizer_state(tensors: dict[str, torch.Tensor], state: dict[str, Any], device: torch.device) -> dict:
    """The optimizer's state_dict as `write_checkpoint` stored it, its moments on `device`."""
    restored: dict[str, Any] = {"state": {}, "param_groups": state["param_groups"]}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            restored["state"].setdefault(int(index), {})[name] = value.to(device) if name != "step" else value
    return restored
