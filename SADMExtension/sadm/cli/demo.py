"""`sadm demo`: the bundled model on a held-out synthetic sequence, scored beside the baselines."""

from __future__ import annotations

import argparse
from pathlib import Path

from sadm.cli.options import add_sampling_options


def add_parser(commands) -> None:
    p = commands.add_parser("demo", help="generate missing/future frames of a held-out synthetic sequence")
    p.add_argument("--out", default="sadm-demo", help="output folder (default: sadm-demo)")
    p.add_argument("--model", default="cardiac-demo")
    add_sampling_options(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--samples",
        type=int,
        default=1,
        metavar="N",
        help="draw N sequences: generated_tXX.nrrd is their mean, generated_tXX_std.nrrd their spread",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sadm.evaluation.demo import run_demo

    run_demo(
        Path(args.out),
        args.model,
        args.sampler,
        args.steps,
        args.guidance,
        args.seed,
        args.device,
        args.samples,
        args.native,
        args.sampler_option,
    )
    return 0
