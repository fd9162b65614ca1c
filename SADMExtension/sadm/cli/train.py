"""`sadm train`: Algorithm 1 from a training config, also under torchrun for DDP."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sadm.cli.options import OptionError


def add_parser(commands) -> None:
    p = commands.add_parser("train", help="train a model with Algorithm 1 (also under torchrun for DDP)")
    p.add_argument("config", nargs="?", help="training config JSON ({model, training, data}); default: demo preset")
    p.add_argument("--data", help="an ACDC root, a CSV manifest or a folder of sequences")
    p.add_argument("--out", required=True, help="run folder: log.jsonl, checkpoints/, model/")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--device", default="auto")
    p.add_argument("--variant", choices=["sadm", "diffusion-only", "attention-only"])
    p.add_argument("--cache", help="preprocessed-data cache folder (default: OUT/cache)")
    p.add_argument(
        "--init",
        dest="init_from",
        metavar="MODEL",
        help="start from this model folder's (or bundled model's) weights, e.g. to fine-tune "
        "cardiac-demo on your data; the architecture must match (override training.init_from)",
    )
    for name, kind in (
        ("steps", int),
        ("batch-size", int),
        ("lr", float),
        ("grad-accumulation", int),
        ("checkpoint-every", int),
        ("validate-every", int),
        ("seed", int),
        ("log-every", int),
    ):
        p.add_argument(f"--{name}", type=kind, help=f"override training.{name.replace('-', '_')}")
    p.add_argument(
        "--stop-at",
        type=int,
        metavar="STEP",
        help="stop after this step with a checkpoint (the LR schedule still spans training.steps; "
        "--resume continues), e.g. to compare ablations at equal steps",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to log.jsonl)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sadm.training.experiment import build_trainer

    overrides = {
        key: getattr(args, key)
        for key in (
            "steps",
            "batch_size",
            "lr",
            "grad_accumulation",
            "checkpoint_every",
            "validate_every",
            "seed",
            "log_every",
            "init_from",
        )
        if getattr(args, key) is not None
    }
    if args.stop_at is not None and args.stop_at < 1:
        raise OptionError(f"--stop-at must be at least 1; got {args.stop_at}")
    trainer = build_trainer(
        args.config,
        args.data,
        args.out,
        args.resume,
        args.device,
        args.variant,
        overrides,
        args.cache,
        not args.no_progress,
    )
    summary = trainer.run(until=args.stop_at)
    if (
        args.stop_at is not None
        and trainer.step < trainer.config.steps
        and trainer.step % trainer.config.checkpoint_every
    ):
        trainer.save_checkpoint()  # the stop is a place to resume from and to evaluate
    trainer.finish()
    if trainer.world.is_main:
        print(json.dumps(summary))
        print(f"model: {Path(args.out) / 'model'}")
    return 0
