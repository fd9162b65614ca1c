"""Every training config under configs/ (bundled recipes and experiments) builds its model and
training settings, and names its data relative to the file, where the repo's scripts write it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sadm.experiment import model_config_from, read_experiment
from sadm.trainer import TrainConfig

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs").rglob("*.json"))


def test_there_are_configs_to_check():
    assert any(p.name == "cardiac-demo.json" for p in CONFIGS)
    assert any(p.parent.name == "experiments" for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_a_committed_config_builds_and_finds_its_data_under_runs_data(path):
    experiment = read_experiment(path)
    model_config_from(experiment["model"])  # raises ConfigError, naming the value, if it cannot be built
    TrainConfig.from_dict(experiment.get("training", {}))
    data = Path(experiment["data"]["path"])
    assert not data.is_absolute()
    assert (REPO / "runs" / "data").resolve() in (path.parent / data).resolve().parents
