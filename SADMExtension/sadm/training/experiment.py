"""From a training config file (JSON, under version control) and command-line overrides to a
ready Trainer: model config, optimisation settings, data split, output folder safety."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from sadm.config import ModelConfig, TrainConfig, merge_dicts, preset
from sadm.devices import resolve_device
from sadm.errors import ConfigError
from sadm.storage.checkpoint import read_config, total_steps
from sadm.storage.registry import resolve_model
from sadm.training.checkpoints import latest_checkpoint
from sadm.training.dataset import SequenceDataset, load_training_data, split_subjects
from sadm.training.distributed import Distributed
from sadm.training.trainer import Trainer


def model_config_from(spec: str | dict[str, Any]) -> ModelConfig:
    """A preset name, or a dict: {"preset": name, ...nested overrides} or a full config."""
    if isinstance(spec, str):
        return preset(spec)
    spec = dict(spec)
    name = spec.pop("preset", None)
    base = preset(name).to_dict() if name else ModelConfig().to_dict()
    return ModelConfig.from_dict(merge_dicts(base, spec))


def read_experiment(path: Path | str | None, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The config file: {"base": ..., "model": ..., "training": {...}, "data": {"path": ..., "cache": ...}}.

    "base" names another config file (relative to this one) whose settings this one starts from, so an
    experiment states only what differs from the recipe it varies. Paths inside the base stay relative
    to the base file (they are re-expressed relative to this one)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"training config {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ConfigError(f"training config {path} is not valid JSON: {error}") from error
    unknown = sorted(set(data) - {"base", "model", "training", "data", "description"})
    if unknown:
        raise ConfigError(f"training config {path} has unknown keys {unknown}; expected base, model, training, data")
    if "base" not in data:
        return data
    base_path = (path.parent / data.pop("base")).resolve()
    if base_path in _seen or base_path == path.resolve():
        raise ConfigError(f"training config {path}: its base {base_path} leads back to itself")
    base = _rebased(read_experiment(base_path, (*_seen, path.resolve())), base_path.parent, path.parent)
    return merge_dicts(base, data)


def _rebased(experiment: dict[str, Any], old: Path, new: Path) -> dict[str, Any]:
    """`experiment`'s relative file paths (data.path, training.init_from), relative to `new` instead of `old`."""
    experiment = json.loads(json.dumps(experiment))
    for section, key in (("data", "path"), ("data", "cache"), ("training", "init_from")):
        value = (experiment.get(section) or {}).get(key)
        if isinstance(value, str) and not Path(value).is_absolute() and ("/" in value or value.startswith(".")):
            experiment[section][key] = Path(os.path.relpath((old / value).resolve(), new.resolve())).as_posix()
    return experiment


def portable_path(path: Path | str | None, base: Path | None = None) -> str | None:
    """`path` as a model card should record it: normalised and relative to `base` (default: the
    working directory, the repository root when training from a checkout) when it lies inside, so the
    record names the file in the repository, not one machine's absolute path; else absolute."""
    if path is None:
        return None
    resolved = Path(path).resolve()
    base = Path(base or Path.cwd()).resolve()
    try:
        return resolved.relative_to(base).as_posix()
    except ValueError:
        return str(resolved)


def file_sha256(path: Path | str | None) -> str | None:
    """The config file's content hash: which committed config a run used, even under another name."""
    if path is None or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cpu_description() -> str:
    """'<CPU model> (N logical cores)' for model cards; platform.processor() is empty on Linux."""
    name = platform.processor() or platform.machine() or "CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            name = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} logical cores)"


def _model_folder(value: str, base: Path) -> Path:
    """`value` as a model folder relative to `base`, or the name of a bundled model."""
    candidate = base / Path(value).expanduser()
    return candidate.resolve() if candidate.is_dir() else resolve_model(value).resolve()


def build_trainer(
    config_path: Path | str | None,
    data: Path | str | None,
    out: Path | str,
    resume: bool = False,
    device: str = "auto",
    variant: str | None = None,
    training_overrides: dict[str, Any] | None = None,
    cache: Path | str | None = None,
    show_progress: bool = True,
) -> Trainer:
    experiment = read_experiment(config_path)
    model_config = model_config_from(experiment.get("model", "demo"))
    if variant is not None:
        model_config = model_config.updated({"variant": variant})
    file_training = dict(experiment.get("training", {}))
    if file_training.get("init_from") and config_path is not None:  # relative to the config file, like data
        file_training["init_from"] = str(_model_folder(file_training["init_from"], Path(config_path).parent))
    overrides = dict(training_overrides or {})
    if overrides.get("init_from"):
        overrides["init_from"] = str(_model_folder(overrides["init_from"], Path.cwd()))
    training = TrainConfig.from_dict({**file_training, **overrides})
    data_settings = experiment.get("data", {})
    if not data and not data_settings.get("path"):
        raise ConfigError("no training data: pass --data DIR (an ACDC root, a CSV manifest or a folder of sequences)")
    data_path = Path(data or data_settings["path"])
    if not data and config_path is not None and not data_path.is_absolute():
        data_path = Path(config_path).parent / data_path  # paths in a config file are relative to it
    out = Path(out)
    if not resume and latest_checkpoint(out) is not None:
        raise ConfigError(
            f"{out} already holds checkpoints; pass --resume to continue that run or choose another --out"
        )
    cache_dir = Path(cache) if cache else out / "cache"
    world = Distributed.from_environment(resolve_device(device))
    if world.is_main:  # one process builds the cache; the others read it once it is complete
        dataset = load_training_data(
            data_path, cache_dir, model_config.grid, training.num_frames, training.clip_percentiles
        )
    if world.world_size > 1:
        dist.barrier()
        if not world.is_main:
            dataset = SequenceDataset.from_cache(cache_dir)
    train_subjects, val_subjects = split_subjects(dataset.subjects, training.val_fraction, training.seed)
    provenance = {
        "command": "sadm " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "config_file": portable_path(config_path),
        "config_sha256": file_sha256(config_path),
        "data": portable_path(data_path),
        "train_subjects": len(train_subjects),
        "validation_subjects": val_subjects,
        "init_from": portable_path(training.init_from),
        "init_steps": total_steps(read_config(training.init_from).provenance) if training.init_from else None,
        "torch": torch.__version__,
        "host": platform.node(),
        "hardware": torch.cuda.get_device_name(0) if torch.cuda.is_available() else cpu_description(),
    }
    trainer = Trainer(
        model_config,
        training,
        dataset.restricted_to(train_subjects),
        dataset.restricted_to(val_subjects) if val_subjects else [],
        out,
        device,
        provenance,
        show_progress,
    )
    if resume and latest_checkpoint(out) is not None:
        trainer.resume()
    return trainer
