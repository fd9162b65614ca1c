"""Model folders: bit-exact round trips, atomic writes, and loud failures on bad folders."""

from __future__ import annotations

import json

import pytest
import torch

import sadm.storage.checkpoint as checkpoint
from sadm import CheckpointError, Engine
from sadm.config import preset
from sadm.networks.sadm import SADM
from sadm.storage.checkpoint import load_model, save_model


def test_round_trip_is_bit_exact_and_writes_the_three_files(tiny_model, tmp_path):
    folder = save_model(tmp_path / "model", tiny_model)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = load_model(folder)
    assert loaded.config == tiny_model.config
    original, restored = tiny_model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    assert "Aθ" in (folder / "README.md").read_text(encoding="utf-8")


def test_weights_are_as_readable_as_the_config_so_a_model_folder_can_be_shared(tiny_model, tmp_path):
    folder = save_model(tmp_path / "model", tiny_model)
    modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}
    assert modes["model.safetensors"] == modes["config.json"], modes


def test_engine_loads_a_folder_and_a_bundled_name_from_the_model_path(tiny_model, tmp_path, monkeypatch):
    save_model(tmp_path / "models" / "my-model", tiny_model)
    monkeypatch.setenv("SADM_MODEL_PATH", str(tmp_path / "models"))
    assert Engine.load("my-model", device="cpu").config == tiny_model.config
    assert Engine.load(tmp_path / "models" / "my-model", device="cpu").config == tiny_model.config
    with pytest.raises(CheckpointError, match="no model folder or bundled model named 'nope'.*my-model"):
        Engine.load("nope", device="cpu")


def test_saving_over_a_model_replaces_it_whole(tiny_model, tmp_path):
    folder = tmp_path / "model"
    save_model(folder, tiny_model)
    other = SADM(preset("tiny"))
    save_model(folder, other)
    loaded = load_model(folder)
    assert all(torch.equal(loaded.state_dict()[k], other.state_dict()[k]) for k in other.state_dict())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp or retired folders left


def test_a_save_that_dies_midway_leaves_the_previous_model_loadable(tiny_model, tmp_path, monkeypatch):
    folder = save_model(tmp_path / "model", tiny_model)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_model(folder, SADM(preset("tiny")))
    loaded = load_model(folder)
    assert all(torch.equal(loaded.state_dict()[k], tiny_model.state_dict()[k]) for k in loaded.state_dict())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="model folder .*absent does not exist"):
        load_model(tmp_path / "absent")


def test_missing_weights_are_named(tiny_model_folder):
    (tiny_model_folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors does not exist"):
        load_model(tiny_model_folder)


def test_truncated_weights_are_reported_as_truncated(tiny_model_folder):
    path = tiny_model_folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="could not be read as safetensors.*truncated"):
        load_model(tiny_model_folder)


def test_config_of_another_format_version_is_refused(tiny_model_folder):
    path = tiny_model_folder / "config.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["format_version"] = 99
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CheckpointError, match="format_version 99.*reads only version 1"):
        load_model(tiny_model_folder)


def test_config_that_does_not_match_the_weights_says_which_fields_differ(tiny_model_folder):
    path = tiny_model_folder / "config.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["grid"] = [16, 32, 32]
    data["attention"]["dim"] = 64
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(
        CheckpointError, match=r"attention\.dim: config.json says 64, the weights were made for 32.*grid"
    ):
        load_model(tiny_model_folder)


def test_weights_of_another_architecture_without_metadata_list_the_shape_mismatches(tmp_path, tiny_model):
    folder = save_model(tmp_path / "model", tiny_model)
    other = SADM(preset("demo"))
    checkpoint.save_tensors(folder / "model.safetensors", other.state_dict())  # no architecture metadata
    with pytest.raises(CheckpointError, match="does not fit the architecture.*expected shape"):
        load_model(folder)


def test_unreadable_config_is_reported(tiny_model_folder):
    (tiny_model_folder / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CheckpointError, match="config.json is not valid JSON"):
        load_model(tiny_model_folder)
    (tiny_model_folder / "config.json").write_text(
        json.dumps({"format_version": 1, "colour": "blue"}), encoding="utf-8"
    )
    with pytest.raises(CheckpointError, match="unknown keys \\['colour'\\]"):
        load_model(tiny_model_folder)
