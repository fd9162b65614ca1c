"""The `sadm` command: train, generate, demo, evaluate, bench, data, info."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from sadm import bench_command, evaluate_command, generate_command
from sadm.defaults import DEFAULT_SAMPLER, DEFAULT_STEPS
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
    p.add_argument("--init", dest="init_from", metavar="MODEL",
                   help="start from this model folder's (or bundled model's) weights, e.g. to fine-tune "
                   "cardiac-demo on your data; the architecture must match (override training.init_from)")
    for name, kind in (("steps", int), ("batch-size", int), ("lr", float), ("grad-accumulation", int),
                       ("checkpoint-every", int), ("validate-every", int), ("seed", int), ("log-every", int)):
        p.add_argument(f"--{name}", type=kind, help=f"override training.{name.replace('-', '_')}")
    p.add_argument("--stop-at", type=int, metavar="STEP",
                   help="stop after this step with a checkpoint (the LR schedule still spans training.steps; "
                   "--resume continues), e.g. to compare ablations at equal steps")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to log.jsonl)")
    p.set_defaults(run=_run_train)


def _run_train(args) -> int:
    from sadm.experiment import build_trainer

    overrides = {
        key: getattr(args, key)
        for key in ("steps", "batch_size", "lr", "grad_accumulation", "checkpoint_every", "validate_every", "seed", "log_every", "init_from")
        if getattr(args, key) is not None
    }
    trainer = build_trainer(
        args.config, args.data, args.out, args.resume, args.device, args.variant, overrides, args.cache, not args.no_progress
    )
    if args.stop_at is not None and args.stop_at < 1:
        raise ValueError(f"--stop-at must be at least 1; got {args.stop_at}")
    summary = trainer.run(until=args.stop_at)
    if args.stop_at is not None and trainer.step < trainer.config.steps and trainer.step % trainer.config.checkpoint_every:
        trainer.save_checkpoint()  # the stop is a place to resume from and to evaluate
    if trainer.world.world_size > 1:
        import torch
        import torch.distributed as dist

        checksums = [None] * trainer.world.world_size
        local = torch.tensor([trainer.weights_checksum()], dtype=torch.float64)
        parts = [torch.zeros_like(local) for _ in range(trainer.world.world_size)]
        dist.all_gather(parts, local)
        checksums = [float(p) for p in parts]
        trainer._log({"step": trainer.step, "rank_weight_checksums": checksums, "ddp_weights_identical": len(set(checksums)) == 1})
        dist.barrier()  # no rank tears gloo down while another is still inside a collective
        dist.destroy_process_group()
    if trainer.world.is_main:
        print(json.dumps(summary))
        print(f"model: {Path(args.out) / 'model'}")
    return 0


def _add_data(commands) -> None:
    p = commands.add_parser("data", help="data utilities")
    data_commands = p.add_subparsers(dest="data_command", required=True)
    make = data_commands.add_parser("make-synthetic", help="write synthetic longitudinal sequences in real formats")
    make.add_argument("--kind", choices=["cardiac", "brain"], required=True)
    make.add_argument("--subjects", type=int, required=True)
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--out", required=True)
    make.add_argument("--option", action="append", default=[], metavar="KEY=JSON",
                      help="generator option, e.g. --option voxel_mm=3.0 --option 'shape=[12,96,96]'")
    make.set_defaults(run=_run_make_synthetic)


def _run_make_synthetic(args) -> int:
    from tqdm import tqdm

    from sadm.data.synthetic import make_synthetic

    options = {}
    for item in args.option:
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    with tqdm(total=args.subjects, desc=f"synthetic {args.kind}", unit="subject") as bar:
        result = make_synthetic(args.kind, Path(args.out), args.subjects, args.seed,
                                progress=lambda done, total: bar.update(done - bar.n), **options)
    print(f"wrote {args.subjects} {args.kind} subjects: {result}")
    return 0


def _add_demo(commands) -> None:
    p = commands.add_parser("demo", help="generate missing/future frames of a held-out synthetic sequence")
    p.add_argument("--out", default="sadm-demo", help="output folder (default: sadm-demo)")
    p.add_argument("--model", default="cardiac-demo")
    p.add_argument("--sampler", default=DEFAULT_SAMPLER, choices=sorted(DEFAULT_STEPS))
    p.add_argument("--steps", type=int, help="denoising steps per frame (default: the sampler's, sadm.defaults)")
    p.add_argument("--guidance", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--samples", type=int, default=1, metavar="N",
                   help="draw N sequences: generated_tXX.nrrd is their mean, generated_tXX_std.nrrd their spread")
    p.set_defaults(run=lambda args: _run_demo(args))


def _run_demo(args) -> int:
    from sadm.demo import run_demo

    run_demo(Path(args.out), args.model, args.sampler, args.steps, args.guidance, args.seed, args.device, args.samples)
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
    generate_command.add_parser(commands)
    evaluate_command.add_parser(commands)
    bench_command.add_parser(commands)
    _add_data(commands)
    _add_demo(commands)
    _add_info(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (SADMError, ValueError) as error:
        print(f"sadm {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
