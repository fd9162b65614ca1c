"""`sadm calibrate`: fit a model's spread calibration on validation sequences and, with --apply, store
it in the model folder's config.json, so that the σ maps of `--samples N` mean what they say."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from sadm.cli.options import (
    OptionError,
    add_sampling_options,
    check_out_folder,
    choice_list,
    sampling_options,
)
from sadm.evaluation.calibration import FitSet, fit_calibration, save_calibration
from sadm.evaluation.held_out import HELD_OUT_SEED, load_held_out
from sadm.evaluation.settings import SETTINGS
from sadm.generation.uncertainty import PARTS
from sadm.storage.atomic import atomic_folder, atomic_write_bytes

CALIBRATION_FILE = "calibration.json"


def add_parser(commands) -> None:
    p = commands.add_parser(
        "calibrate",
        help="fit the σ map's calibration of a model on validation sequences",
        description="Generate every frame of each validation sequence in the single / missing / full settings "
        "with N draws, as `sadm evaluate` does, and fit per kind of frame the weights of the parts of the "
        f"predictive spread ({', '.join(PARTS)}; sadm.generation.uncertainty) and its conformal "
        "scale s; write calibration.json, "
        "and with --apply store it in the model folder's config.json. Fit on validation subjects only: "
        "test subjects are scored with the result, never fitted on.",
    )
    p.add_argument("--model", required=True, metavar="NAME_OR_DIR", help="a bundled model name or a model folder")
    p.add_argument("--data", help="validation data: an ACDC root, a CSV manifest or a folder")
    p.add_argument(
        "--refit",
        metavar="DIR",
        help="an earlier `sadm calibrate` output: fit again from the validation voxels it saved (voxels.npz), "
        "without generating (--data and the sampling options are then not used)",
    )
    p.add_argument("--out", required=True, help="output folder for calibration.json (created whole at the end)")
    p.add_argument("--subjects", type=int, help="use the first N sequences only")
    p.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated subset of single,missing,full")
    p.add_argument("--samples", type=int, default=8, help="draws per sequence (the N a user will ask for)")
    p.add_argument("--missing-rate", type=float, default=0.5)
    add_sampling_options(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--apply", action="store_true", help="store the calibration in the model folder's config.json")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=run_calibrate)


def refuse_test_split(data: Path) -> None:
    """A synthetic data set records its seed (synthetic.json): the test seed is refused."""
    for marker in (data / "synthetic.json", data.parent / "synthetic.json"):
        if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")).get("seed") == HELD_OUT_SEED:
            raise OptionError(
                f"--data {data} holds the synthetic test subjects (seed {HELD_OUT_SEED}); calibrate on validation "
                "subjects (sadm data make-synthetic ... --seed 2000) and score the test subjects with sadm evaluate"
            )


def run_calibrate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sadm import Engine

    settings = choice_list(args.settings, SETTINGS, "--settings")
    sampling = sampling_options(args)
    steps = sampling.steps
    if args.samples < 2:
        raise OptionError(
            f"--samples must be at least 2 (the spread between draws is one of its parts); got {args.samples}"
        )
    if (args.data is None) == (args.refit is None):
        raise OptionError("give --data (validation data to generate from) or --refit (an earlier output), not both")
    out = Path(args.out).expanduser()
    if args.refit is not None:
        previous = Path(args.refit).expanduser()
        if not (previous / "voxels.npz").is_file() or not (previous / CALIBRATION_FILE).is_file():
            raise OptionError(
                f"--refit {previous}: not a `sadm calibrate` output (no voxels.npz and {CALIBRATION_FILE})"
            )
        check_out_folder(out, args.overwrite, [previous])
        earlier = json.loads((previous / CALIBRATION_FILE).read_text(encoding="utf-8"))
        fit = FitSet.load(previous / "voxels.npz")
        calibration = fit.fit(earlier["native"], earlier["samples"], earlier.get("fitted_on", ""))
    else:
        data = Path(args.data).expanduser()
        refuse_test_split(data)
        check_out_folder(out, args.overwrite, [data])
        engine = Engine.load(args.model, device=args.device)
        sequences = load_held_out(args.data, engine, None, args.subjects)
        with tqdm(
            total=len(sequences) * len(settings), desc="sadm calibrate", disable=args.no_progress, file=sys.stderr
        ) as bar:
            calibration, fit = fit_calibration(
                engine,
                sequences,
                settings,
                args.samples,
                sampler=args.sampler,
                steps=steps,
                guidance=args.guidance,
                native=args.native,
                sampler_options=sampling.sampler_options,
                seed=args.seed,
                missing_rate=args.missing_rate,
                fitted_on=f"{len(sequences)} sequences of {args.data} ({', '.join(settings)}), "
                f"{args.sampler} {steps} steps, {datetime.date.today().isoformat()}",
                progress=lambda what: (bar.set_postfix_str(what, refresh=False), bar.update()),
            )
    record = calibration.to_dict()
    with atomic_folder(out) as staging:
        save_calibration(staging, calibration, fit)
    lines = [
        f"{name}: "
        + ", ".join(f"{part} ×{weight:.3g}" for part, weight in b.weights.items())
        + f"; s {b.scale:.3f} ({b.voxels} voxels)"
        for name, b in calibration.buckets.items()
    ]
    print("\n".join(sorted(lines)))
    if args.apply:
        from sadm.storage.registry import resolve_model

        config_path = Path(resolve_model(args.model)) / "config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["uncertainty"] = record
        atomic_write_bytes(config_path, (json.dumps(config, indent=1) + "\n").encode("utf-8"))
        print(f"sadm calibrate: stored the calibration in {config_path}")
    print(f"sadm calibrate: wrote {out / CALIBRATION_FILE}")
    return 0
