"""The model card of a bundled model (Resources/Models/NAME/README.md): what it is, how each training
stage was run (from the provenance its folders recorded), its evaluation table and a plain verdict
against the baselines and its ablations. `scripts/publish_bundled_model.py` runs the evaluation and
writes the card."""

from __future__ import annotations

import json
from pathlib import Path

from sadm.defaults import DEFAULT_NATIVE_PATH
from sadm.storage.checkpoint import total_steps

_FORMAT = {"ssim": ".3f", "psnr": ".2f"}  # as the evaluation tables print them
CARD_BASELINES = ("copy-last", "linear", "registration")
"""The model-free answers a published model is judged against (sadm.evaluation.baselines)."""


def provenance(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text(encoding="utf-8"))["provenance"]


def training_chain(model: Path) -> list[Path]:
    """The published model and the models it was fine-tuned from (training.init_from), earliest first;
    an ancestor whose folder is not on this machine ends the chain (and is listed, without provenance)."""
    chain = [model]
    while (init_from := provenance(chain[0]).get("init_from")) and Path(init_from) not in chain:
        chain.insert(0, Path(init_from))
        if not (chain[0] / "config.json").is_file():
            break
    return chain


def stage_command(name: str, index: int, count: int) -> str:
    """Stage `index` (1-based) of `count`: configs/NAME-stageK.json into runs/NAME-stageK, the last one
    configs/NAME.json into runs/NAME (as scripts/train-bundled-model.sh runs them)."""
    suffix = "" if index == count else f"-stage{index}"
    return f"sadm train configs/{name}{suffix}.json --out runs/{name}{suffix}"


def stage_lines(name: str, chain: list[Path], stages: int | None = None) -> list[str]:
    """One line per training stage, from scratch first, with what each run recorded. `stages`: how many
    stages the committed recipe has (configs/NAME-stageK.json + configs/NAME.json); when the chain is
    shorter, its first folder is gone and stood for the earliest stages together (its init_steps)."""
    count = max(len(chain), stages or 0)
    if count == 1:
        return [
            f"- one stage, from scratch (`configs/{name}.json`, under version control): "
            f"{stage_line(chain[0], stage_command(name, 1, 1))}"
        ]
    lines = []
    first = count - len(chain) + 1  # the stage the chain's first folder ended
    for index, folder in enumerate(chain, start=first):
        command = stage_command(name, index, count)
        if not (folder / "config.json").is_file():
            steps = provenance(chain[index - first + 1]).get("init_steps")
            recorded = f"{steps if steps is not None else 'unrecorded'} steps"
            if index == 1:
                lines.append(
                    f"- stage 1, from scratch: `{command}`: {recorded} (its run folder is not on this machine)"
                )
            else:
                commands = ", ".join(f"`{stage_command(name, k, count)}`" for k in range(1, index + 1))
                lines.append(
                    f"- stages 1-{index}, from scratch and fine-tuning each stage before: {commands}: "
                    f"{recorded} in all (their run folders are not on this machine)"
                )
            continue
        line = stage_line(folder, command)
        if index == 1:
            lines.append(f"- stage 1, from scratch: {line}")
        else:
            training = provenance(folder)["training"]
            diffusion = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("diffusion", {})
            extra = (
                f", conditioning_loss {diffusion['conditioning_loss']}" if diffusion.get("conditioning_loss") else ""
            )
            lines.append(
                f"- stage {index}, fine-tuning stage {index - 1} (`init_from`; truncate_probability "
                f"{training.get('truncate_probability')}, missing_rate {json.dumps(training.get('missing_rate'))}"
                f"{extra}): {line}"
            )
    return lines


def stage_line(folder: Path, command: str) -> str:
    """One training stage: the command that reproduces it and what the run itself recorded (under
    `recorded` when the provenance was restated for the committed recipe)."""
    info = provenance(folder)
    ran = info.get("recorded", {}).get("command") or info["command"]
    return (
        f"`{command}`: {info['steps']} steps, {info['wall_seconds'] / 3600:.1f} h on {info['hardware']} "
        f"({info['device']}, torch {info['torch']}; the run recorded `{ran}`)"
    )


