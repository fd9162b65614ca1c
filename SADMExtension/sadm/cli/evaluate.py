"""`sadm evaluate`: the paper's protocol on a test split — trained models and baselines in the
single / missing / full settings, scored on the input's native grid (what a user sees) and on the
model's grid — written as per-frame CSV, summary CSV, Markdown tables shaped like the paper's
Table 2, and evaluation.json."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sadm.cli.options import (
    OptionError,
    add_sampling_options,
    check_out_folder,
    choice_list,
    sampling_options,
)
from sadm.evaluation.baselines import BASELINES
from sadm.evaluation.calibration import reliability_diagram, spread_summary, spread_table
from sadm.evaluation.held_out import load_held_out
from sadm.evaluation.naming import method_names
from sadm.evaluation.reuse import (
    DIGEST_SCHEME,
    RECORD_FILE,
    ROWS_FILE,
    SCORING,
    resolved_sampling,
    reusable_rows,
    weights_digest,
)
from sadm.evaluation.runner import BaselineMethod, ModelMethod, evaluate
from sadm.evaluation.settings import SETTINGS
from sadm.evaluation.tables import METRICS, markdown_table, paper_units_table, summarize, to_csv
from sadm.storage.atomic import atomic_folder

TABLE_FILE, SUMMARY_FILE = "table.md", "summary.csv"
SPREAD_FILE, RELIABILITY_FILE = "spread_per_frame.csv", "reliability.png"


def add_parser(commands) -> None:
    p = commands.add_parser(
        "evaluate",
        help="score models and baselines on held-out sequences (single / missing / full settings)",
        description="The paper's evaluation: every model (and baseline) predicts the frames of each held-out "
        "sequence in the single, missing and full settings with fixed seeds; SSIM (3D, data_range from the "
        "truth), PSNR and NRMSE as in scikit-image and the change correlation (how well the predicted change "
        "from the last observed frame matches the true one; copy-last scores 0), per frame and mean ± std "
        "over subjects, on each sequence's native grid and on the model's grid.",
    )
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="NAME_OR_DIR",
        help="a bundled model name or a model folder (repeat to compare, e.g. the ablations)",
    )
    p.add_argument("--data", required=True, help="held-out data: an ACDC root, a CSV manifest or a folder of sequences")
    p.add_argument("--out", required=True, help="output folder (created whole at the end)")
    p.add_argument("--subjects", type=int, help="evaluate the first N sequences only")
    p.add_argument(
        "--frames", type=int, help="resample every sequence to N frames (default: as the first model was trained)"
    )
    p.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated subset of single,missing,full")
    p.add_argument(
        "--baselines", default=",".join(BASELINES), help=f"comma-separated subset of {','.join(BASELINES)}, or 'none'"
    )
    p.add_argument(
        "--missing-rate", type=float, default=0.5, help="probability that a frame is missing (missing setting)"
    )
    add_sampling_options(p)
    p.add_argument(
        "--samples",
        type=int,
        default=1,
        help="score each diffusion model's voxel-wise mean of N sampled sequences (its posterior-mean "
        "estimate, N times the work) instead of one sample",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--reuse",
        action="append",
        default=[],
        metavar="DIR",
        help="an earlier `sadm evaluate` output: a model whose weights (sha256) it scored under the same "
        "protocol (data, subjects, frames, sampler, steps, guidance, seed, missing rate) is taken from it "
        "instead of being run again (repeat to draw on several; the first that has a model wins)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=run_evaluate)


def load_methods(args: argparse.Namespace) -> list[ModelMethod]:
    """One ModelMethod per --model, named after its variant (with its training steps, or its folder
    name, where two collide)."""
    from sadm import Engine

    engines = [Engine.load(model, device=args.device) for model in args.model]
    grids = {tuple(engine.config.grid) for engine in engines}
    if len(grids) > 1:
        listing = ", ".join(f"{m}: {tuple(e.config.grid)}" for m, e in zip(args.model, engines))
        raise OptionError(f"the models work on different grids ({listing}); evaluate them separately")
    methods = []
    for name, engine in zip(method_names(engines), engines):
        samples = args.samples if engine.model.is_diffusion else 1  # a regressor gives the same frame every time
        label = f"{name} (mean of {samples} samples)" if samples > 1 else name
        methods.append(
            ModelMethod(
                label, engine, args.sampler, args.steps, args.guidance, samples, args.native, args.sampler_options
            )
        )
    return methods


def run_evaluate(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    settings = choice_list(args.settings, SETTINGS, "--settings")
    baselines = choice_list(args.baselines, list(BASELINES), "--baselines")
    if args.subjects is not None and args.subjects < 1:
        raise OptionError(f"--subjects must be at least 1; got {args.subjects}")
    if args.samples < 1:
        raise OptionError(f"--samples must be at least 1; got {args.samples}")
    if not 0.0 < args.missing_rate <= 1.0:
        raise OptionError(f"--missing-rate must be in (0, 1]; got {args.missing_rate}")
    out = Path(args.out).expanduser()
    check_out_folder(out, args.overwrite, [Path(args.data)])

    sampling = sampling_options(args)
    args.steps, args.sampler_options = sampling.steps, sampling.sampler_options
    models = load_methods(args)
    sequences = load_held_out(args.data, models[0].engine, args.frames, args.subjects)
    protocol = {
        "data": str(Path(args.data).expanduser().resolve()),
        "subjects": [s.subject for s in sequences],
        "frames": len(sequences[0].frames),
        "sampler": args.sampler,
        "steps": args.steps,
        "sampler_options": args.sampler_options,
        "guidance": args.guidance,
        "seed": args.seed,
        "missing_rate": args.missing_rate,
        "samples": args.samples,
        "native": args.native,
        "scoring": SCORING,
    }
    weights = {m.name: weights_digest(m.engine.source) for m in models}
    sources = {m.name: m.engine.source for m in models}
    sampling = {m.name: resolved_sampling(m.engine.config, args.guidance, args.native) for m in models}
    reused, reused_from = {}, {}
    for previous in args.reuse:
        left = {name: digest for name, digest in weights.items() if name not in reused}
        found = (
            reusable_rows(Path(previous), left, {name: sources[name] for name in left}, protocol, settings, sampling)
            if left
            else {}
        )
        reused.update(found)
        reused_from.update({name: str(previous) for name in found})
    methods = [m for m in models if m.name not in reused] + [
        BaselineMethod(name, BASELINES[name]) for name in baselines
    ]

    from tqdm import tqdm

    with tqdm(
        total=len(sequences) * len(settings) * len(methods),
        desc="sadm evaluate",
        unit="run",
        disable=args.no_progress,
        file=sys.stderr,
    ) as bar:
        result = evaluate(
            methods,
            sequences,
            settings,
            args.seed,
            args.missing_rate,
            progress=lambda what: (bar.set_postfix_str(what, refresh=False), bar.update()),
            model_grid=tuple(models[0].engine.config.grid),
        )
    rows = [row for name in reused for row in reused[name]] + result.rows
    summary = summarize(rows)
    names = [m.name for m in models] + baselines
    record = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "sadm " + " ".join(sys.argv[1:]),
        "models": sources,
        "sampling": sampling,
        "weights": weights,
        "weights_digest": DIGEST_SCHEME,
        "reused": reused_from,
        "data": str(args.data),
        "protocol": protocol,
        "settings": settings,
        "model_grid": list(models[0].engine.config.grid),
        **{key: value for key, value in protocol.items() if key != "data"},  # flat, as earlier records
        "device": models[0].engine.describe_device(),
        "seconds": round(time.perf_counter() - started, 1),
        "method_seconds": {name: round(value, 1) for name, value in result.seconds.items()},
        "summary": summary,
    }
    spread = spread_summary(result.spread_rows) if result.spread_rows else []
    if spread:
        record["spread"] = spread
    table = report(record, summary, names, settings, rows)
    if spread:
        table += (
            f"\n**The σ maps** (`--samples {args.samples}`), native grid: the share of voxels whose truth lies in "
            "the central 50 / 90 / 95 % band of N(mean, σ²) and within ±2σ — over all voxels, over the moved ones "
            "(the frame and the last observed one, each smoothed in-plane, differ by more than 5 % of the range) and "
            "over those whose raw voxels differ by that much (noise alone does at a few per cent of static voxels) "
            "— r(|error|, σ) and the mean σ; "
            f"{RELIABILITY_FILE} plots observed against nominal coverage:\n\n{spread_table(spread)}"
        )
    with atomic_folder(out) as staging:
        (staging / ROWS_FILE).write_text(
            to_csv(rows, ["method", "setting", "grid", "subject", "frame", *METRICS]), encoding="utf-8"
        )
        (staging / SUMMARY_FILE).write_text(
            to_csv(summary, ["method", "setting", "grid", "metric", "mean", "std", "subjects"]), encoding="utf-8"
        )
        (staging / TABLE_FILE).write_text(table, encoding="utf-8")
        (staging / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if spread:
            columns = list(result.spread_rows[0])
            (staging / SPREAD_FILE).write_text(to_csv(result.spread_rows, columns), encoding="utf-8")
            reliability_diagram(spread, staging / RELIABILITY_FILE)
    print(table)
    print(
        f"sadm evaluate: wrote {TABLE_FILE}, {SUMMARY_FILE}, {ROWS_FILE} and {RECORD_FILE} to {out} "
        f"({record['seconds']:.0f} s)"
    )
    return 0


def report(record: dict, summary: list[dict], names: list[str], settings: list[str], rows: Sequence[dict] = ()) -> str:
    """Markdown: the setup in one paragraph, the means table (the paper's shape) and mean ± std."""
    setup = (
        f"{len(record['subjects'])} held-out sequences of {record['frames']} frames from `{record['data']}`; "
        f"{record['sampler']} sampler, {record['steps']} steps, seed {record['seed']}, missing rate "
        f"{record['missing_rate']}"
        + (
            f"; each diffusion model scored by the mean of {record['samples']} samples"
            if record.get("samples", 1) > 1
            else ""
        )
        + f"; {record['device']}. Values per setting: {' / '.join(settings)}. "
        "Frames are averaged per subject, then over subjects. Bold: best per setting. Change r: the "
        "correlation of the predicted with the true change from the last observed frame (copy-last: 0)."
    )
    grid = "×".join(str(n) for n in record.get("model_grid") or [])
    return (
        f"{setup}\n\n**On the native grid** (each sequence's own, what a user sees):\n\n"
        f"{markdown_table(summary, names, settings, grid='native')}\n"
        f"**On the model grid** ({grid}, the truth resampled onto it):\n\n"
        f"{markdown_table(summary, names, settings, grid='model')}\n"
        "Mean ± std over subjects, native grid:\n\n"
        f"{markdown_table(summary, names, settings, with_std=True, grid='native')}"
        + (
            "\n**The last frame alone** (the ES frame of an ED→ES cine, as the paper's §4.2 scores it), native "
            f"grid, in the units recent work reports:\n\n{paper_units_table(rows, names, settings)}"
            if rows
            else ""
        )
    )
