"""Alg. 1 on random prefixes and with a per-sequence missing rate (so a bidirectional model meets
sequences shorter than max_frames and fully observed contexts in training), and fine-tuning from a
model folder (`sadm train --init`)."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from sadm.config import TrainConfig
from sadm.errors import CheckpointError, ConfigError
from sadm.generation.request import FUTURE, MISSING, OBSERVED
from sadm.storage.checkpoint import load_model
from sadm.training.batches import make_batch
from sadm.training.experiment import build_trainer, portable_path
from sadm.training.partitions import sample_partition


def context_lengths(truncate_probability: float, draws: int = 200) -> set[int]:
    sequences = torch.rand(draws, 6, 2, 4, 4) + 1.0
    batch = make_batch(
        sequences,
        generator=torch.Generator().manual_seed(0),
        context="bidirectional",
        truncate_probability=truncate_probability,
    )
    lengths = batch["context_mask"].sum(1)
    # a truncated sequence never has its target or any context slot beyond its new length
    assert all(int(t) < int(n) + 1 for t, n in zip(batch["target_index"], lengths))
    return set(lengths.tolist())


def test_without_truncation_every_bidirectional_context_has_all_other_frames():
    assert context_lengths(0.0) == {5}


def test_truncation_trains_on_every_prefix_length_from_two_frames():
    assert context_lengths(1.0) == {1, 2, 3, 4, 5}


def test_a_truncated_prefix_keeps_the_frames_and_positions_of_the_sequence():
    sequences = torch.rand(50, 6, 2, 4, 4) + 1.0
    times = torch.arange(6, dtype=torch.float32).expand(50, 6) * 3.0
    batch = make_batch(
        sequences,
        times=times,
        generator=torch.Generator().manual_seed(1),
        context="bidirectional",
        truncate_probability=1.0,
    )
    for b in range(50):
        n = int(batch["context_mask"][b].sum())
        target = int(batch["target_index"][b])
        others = [k for k in range(n + 1) if k != target]
        assert batch["positions"][b, :n].tolist() == [3.0 * k for k in others]
        assert torch.equal(batch["target"][b, 0], sequences[b, target] * 2 - 1)


def partitions(missing_rate, draws: int = 400, length: int = 8) -> list[list[str]]:
    generator = torch.Generator().manual_seed(0)
    return [sample_partition(length, generator, missing_rate) for _ in range(draws)]


def before_future(roles: list[str]) -> list[str]:
    return [r for r in roles[1:] if r != FUTURE]


def test_missing_rate_zero_and_one_give_no_missing_and_only_missing_frames():
    assert all(MISSING not in roles for roles in partitions(0.0))
    assert all(OBSERVED not in before_future(roles) for roles in partitions(1.0))


def test_a_per_sequence_missing_rate_makes_fully_observed_long_contexts_common():
    def fully_observed_long(runs):
        return sum(1 for roles in runs if len(before_future(roles)) >= 5 and MISSING not in roles)

    # with a fixed rate of 1/2 a context of ≥ 5 observed frames comes up ≤ 2⁻⁵ of the time
    assert fully_observed_long(partitions(None)) > 3 * max(1, fully_observed_long(partitions(0.5)))
    with pytest.raises(ValueError, match="missing_rate must lie in"):
        sample_partition(5, None, 1.5)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"truncate_probability": 1.5}, "truncate_probability must lie in"),
        ({"missing_rate": -0.1}, "missing_rate must lie in"),
    ],
)
def test_bad_sampling_settings_are_refused(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(values)


def test_a_run_trains_with_truncation_and_a_drawn_missing_rate(blob_dataset, tiny_experiment, tmp_path):
    overrides = {"truncate_probability": 0.5, "missing_rate": None, "steps": 3}
    trainer = build_trainer(
        tiny_experiment, blob_dataset, tmp_path / "run", show_progress=False, training_overrides=overrides
    )
    summary = trainer.run()
    assert summary["loss"] == summary["loss"]  # finite, not NaN
    assert load_model(tmp_path / "run" / "model").config.provenance["steps"] == 3


def test_init_from_starts_a_run_from_a_model_folder_and_records_it(blob_dataset, tiny_experiment, tmp_path):
    first = build_trainer(
        tiny_experiment, blob_dataset, tmp_path / "first", show_progress=False, training_overrides={"steps": 2}
    )
    first.run()
    start = load_model(tmp_path / "first" / "model")
    # the config file names the folder relative to itself, as it does its data
    config = json.loads(tiny_experiment.read_text(encoding="utf-8"))
    config["training"]["init_from"] = "first/model"
    fine_tune = tiny_experiment.with_name("fine-tune.json")
    fine_tune.write_text(json.dumps(config), encoding="utf-8")
    second = build_trainer(fine_tune, blob_dataset, tmp_path / "second", show_progress=False)
    assert all(torch.equal(second.model.state_dict()[k], v) for k, v in start.state_dict().items())
    assert all(torch.equal(second.ema.state_dict()[k], v) for k, v in start.state_dict().items())
    assert second.provenance["init_from"] == str((tmp_path / "first" / "model").resolve())
    second.run()
    assert load_model(tmp_path / "second" / "model").config.provenance["init_from"] == str(
        (tmp_path / "first" / "model").resolve()
    )


def test_init_from_another_architecture_is_refused_naming_the_difference(blob_dataset, tiny_experiment, tmp_path):
    build_trainer(
        tiny_experiment, blob_dataset, tmp_path / "first", show_progress=False, training_overrides={"steps": 1}
    ).run()
    config = json.loads(tiny_experiment.read_text(encoding="utf-8"))
    config["model"]["max_frames"] = 5
    other = tiny_experiment.with_name("other.json")
    other.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"another architecture.*max_frames"):
        build_trainer(
            other,
            blob_dataset,
            tmp_path / "second",
            show_progress=False,
            training_overrides={"init_from": str(tmp_path / "first" / "model")},
        )


def test_init_from_a_folder_that_is_not_a_model_is_refused(blob_dataset, tiny_experiment, tmp_path):
    with pytest.raises(CheckpointError, match="no model folder or bundled model named"):
        build_trainer(
            tiny_experiment,
            blob_dataset,
            tmp_path / "run",
            show_progress=False,
            training_overrides={"init_from": str(tmp_path / "nowhere")},
        )


def test_provenance_names_files_relative_to_the_working_directory(blob_dataset, tiny_experiment, tmp_path, monkeypatch):
    """Issue 18 audit: a card must name the repository's files, not one machine's absolute paths."""
    build_trainer(
        tiny_experiment, blob_dataset, tmp_path / "first", show_progress=False, training_overrides={"steps": 1}
    ).run()
    config = json.loads(tiny_experiment.read_text(encoding="utf-8"))
    config["training"]["init_from"] = "first/model"
    fine_tune = tiny_experiment.with_name("fine-tune.json")
    fine_tune.write_text(json.dumps(config), encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # as training from a repository checkout
    second = build_trainer(str(tmp_path / "." / fine_tune.name), blob_dataset, tmp_path / "second", show_progress=False)
    second.run()
    provenance = load_model(tmp_path / "second" / "model").config.provenance
    assert provenance["config_file"] == "fine-tune.json"
    assert provenance["config_sha256"] == hashlib.sha256(fine_tune.read_bytes()).hexdigest()
    assert provenance["init_from"] == provenance["training"]["init_from"] == "first/model"
    assert provenance["data"] == portable_path(blob_dataset)
    assert portable_path("/elsewhere/../elsewhere/data") == "/elsewhere/data"  # outside: absolute, normalised