def verdict(evaluation: Path, pairs: list[tuple[Path, Path]] = ()) -> list[str]:
    """The model card's plain statement, on the native grid, of where the published model (the first
    one evaluated) does not beat a baseline, whether SSIM orders the settings full ≥ missing ≥ single
    as in the paper, and, for each (SADM, ablation) pair of folders trained the same number of steps, whether SADM
    wins in SSIM and PSNR in every setting (the paper's ordering)."""
    record = json.loads((evaluation / "evaluation.json").read_text(encoding="utf-8"))
    name = next(iter(record["models"]))
    # Judged on the native grid, what a user sees; the model grid is the evaluation's second table.
    # Records from before native scoring have no grid and scored the model grid only.
    means = {
        (s["method"], s["setting"], s["metric"]): s["mean"]
        for s in record["summary"]
        if s.get("grid", "native") == "native"
    }
    settings = [s for s in ("single", "missing", "full") if (name, s, "ssim") in means]
    losses = [
        f"{setting} {metric.upper()} {means[(name, setting, metric)]:{_FORMAT[metric]}} vs {baseline} "
        f"{means[(baseline, setting, metric)]:{_FORMAT[metric]}}"
        for baseline in CARD_BASELINES
        for setting in settings
        for metric in ("ssim", "psnr")
        if (baseline, setting, metric) in means and means[(name, setting, metric)] <= means[(baseline, setting, metric)]
    ]
    present = [b for b in CARD_BASELINES if any((b, s, "ssim") in means for s in settings)]
    compared = sum(1 for b in CARD_BASELINES for s in settings for k in ("ssim", "psnr") if (b, s, k) in means)
    if not present:
        lines = ["- Against the baselines (native grid): none was evaluated."]
    elif not losses:
        lines = [
            f"- Against the baselines (native grid): it beats {_listed(present)} in SSIM and PSNR in every setting."
        ]
    elif len(losses) == compared:
        lines = [f"- Against the baselines (native grid): **it beats neither in any setting** — {'; '.join(losses)}."]
    else:
        lines = [f"- Against the baselines (native grid): **it does not beat them everywhere** — {'; '.join(losses)}."]
    ssim = [means[(name, s, "ssim")] for s in settings]
    if settings == ["single", "missing", "full"]:
        holds = ssim[2] >= ssim[1] >= ssim[0]
        lines.append(
            f"- Settings (SSIM): full {ssim[2]:.3f}, missing {ssim[1]:.3f}, single {ssim[0]:.3f} — the paper's "
            f"order full ≥ missing ≥ single {'holds' if holds else '**does not hold**'}."
        )
    names = {str(Path(source)): method for method, source in record["models"].items()}
    for sadm_folder, ablation_folder in pairs:
        sadm, ablation = names.get(str(sadm_folder)), names.get(str(ablation_folder))
        if sadm is None or ablation is None:
            continue
        behind = [
            f"{s} {k.upper()} {means[(sadm, s, k)]:{_FORMAT[k]}} vs {means[(ablation, s, k)]:{_FORMAT[k]}}"
            for s in settings
            for k in ("ssim", "psnr")
            if (ablation, s, k) in means and means[(sadm, s, k)] <= means[(ablation, s, k)]
        ]
        lines.append(
            f"- Ablation at equal steps: {sadm} "
            + (
                f"beats {ablation} in SSIM and PSNR in every setting."
                if not behind
                else f"**does not beat {ablation}** everywhere ({'; '.join(behind)})."
            )
        )
    return lines


