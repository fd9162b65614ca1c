"""Every training config under configs/ (bundled recipes and experiments) builds its model and
training settings, and names its data relative to the file, where the repo's scripts write it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sadm.config import TrainConfig
from sadm.training.experiment import model_config_from, read_experiment

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


def stage_commands(*arguments: str) -> list[str]:
    """What scripts/train-bundled-model.sh would run, with `sadm` replaced by echo."""
    import os
    import subprocess

    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "train-bundled-model.sh"), *arguments],
        env={**os.environ, "SADM": "echo sadm"},
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in result.stdout.splitlines() if line.startswith("sadm train")]


@pytest.mark.parametrize("name", ["cardiac-demo", "brain-demo"])
def test_the_training_script_runs_each_stage_of_a_bundled_recipe_in_order(name):
    stages = [*sorted(p.stem for p in (REPO / "configs").glob(f"{name}-stage*.json")), name]
    commands = stage_commands(name)
    assert [c.split()[2] for c in commands] == [f"configs/{s}.json" for s in stages]
    assert all(f"--out runs/{s} " in c for c, s in zip(commands, stages))
    for stage, config in zip(stages[1:], stages):  # each later stage starts from the one before
        init_from = Path(read_experiment(REPO / "configs" / f"{stage}.json")["training"]["init_from"])
        run = init_from.parts[init_from.parts.index("runs") + 1]  # runs/STAGE/model or runs/STAGE/checkpoints/step-N
        assert run == config, f"{stage} starts from runs/{run}, not from the stage before it ({config})"


def test_an_ablation_follows_the_same_stages_each_from_its_own_stage_before():
    stages = [*sorted(p.stem for p in (REPO / "configs").glob("brain-demo-stage*.json")), "brain-demo"]
    commands = stage_commands("brain-demo", "attention-only", "--stop-at", "5")
    assert len(commands) == len(stages) and all("--variant attention-only" in c for c in commands)
    assert "--stop-at 5" in commands[0] and "--stop-at" not in " ".join(commands[1:])
    for command, before in zip(commands[1:], stages):
        assert f"--init runs/{before.replace('brain-demo', 'brain-demo-attention-only')}/model" in command


def test_an_experiment_states_only_what_differs_from_its_base(tmp_path):
    """`base` merges key by key, and the base's relative paths still point where they did."""
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "base.json").write_text(
        '{"model": {"preset": "tiny", "diffusion": {"guidance": 0.2}}, "training": {"steps": 7, '
        '"init_from": "../runs/stage1/model"}, "data": {"path": "../runs/data/x"}}'
    )
    (tmp_path / "recipes" / "experiments").mkdir()
    child = tmp_path / "recipes" / "experiments" / "child.json"
    child.write_text('{"base": "../base.json", "model": {"diffusion": {"conditioning_loss": 1.0}}}')
    experiment = read_experiment(child)
    assert experiment["model"] == {"preset": "tiny", "diffusion": {"guidance": 0.2, "conditioning_loss": 1.0}}
    assert experiment["training"] == {"steps": 7, "init_from": "../../runs/stage1/model"}
    assert (child.parent / experiment["data"]["path"]).resolve() == tmp_path / "runs" / "data" / "x"


def test_a_base_that_leads_back_to_itself_is_refused(tmp_path):
    from sadm.errors import ConfigError

    (tmp_path / "a.json").write_text('{"base": "b.json"}')
    (tmp_path / "b.json").write_text('{"base": "a.json"}')
    with pytest.raises(ConfigError, match="leads back to itself"):
        read_experiment(tmp_path / "a.json")


def test_every_experiment_names_a_base():
    for path in (REPO / "configs" / "experiments").glob("*.json"):
        import json

        assert "base" in json.loads(path.read_text()), f"{path.name}: name the recipe it varies with 'base'"


@pytest.mark.parametrize("name", ["cardiac-demo", "brain-demo"])
def test_a_bundled_model_names_the_committed_recipe_that_reproduces_it(name):
    """Issue 18 audit: a card once cited a config that was not in the repository. The published
    model's provenance names configs/NAME.json, and when it recorded the config's hash, that file is
    still the one it was trained with (a checkout that turned LF into CRLF aside)."""
    import hashlib
    import json

    info = json.loads((REPO / "Resources" / "Models" / name / "config.json").read_text(encoding="utf-8"))["provenance"]
    assert info["config_file"] == f"configs/{name}.json"
    assert info["command"].startswith(f"sadm train configs/{name}.json --out runs/{name}")
    if info.get("config_sha256"):
        content = (REPO / info["config_file"]).read_bytes()
        digests = {hashlib.sha256(content).hexdigest(), hashlib.sha256(content.replace(b"\r\n", b"\n")).hexdigest()}
        assert info["config_sha256"] in digests, f"configs/{name}.json changed since the published model was trained"
