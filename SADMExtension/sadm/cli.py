"""The `sadm` command: train, generate, demo, evaluate, bench, data, info."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from sadm.errors import SADMError


def _add_train(commands) -> None:
    p = commands.add_parser("train", help="train a model with Algorithm 1 (also under torchrun for DDP)")
    p.add_argument("config", nargs="?", help="training config JSON ({model, training, data}); default: demo preset")
    p.add_argument("--data", help="an ACDC root, a CSV manifest or a folder of sequences")
    p.add_argument("--out", required=True, help="run folder: log.jsonl, checkpoints/, model/")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--device", default="auto")
    p.add_argument("--variant", choices=["sadm", "diffusion-only", "attention-only"])
    p.add_argument("--cache", help="preprocessed-data cache folder (default: OUT/cache)")
    for name, kind in (("steps", int), ("batch-size", int), ("lr", float), ("grad-accumulation", int),
                       ("checkpoint-every", int), ("validate-every", int), ("seed", int), ("log-every", int)):
        p.add_argument(f"--{name}", type=kind, help=f"override training.{name.replace('-', '_')}")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to log.jsonl)")
    p.set_defaults(run=_run_train)


def _run_train(args) -> int:
    from sadm.experiment import build_trainer

    overrides = {
        key: getattr(args, key)
        for key in ("steps", "batch_size", "lr", "grad_accumulation", "checkpoint_every", "validate_every", "seed", "log_every")
        if getattr(args, key) is not None
    }
    trainer = build_trainer(
        args.config, args.data, args.out, args.resume, args.device, args.variant, overrides, args.cache, not args.no_progress
    )
    summary = trainer.run()
    if trainer.world.world_size > 1:
        import torch
        import torch.distributed as dist

        checksums = [None] * trainer.world.world_size
        local = torch.tensor([trainer.weights_checksum()], dtype=torch.float64)
        parts = [torch.zeros_like(local) for _ in range(trainer.world.world_size)]
        dist.all_gather(parts, local)
        checksums = [float(p) for p in parts]
        trainer._log({"step": trainer.step, "rank_weight_checksums": checksums, "ddp_weights_identical": len(set(checksums)) == 1})
        dist.destroy_process_group()
    if trainer.world.is_main:
        print(json.dumps(summary))
        print(f"model: {Path(args.out) / 'model'}")
    return 0


def _add_info(commands) -> None:
    p = commands.add_parser("info", help="bundled models, device, versions")
    p.set_defaults(run=_run_info)


def _run_info(args) -> int:
    import torch

    from sadm import __version__
    from sadm.devices import describe_device, resolve_device
    from sadm.registry import available_models

    print(f"sadm {__version__}, torch {torch.__version__}")
    print(f"device: {describe_device(resolve_device('auto'))}")
    models = available_models()
    print("bundled models: " + (", ".join(f"{name} ({path})" for name, path in models.items()) or "none"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sadm", description="Sequence-Aware Diffusion Model for longitudinal 3D images")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train(commands)
    _add_info(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except SADMError as error:
        print(f"sadm {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
