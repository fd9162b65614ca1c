#!/usr/bin/env python3
"""Publish a trained bundled model into Resources/Models/NAME: evaluate it (with its ablations when
they exist, and the baselines) on held-out synthetic subjects, time the demo, and write the model
folder — config.json, EMA model.safetensors and a model card README.md — in one atomic step.

    .venv/bin/python scripts/publish_bundled_model.py cardiac-demo [--checkpoint runs/cardiac-demo/checkpoints/step-00006000]

A model fine-tuned from another (training.init_from, e.g. configs/brain-demo.json from its stage 2) is
compared with the model it started from too; each ablation stage with the SADM stage of its steps
(ablation_pairs). Models already scored under the same protocol in runs/NAME-evaluation are not run again
(`sadm evaluate --reuse`, keyed by the weights' sha256).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sadm.config import TrainConfig, merge_dicts  # the venv that runs this script has sadm
from sadm.evaluation.model_card import model_card, provenance, stage_command, training_chain
from sadm.training.experiment import file_sha256, model_config_from, read_experiment

REPO = Path(__file__).resolve().parents[1]

SADM = [sys.executable, "-m", "sadm.cli"]
BUNDLES = {
    "cardiac-demo": {
        "kind": "cardiac",
        "options": [],
        "sampling": {"native": "register"},
        "test_subjects": 10,
        "test_data": "runs/data/cardiac-test",
        "train_data": "sadm data make-synthetic --kind cardiac --subjects 60 --seed 0 --out runs/data/cardiac-train",
        "task": "the synthetic beating-heart phantom from end-diastole to end-systole (stage 1 on its 9-14 rendered "
        "phases resampled in time to 12 frames, stage 2 on the phases as rendered)",
        "why": "Where two frames are observed the model adds nothing to registering them yet (README, The registration "
        "baseline and the registration floor), so its native path is `register`: those frames are the registration "
        "estimate and the model draws only frames with one observed frame before them (the single setting, frame 1 of "
        "the full setting), from a context padded to its 12 frames. Missing frames therefore score as registration; the "
        "full setting is ahead of it by 0.003 SSIM and 0.01 dB, a tie in PSNR. Stage 2 trained the anchor-position draws "
        "of the motion the single setting's frames are moved by (frame 0 included, which Alg. 1 never makes a target) "
        "and contexts with frame i-1 present: the single setting gained 1.0 dB and its change correlation rose from "
        "0.41 to 0.54 over stage 1. The ablations at equal steps are in the README (Ablations at equal steps).",
    },
    "brain-demo": {
        "kind": "brain",
        "options": ["--option", "voxel_mm=4.0"],
        "sampling": {"native": "register", "diffusion": {"guidance": 0.0}},
        "test_subjects": 8,
        "test_data": "runs/data/brain-test/manifest.csv",
        "train_data": "sadm data make-synthetic --kind brain --subjects 40 --seed 0 --out runs/data/brain-train "
        "--option voxel_mm=4.0 --option variety=template",
        "task": "synthetic brain ageing from nilearn's MNI152 template, five scans per subject at irregular ages",
        "why": "Each held-out brain (the phantom's subject variety) has its own anatomy and ages its own way, while "
        "stages 1-4 trained on one anatomy and one ageing pattern (the template variety): the motion between two "
        "observed scans then says more than the model's drawn motion, so its native path is `register` (chosen on the "
        "validation subjects, README, Which path for which model): where two scans are observed the frame is their "
        "registration, and the model draws only scans with one observed scan before them (the single setting, the "
        "second scan of the full setting), from a context padded to its 5 frames, with guidance w = 0. Missing scans "
        "therefore score as registration and the full setting is ahead of it by 0.03 dB; the single setting is ahead "
        "of copy-last by 0.38 dB. The ageing between two scans is small beside the scans' own noise, so margins are "
        "small by nature. Fine-tuning 500 steps on the subject variety changed nothing on the validation subjects "
        "(configs/experiments/brain-varied-anatomy.json). Its change correlation in the single setting (0.30) stays "
        "below 0.5: it draws the direction of ageing better than its size.",
    },
}
ABLATIONS = ("diffusion-only", "attention-only")
MAX_BYTES = 25 * 2**20


def run(command: list[str]) -> float:
    print("$ " + " ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True)
    return time.perf_counter() - started


def _given(flag: str, value: object) -> list[str]:
    """[flag, value] when the option was given, else nothing (the command's own default applies)."""
    return [] if value is None else [flag, str(value)]


def latest_model(run_dir: Path, step: int | None = None) -> Path | None:
    """The checkpoint at `step` if kept, else the finished model, else the latest checkpoint."""
    if step is not None and (run_dir / "checkpoints" / f"step-{step:08d}" / "model.safetensors").is_file():
        return run_dir / "checkpoints" / f"step-{step:08d}"
    if (run_dir / "model" / "model.safetensors").is_file():
        return run_dir / "model"
    checkpoints = sorted(p for p in (run_dir / "checkpoints").glob("step-*") if (p / "training_state.json").is_file())
    return checkpoints[-1] if checkpoints else None


def run_folder(model: Path) -> Path:
    """The training run a model folder came from: runs/X for runs/X/model and runs/X/checkpoints/step-N."""
    return model.parent if model.name == "model" else model.parent.parent


def ablation_pairs(
    runs: Path,
    name: str,
    model: Path,
    start: Path | None = None,
    start_stage: int = 1,
) -> tuple[dict[str, Path], list[tuple[Path, Path]]]:
    """The ablations to evaluate with a published model, and the (SADM, ablation) pairs trained the
    same steps. An ablation follows SADM's stages (scripts/train-bundled-model.sh): its last stage
    (runs/NAME-VARIANT) is compared with the published model, its stage before
    (runs/NAME-VARIANT-stageK, K = `start_stage`) with SADM's stage K `start`; one that stopped earlier
    is compared with SADM's checkpoint at its step, when that checkpoint was kept."""
    stages = [(model, "", "")] + (
        [(start, f"-stage{start_stage}", f" (stage {start_stage})")] if start is not None else []
    )
    ablations: dict[str, Path] = {}
    pairs: list[tuple[Path, Path]] = []
    for sadm, suffix, label in stages:
        sadm_step = provenance(sadm)["steps"]
        for variant in ABLATIONS:
            folder = latest_model(runs / f"{name}-{variant}{suffix}", sadm_step)
            if folder is None:
                continue
            ablations[variant + label] = folder
            step = provenance(folder)["steps"]
            partner = sadm if step == sadm_step else latest_model(run_folder(sadm), step)
            if partner is not None and provenance(partner)["steps"] == step:
                pairs.append((partner, folder))
    return ablations, pairs


def restaged_config(model: Path, name: str) -> dict:
    """The model's config.json, its provenance naming the bundled recipe's last stage (configs/NAME.json
    into runs/NAME) when it was trained from another config (an experiment that won, then became the
    recipe). What the run recorded stays under `recorded`. Refused unless the committed recipe holds
    the same model and training settings; only init_from may differ: the recipe names the stage
    before's run, the experiment named the model it fine-tuned as it was bundled then."""
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    info = config["provenance"]
    recipe = f"configs/{name}.json"
    if info.get("config_file") in (recipe, None):
        return config
    experiment = read_experiment(REPO / recipe)
    built = dataclasses.asdict(TrainConfig.from_dict(experiment.get("training", {})))
    differs = sorted(k for k, v in built.items() if k != "init_from" and info["training"].get(k) != v)
    published = model_config_from({k: v for k, v in config.items() if k not in ("provenance", "metrics")})
    if differs or published.architecture() != model_config_from(experiment["model"]).architecture():
        raise SystemExit(
            f"{model} was trained with {info['config_file']}, which {recipe} does not reproduce "
            f"({', '.join(differs) or 'the architecture'} differ): make {recipe} that config first"
        )
    stage_before = experiment["training"].get("init_from")
    recorded = {key: info.get(key) for key in ("command", "config_file", "config_sha256", "init_from")}
    info.update(
        command=stage_command(name, 1, 1),  # the last stage's command: configs/NAME.json into runs/NAME
        config_file=recipe,
        config_sha256=file_sha256(REPO / recipe),
        init_from=None if stage_before is None else Path(stage_before.removeprefix("../")).as_posix(),
        recorded={
            "note": f"as the run recorded them, trained with {recorded['config_file']} before it became {recipe}",
            **recorded,
        },
    )
    info["training"]["init_from"] = info["init_from"]
    return config


SAMPLING_CHOSEN = (
    "sampling defaults chosen after training on the validation subjects (seed 2000; README, The registration "
    "baseline and the registration floor); the recipe configs/NAME.json trains the weights and does not set them"
)


def with_sampling_defaults(config: dict, sampling: dict) -> dict:
    """The published config with the sampling defaults chosen on validation subjects (the model's own
    native path, its guidance weight). They do not change the weights, so they live here and in the
    provenance, not in the training recipe, whose hash the provenance records."""
    config = merge_dicts(config, sampling)
    config["provenance"]["sampling_defaults"] = {**sampling, "note": SAMPLING_CHOSEN}
    model_config_from({k: v for k, v in config.items() if k not in ("provenance", "metrics")})  # still valid
    return config


def kept_calibration(config: dict, model: Path, target: Path) -> dict:
    """The published config with the σ-map calibration of the folder it replaces, when that was fitted
    for these very weights and this native path (`sadm calibrate --apply`); otherwise none, and a
    reminder to fit one on the validation subjects."""
    old = target / "config.json"
    if old.is_file() and (target / "model.safetensors").is_file():
        uncertainty = json.loads(old.read_text(encoding="utf-8")).get("uncertainty") or {}
        same = file_sha256(target / "model.safetensors") == file_sha256(model / "model.safetensors")
        if uncertainty and same and uncertainty.get("native") == config.get("native"):
            return {**config, "uncertainty": uncertainty}
    print(
        f"note: {target.name} has no σ-map calibration for these weights and the `{config.get('native')}` path; fit "
        f"one on validation subjects: sadm calibrate --model {target} --data <validation data> --samples 8 --apply"
    )
    return {**config, "uncertainty": {}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(BUNDLES))
    parser.add_argument("--checkpoint", type=Path, help="model or checkpoint folder (default: latest of runs/NAME)")
    parser.add_argument("--sampler", help="evaluation sampler (default: the engine's, sadm.defaults)")
    parser.add_argument("--steps", type=int, help="evaluation steps (default: the sampler's)")
    parser.add_argument("--subjects", type=int, help="evaluate on the first N held-out subjects (default: all)")
    parser.add_argument("--no-demo", action="store_true")
    args = parser.parse_args()
    bundle = BUNDLES[args.name]
    model = args.checkpoint or latest_model(REPO / "runs" / args.name)
    if model is None:
        raise SystemExit(f"no trained model under runs/{args.name}: run scripts/train-bundled-model.sh {args.name}")
    if (model / "model.safetensors").stat().st_size > MAX_BYTES:
        raise SystemExit(f"{model} is over 25 MB; bundled models must stay under it")
    step = provenance(model)["steps"]
    test_data = REPO / bundle["test_data"]
    if not test_data.exists():
        run(
            [
                *SADM,
                "data",
                "make-synthetic",
                "--kind",
                bundle["kind"],
                "--subjects",
                str(bundle["test_subjects"]),
                "--seed",
                "1000",
                "--out",
                bundle["test_data"].split("/manifest.csv")[0],
                *bundle["options"],
            ]
        )
    init_from = provenance(model).get("init_from")
    start = Path(init_from) if init_from and (Path(init_from) / "model.safetensors").is_file() else None
    start_stage = len(training_chain(model)) - 1
    ablations, pairs = ablation_pairs(REPO / "runs", args.name, model, start, start_stage)
    evaluation = REPO / "runs" / f"{args.name}-evaluation"
    same_step = [m for m, _ in pairs if m not in (model, start)]
    compared = list(dict.fromkeys([model, *([start] if start is not None else []), *same_step, *ablations.values()]))
    reuse = ["--reuse", str(evaluation)] if (evaluation / "evaluation.json").is_file() else []
    run(
        [
            *SADM,
            "evaluate",
            *(option for f in compared for option in ["--model", str(f)]),
            "--data",
            bundle["test_data"],  # as the repository names it (the tables print it); run from REPO
            "--out",
            str(evaluation),
            "--overwrite",
            "--no-progress",
            *reuse,
            *_given("--sampler", args.sampler),
            *_given("--steps", args.steps),
            *_given("--subjects", args.subjects),
        ]
    )
    demo_seconds = None
    if args.name == "cardiac-demo" and not args.no_demo:
        demo_seconds = run([*SADM, "demo", "--model", str(model), "--out", str(REPO / "runs" / "demo-check")])
    target = REPO / "Resources" / "Models" / args.name
    staging = target.parent / f".{args.name}.publishing"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copy2(model / "model.safetensors", staging / "model.safetensors")
    published = kept_calibration(
        with_sampling_defaults(restaged_config(model, args.name), bundle["sampling"]), model, target
    )
    (staging / "config.json").write_text(json.dumps(published, indent=1) + "\n", encoding="utf-8")
    publish_command = "scripts/publish_bundled_model.py " + " ".join(sys.argv[1:])
    (staging / "README.md").write_text(
        model_card(
            args.name,
            bundle,
            model,
            evaluation,
            ablations,
            demo_seconds,
            publish_command,
            start,
            pairs,
            stages=len(list((REPO / "configs").glob(f"{args.name}-stage*.json"))) + 1,
            published=published,
        ),
        encoding="utf-8",
    )
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    print(f"published {model} (step {step}) to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
