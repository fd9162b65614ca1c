"""`sadm data`: data utilities (synthetic longitudinal sequences written in real formats)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(commands) -> None:
    p = commands.add_parser("data", help="data utilities")
    data_commands = p.add_subparsers(dest="data_command", required=True)
    make = data_commands.add_parser("make-synthetic", help="write synthetic longitudinal sequences in real formats")
    make.add_argument("--kind", choices=["cardiac", "brain"], required=True)
    make.add_argument("--subjects", type=int, required=True)
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--out", required=True)
    make.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="generator option, e.g. --option voxel_mm=3.0 --option 'shape=[12,96,96]'",
    )
    make.set_defaults(run=run_make_synthetic)


def run_make_synthetic(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sadm.phantoms import make_synthetic

    options = {}
    for item in args.option:
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    with tqdm(total=args.subjects, desc=f"synthetic {args.kind}", unit="subject") as bar:
        result = make_synthetic(
            args.kind,
            Path(args.out),
            args.subjects,
            args.seed,
            progress=lambda done, total: bar.update(done - bar.n),
            **options,
        )
    print(f"wrote {args.subjects} {args.kind} subjects: {result}")
    return 0
