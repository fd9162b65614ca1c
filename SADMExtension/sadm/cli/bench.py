"""`sadm bench`: which sampler and how many steps? Timings, memory and quality against the paper's
1000-step ancestral sampler, as a table (bench.md) and bench.json."""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path

from sadm.cli.options import OptionError, add_sampler_option, choice_list, int_list
from sadm.diffusion.catalogue import sampler_names, sampler_spec
from sadm.evaluation.bench import BenchCase, bench_cases, fastest_within, markdown, run_bench
from sadm.evaluation.held_out import SPLIT_SEEDS, load_held_out, synthetic_held_out
from sadm.evaluation.runner import HeldOutSequence
from sadm.generation.request import SamplingOptions, parse_sampler_options
from sadm.storage.atomic import atomic_folder


def add_parser(commands) -> None:
    p = commands.add_parser(
        "bench",
        help="time samplers and step counts against the 1000-step ancestral sampler (speed, memory, SSIM)",
        description="For each sampler × steps: per-frame latency (median after a warm-up), whole-sequence "
        "time, peak memory and SSIM/PSNR on held-out sequences, with the SSIM gap to the reference sampler "
        "measured in the same run. Small settings (--steps 10,20 --reference-steps 100 --subjects 1) run "
        "on a CPU in minutes.",
    )
    p.add_argument("--model", default="cardiac-demo", metavar="NAME_OR_DIR")
    p.add_argument(
        "--data", help="held-out sequences (default: synthetic cardiac phantoms of --split, never trained on)"
    )
    p.add_argument(
        "--split",
        choices=sorted(SPLIT_SEEDS),
        default="validation",
        help="which synthetic subjects without --data: validation (seed 2000, where settings are chosen; "
        "the default) or test (seed 1000, scored once per published model)",
    )
    p.add_argument("--subjects", type=int, default=2, help="how many held-out sequences (default 2)")
    p.add_argument(
        "--frames",
        type=int,
        help="use the first N frames of each sequence (default: all the model takes); fewer "
        "frames make the 1000-step reference affordable on a CPU",
    )
    p.add_argument("--samplers", default="dpm++2m,ddim", help="comma-separated samplers to compare")
    p.add_argument("--steps", default="10,20,50,100", help="comma-separated step counts")
    p.add_argument(
        "--guidance",
        help="comma-separated guidance weights w to compare, e.g. 0.1,0 (default: the model's; w = 0 "
        "skips the unconditional pass, half the UNet work); the reference keeps the model's",
    )
    add_sampler_option(p)
    p.add_argument("--reference-sampler", default="ancestral")
    p.add_argument("--reference-steps", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of the one-frame latency (median)")
    p.add_argument("--tolerance", type=float, default=0.01, help="SSIM gap allowed when recommending a default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help="torch.compile the UNet (off by default: no gain on CPU)")
    p.add_argument("--no-channels-last", action="store_true", help="plain NCDHW layout instead of channels-last 3D")
    p.add_argument("--out", default="sadm-bench", help="folder for bench.md and bench.json (replaced whole)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=run_bench_command)


def _sampler_options(texts: list[str], samplers: list[str]) -> dict[str, float]:
    """--sampler-option: each applies to the compared samplers that have the setting (checked by
    SamplingOptions, the request's own rule); one that none of them has is refused."""
    given = parse_sampler_options(texts)
    checked: dict[str, float] = {}
    for sampler in samplers:
        names = {setting.name for setting in sampler_spec(sampler).settings}
        own = {name: value for name, value in given.items() if name in names}
        checked.update(SamplingOptions(sampler=sampler, sampler_options=own).sampler_options)
    unused = sorted(set(given) - set(checked))
    if unused:
        raise OptionError(f"--sampler-option {', '.join(unused)}: no sampler of --samplers {','.join(samplers)} has it")
    return checked


def _guidances(text: str) -> list[float]:
    """Each weight checked by the generation request's own rule (SamplingOptions), before any work."""
    try:
        values = [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise OptionError(f"--guidance {text!r}: give comma-separated numbers, e.g. 0.1,0") from None
    if not values:
        raise OptionError(f"--guidance {text!r}: give comma-separated numbers, e.g. 0.1,0")
    for value in values:
        try:
            SamplingOptions(guidance=value)
        except ValueError as error:
            raise OptionError(f"--guidance {text!r}: {error}") from None
    return values


def run_bench_command(args: argparse.Namespace) -> int:
    samplers = choice_list(args.samplers, sampler_names(), "--samplers")
    options = _sampler_options(args.sampler_option, samplers)
    choice_list(args.reference_sampler, sampler_names(), "--reference-sampler")
    steps = int_list(args.steps, "--steps")
    guidances = [None] if args.guidance is None else _guidances(args.guidance)
    if args.subjects < 1 or args.repeats < 1 or args.reference_steps < 1:
        raise OptionError("--subjects, --repeats and --reference-steps must be at least 1")
    if args.frames is not None and args.frames < 2:
        raise OptionError(f"--frames {args.frames}: a sequence needs at least 2 frames (one given, one generated)")
    from sadm import Engine

    engine = Engine.load(args.model, device=args.device, channels_last=not args.no_channels_last, compile=args.compile)
    if args.data:
        sequences = load_held_out(args.data, engine, None, args.subjects)
    elif engine.config.attention.time_embedding != "index":
        raise OptionError(f"model {args.model} places frames by time: give its held-out data with --data")
    else:
        sequences = synthetic_held_out(engine, args.subjects, args.split)
    if args.frames is not None:
        sequences = [HeldOutSequence(s.subject, s.frames[: args.frames], s.times[: args.frames]) for s in sequences]
    reference = BenchCase(args.reference_sampler, args.reference_steps)
    cases = bench_cases(samplers, steps, reference, guidances, options)

    from tqdm import tqdm

    with tqdm(total=len(cases), desc="sadm bench", unit="case", disable=args.no_progress, file=sys.stderr) as bar:
        records = run_bench(
            engine,
            sequences,
            cases,
            args.repeats,
            args.seed,
            progress=lambda label: (bar.set_postfix_str(label, refresh=False), bar.update()),
        )
    best = fastest_within(records, args.tolerance)
    import torch

    record = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "sadm " + " ".join(sys.argv[1:]),
        "model": engine.source,
        "device": engine.describe_device(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "dtype": "bfloat16 autocast" if engine.device.type == "cuda" else "float32",
        "channels_last": engine.model.channels_last,
        "compile": args.compile,
        "grid": list(engine.config.grid),
        "subjects": [s.subject for s in sequences],
        "split": "given with --data" if args.data else args.split,
        "frames": len(sequences[0].frames),
        "tolerance": args.tolerance,
        "recommended": None
        if best is None
        else {"sampler": best["sampler"], "steps": best["steps"], "guidance": best["guidance"]},
        "cases": records,
    }
    table = markdown(records)
    verdict = f"Fastest within {args.tolerance} SSIM of {reference.label}: " + (
        "none"
        if best is None
        else f"{best['sampler']} {best['steps']} w={best['guidance']:g} "
        f"({best['speedup_per_frame']:.0f}× faster per frame, {best['sequence_seconds']:.1f} s per sequence)"
    )
    setup = (
        f"{engine.source} on {record['device']} ({record['dtype']}, {record['threads']} threads); "
        f"{len(sequences)} held-out sequence(s) of {record['frames']} frames ({record['split']}), single setting."
    )
    out = Path(args.out).expanduser()
    with atomic_folder(out) as staging:
        (staging / "bench.md").write_text(f"{setup}\n\n{table}\n{verdict}\n", encoding="utf-8")
        (staging / "bench.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"{setup}\n\n{table}\n{verdict}\nwrote {out}/bench.md and bench.json")
    return 0