def model_card(
    name: str,
    bundle: dict,
    model: Path,
    evaluation: Path,
    ablations: dict[str, Path],
    demo_seconds: float | None,
    publish_command: str,
    start: Path | None = None,
    pairs: list[tuple[Path, Path]] = (),
    stages: int | None = None,
    published: dict | None = None,
) -> str:
    """The card's Markdown. `stages`: how many stages the committed recipe has (see `stage_lines`);
    `published`: the config.json as published (its sampling defaults and calibration), if not `model`'s."""
    config = published or json.loads((model / "config.json").read_text(encoding="utf-8"))
    info = config["provenance"]
    training = info["training"]
    chain = training_chain(model)
    count = max(len(chain), stages or 0)
    lines_of_stages = stage_lines(name, chain, count)
    last = f"stage {count} " if count > 1 else ""
    size = (model / "model.safetensors").stat().st_size
    lines = [
        f"# {name}",
        "",
        f"SADM (Yoon et al., IPMI 2023) trained on {bundle['task']}. A demonstration model for the SADM 3D "
        "Slicer extension and the `sadm demo` command: synthetic data only — not for clinical use.",
        "",
        "## Model",
        f"- grid (k, j, i) {config['grid']}, up to {config['max_frames']} frames, variant `{config['variant']}`, "
        f"time embedding `{config['attention']['time_embedding']}`",
        f"- weights: EMA (decay {training['ema_decay']}), {size / 2**20:.1f} MB (`model.safetensors`)",
        f"- diffusion: cosine logSNR in [{config['diffusion']['log_snr_min']}, {config['diffusion']['log_snr_max']}], "
        f"`{config['diffusion']['prediction']}`-prediction, p_uncond {config['diffusion']['p_uncond']}, "
        f"guidance w = {config['diffusion']['guidance']}",
        f"- native path (how generated frames reach the input grid unless a request names one): "
        f"`{config.get('native', DEFAULT_NATIVE_PATH)}`, chosen on validation subjects (seed 2000)",
        spread_line(config.get("uncertainty") or {}),
        "",
        "## Training",
        f"- command: `scripts/train-bundled-model.sh {name}`, i.e. `{bundle['train_data']}` then "
        + ("the run below" if count == 1 else f"the {count} stages below"),
        *lines_of_stages,
        f"- data: {info['train_subjects']} synthetic training subjects; validation subjects {', '.join(info['validation_subjects'])}",
        f"- {last}steps: {info['steps']} of the planned {training['steps']} (batch {training['batch_size']} × "
        f"{training['grad_accumulation']} × {info['world_size']} process(es), AdamW lr {training['lr']}, warm-up + cosine)",
        f"- {last}wall time: {info['wall_seconds'] / 3600:.1f} h on {info['hardware']} ({info['device']}, torch {info['torch']})",
        "",
        "## Evaluation",
        f"Held-out synthetic subjects generated with seed 1000 (training used seed 0): "
        f"`sadm data make-synthetic --kind {bundle['kind']} --subjects {bundle['test_subjects']} --seed 1000 "
        f"--out {' '.join([bundle['test_data'].split('/manifest.csv')[0], *bundle['options']])}`; "
        f"evaluated and published by `{publish_command}`.",
    ]
    for label, folder in ablations.items():
        variant = label.split(" ")[0]
        lines.append(
            f"Ablation `{label}`: the same configs and command with `--variant {variant}` "
            f"(`scripts/train-bundled-model.sh {name} {variant}`), {provenance(folder)['steps']} steps"
            f"{' of fine-tuning its own stage before' if provenance(folder).get('init_from') else ''}."
        )
    lines += ["", (evaluation / "table.md").read_text(encoding="utf-8").strip(), ""]
    if demo_seconds is not None:
        lines += [
            "## Demo",
            f"`sadm demo` with this model (including start-up): {demo_seconds:.0f} s on the training machine.",
            "",
        ]
    lines += [
        "## Limitations",
        *verdict(evaluation, pairs),
        f"- Why: {bundle['why']}",
        f"- Trained for {total_steps(info)} steps in all on {info['hardware']}: "
        "a demonstration of the pipeline, not the paper's quality, which needs far longer training (a GPU).",
        "- Trained on synthetic phantoms at a coarse grid so that it trains on a CPU and ships small; it has not "
        "seen real scans and will not generalise to them. Retrain with `sadm train` on your data.",
        "- Generated frames are samples from a model: check them against what you know before using them.",
    ]
    return "\n".join(lines) + "\n"


def spread_line(uncertainty: dict) -> str:
    """What the σ map of `--samples N` is for this model: calibrated (where, for which path) or not."""
    if not uncertainty:
        return "- σ map (`--samples N`): not calibrated — the std between the draws, which counts neither noise nor motion error"
    return (
        f"- σ map (`--samples N`): calibrated for the `{uncertainty['native']}` path with {uncertainty['samples']} draws "
        f"on {uncertainty.get('fitted_on') or 'validation subjects'} (`sadm calibrate`; its coverage on the test "
        "subjects is in the README, *Uncertainty maps*)"
    )


def _listed(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
