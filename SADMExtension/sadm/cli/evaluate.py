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
    add_native_option,
    add_sampler_options,
    check_out_folder,
    choice_list,
    sampler_keywords,
)
from sadm.evaluation.baselines import BASELINES
from sadm.evaluation.calibration import reliability_diagram, spread_summary, spread_table
from sadm.evaluation.held_out import load_held_out
from sadm.evaluation.runner import BaselineMethod, ModelMethod, evaluate
from sadm.evaluation.settings import SETTINGS
from sadm.evaluation.tables import METRICS, markdown_table, paper_units_table, summarize, to_csv
from sadm.generation.request import SamplingOptions
from sadm.storage.atomic import atomic_folder

VARIANT_LABELS = {"sadm": "SADM", "diffusion-only": "diffusion-only", "attention-only": "attention-only"}
TABLE_FILE, SUMMARY_FILE, ROWS_FILE, RECORD_FILE = "table.md", "summary.csv", "per_frame.csv", "evaluation.json"
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
    add_sampler_options(p)
    p.add_argument("--guidance", type=float, help="classifier-free guidance weight (default: each model's)")
    add_native_option(p)
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
    names = [model_name(engine.config) for engine in engines]
    names = [f"{name} ({_detail(engine)})" if names.count(name) > 1 else name for name, engine in zip(names, engines)]
    if len(set(names)) < len(names):
        names = [f"{name} [{Path(engine.source).name}]" for name, engine in zip(names, engines)]
    names = _numbered(names)  # checkpoints of the same step from two runs share even their folder name
    methods = []
    for name, engine in zip(names, engines):
        samples = args.samples if engine.model.is_diffusion else 1  # a regressor gives the same frame every time
        label = f"{name} (mean of {samples} samples)" if samples > 1 else name
        methods.append(
            ModelMethod(
                label, engine, args.sampler, args.steps, args.guidance, samples, args.native, args.sampler_options
            )
        )
    return methods


