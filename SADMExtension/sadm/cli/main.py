"""The `sadm` command's parser: each sub-command module adds its own parser and run function."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sadm.cli import bench, calibrate, data, demo, evaluate, generate, info, train
from sadm.errors import SADMError

COMMANDS = (train, generate, evaluate, calibrate, bench, data, demo, info)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sadm", description="Sequence-Aware Diffusion Model for longitudinal 3D images"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (SADMError, ValueError) as error:
        print(f"sadm {args.command}: error: {error}", file=sys.stderr)
        return 2