def _numbered(names: list[str]) -> list[str]:
    """Names made unique by numbering repeats (#2, #3, ...): rows, digests and reuse are keyed by name."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return unique


def model_name(config) -> str:
    """The variant's name in tables; a model whose X̃ also holds the frames after the target, a SADM
    whose c also regressed the frame, or whose UNet diffused the residual against c, says so (none is
    the paper's)."""
    name = VARIANT_LABELS.get(config.variant, config.variant)
    if config.attention.context == "bidirectional":
        name += " (bidirectional context)"  # the paper's X̃ holds only the frames before the target
    d = config.diffusion
    if config.variant == "sadm" and d.conditioning_loss > 0:
        name += f" + L2 on c (w={d.conditioning_loss:g})"  # ASCII: method names reach CSVs and consoles
    if config.variant == "sadm" and d.residual_scale > 0:
        name += f", residual (s={d.residual_scale:g})"
    return name


def _detail(engine) -> str:
    from sadm.storage.checkpoint import steps_before

    steps = engine.config.provenance.get("steps")
    before = steps_before(engine.config.provenance)
    if not steps:
        return Path(engine.source).name
    return f"{before} + {steps} steps fine-tuning" if before else f"{steps} steps"


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

    sampling = SamplingOptions(**sampler_keywords(args), guidance=args.guidance, native=args.native)
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
    sampling = {m.name: resolved_sampling(m.engine.config, args) for m in models}
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
            "the central 50 / 90 / 95 % band of N(mean, σ²) and within ±2σ (all voxels, and those that changed by "
            "more than 5 % of the range from the last observed frame), r(|error|, σ) and the mean σ; "
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


SCORING = "native and model grid, change correlation"
"""Recorded in the protocol: records scored otherwise (model grid only, before this) are not reused."""
DIGEST_SCHEME = "safetensors-sorted-header"  # how evaluation.json's "weights" were hashed


def weights_digest(model_folder: str) -> str:
    """sha256 of a model folder's weights: what identifies a model across moves and renames. The
    header is hashed with its keys sorted, because safetensors writes its metadata in no fixed order:
    the same weights saved twice (a run's last checkpoint and its model/) give one digest."""
    import hashlib
    import struct

    digest = hashlib.sha256()
    with open(Path(model_folder) / "model.safetensors", "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        digest.update(json.dumps(json.loads(handle.read(length)), sort_keys=True).encode("utf-8"))
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(model_folder: str) -> str:
    """sha256 of the weights file as it is: the digest of records written before DIGEST_SCHEME."""
    import hashlib

    with open(Path(model_folder) / "model.safetensors", "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def resolved_sampling(config, args) -> dict:
    """What a model was sampled with where the command left it to the model (its config.json): a
    model's own native path and guidance are part of what its rows mean."""
    guidance = config.diffusion.guidance if args.guidance is None else args.guidance
    return {"native": args.native or config.native, "guidance": guidance}


def reusable_rows(
    previous: Path,
    weights: dict[str, str],
    sources: dict[str, str],
    protocol: dict,
    settings: Sequence[str],
    sampling: dict[str, dict] | None = None,
) -> dict[str, list[dict]]:
    """{current model name: its per-frame rows} for the models (`weights`: {name: weights_digest},
    `sources`: {name: folder}, to hash the file itself for older records) that `previous` already
    scored with the same weights, protocol and resolved sampling (`sampling`: {name: see
    `resolved_sampling`}; older records: what their protocol named); says on stderr why nothing could
    be reused where that is so."""
    import csv

    record_path, rows_path = previous / RECORD_FILE, previous / ROWS_FILE
    if not record_path.is_file() or not rows_path.is_file():
        raise OptionError(f"--reuse {previous}: not a `sadm evaluate` output (no {RECORD_FILE} and {ROWS_FILE})")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    earlier = dict(record.get("protocol") or {})
    earlier.setdefault("data", str(Path(record.get("data", "")).expanduser().resolve()))
    earlier.setdefault("samples", record.get("samples", 1))  # records before --samples scored one sample
    earlier.setdefault("sampler_options", record.get("sampler_options", {}))  # before: the defaults
    for key in protocol:
        earlier.setdefault(key, record.get(key))
    different = [key for key in protocol if earlier.get(key) != protocol[key]]
    missing_settings = sorted(set(settings) - set(record.get("settings", [])))
    if different or missing_settings:
        why = ", ".join(different + [f"settings {missing_settings}"] * bool(missing_settings))
        print(
            f"sadm evaluate: --reuse {previous}: nothing reused ({why} differ{'s' if len(different) + bool(missing_settings) == 1 else ''})",
            file=sys.stderr,
        )
        return {}
    by_digest = {digest: name for name, digest in (record.get("weights") or {}).items()}
    if record.get("weights_digest") == DIGEST_SCHEME:
        current = weights
    else:
        current = {name: file_digest(folder) for name, folder in sources.items()}
    matches = {name: by_digest[digest] for name, digest in current.items() if digest in by_digest}
    for name, earlier_name in list(matches.items()):
        then = (record.get("sampling") or {}).get(earlier_name) or {
            key: earlier[key] for key in ("native", "guidance") if earlier.get(key) is not None
        }
        now = (sampling or {}).get(name, {})
        changed = [key for key in then if key in now and then[key] != now[key]]
        if changed:
            print(
                f"sadm evaluate: --reuse {previous}: {name} not reused (its {', '.join(changed)} differ{'s' * (len(changed) == 1)})",
                file=sys.stderr,
            )
            del matches[name]
    with open(rows_path, encoding="utf-8", newline="") as handle:
        stored = list(csv.DictReader(handle))
    reused = {}
    for name, earlier_name in matches.items():
        reused[name] = [
            {
                "method": name,
                "setting": row["setting"],
                "grid": row.get("grid") or "model",
                "subject": row["subject"],
                "frame": int(row["frame"]),
                **{metric: float(row[metric]) for metric in METRICS if row.get(metric) not in (None, "")},
            }
            for row in stored
            if row["method"] == earlier_name and row["setting"] in settings
        ]
    return reused


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
