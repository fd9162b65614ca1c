"""The `sadm generate` command: read a sequence, fill its missing / future frames with a model, and
write the frames, a Slicer .seq.nrrd and a provenance record — whole or not at all.

Heavy imports (torch, the engine) happen when the command runs, so `sadm --help` stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sadm.cli.options import add_sampling_options, check_out_folder, device_option, sampling_options
from sadm.errors import GenerationCancelled, InvalidRequestError
from sadm.generation.request import GenerationRequest, build_request, parse_times
from sadm.storage.atomic import atomic_folder

if TYPE_CHECKING:
    from sadm.generation.engine import Generation
    from sadm.io.sequence import Geometry, LongitudinalSequence

SEQUENCE_FILE = "sequence.seq.nrrd"
RECORD_FILE = "generation.json"
CANCELLED_EXIT_CODE = 130  # what shells report for a run stopped by Ctrl-C


@dataclass
class GenerationInput:
    """The request and the sequence as the engine gets it: frames on frame 0's grid (None where
    generated), frame 0's geometry and the input's indexing."""

    request: GenerationRequest
    frames: list[np.ndarray | None]
    geometry: Geometry  # of frame 0, shared by every output
    time_unit: str | None
    index_name: str | None
    warnings: list[str] = field(default_factory=list)

    @property
    def times(self) -> list[float] | None:
        return None if self.request.times is None else list(self.request.times)


def add_parser(commands) -> None:
    """Register `sadm generate` on the `sadm` subcommands."""
    p = commands.add_parser(
        "generate",
        help="generate missing and future frames of a sequence with a trained model",
        description="Fill the missing / future frames of a longitudinal sequence (Alg. 2) and write "
        "frame_XX.nrrd per generated frame, sequence.seq.nrrd (observed + generated, loads in Slicer's "
        "Sequences module) and generation.json into --out.",
    )
    p.add_argument(
        "--model", required=True, metavar="NAME_OR_DIR", help="bundled model name (see `sadm info`) or model folder"
    )
    p.add_argument(
        "--input",
        nargs="+",
        required=True,
        metavar="PATH",
        help="a 4D file, a Slicer .seq.nrrd, a one-subject CSV manifest, or 3D files / DICOM folders in time order",
    )
    p.add_argument(
        "--roles",
        help="one role per input frame, comma-separated: o/observed, m/missing, f/future, e.g. o,m,o "
        "(default: every input frame observed)",
    )
    p.add_argument("--future", type=int, default=0, metavar="N", help="append N future frames")
    p.add_argument(
        "--future-times",
        type=_time_list,
        metavar="T,T,...",
        help="append one future frame at each of these times, e.g. 78,80 for ages (continuous-time models)",
    )
    p.add_argument(
        "--times",
        type=_time_list,
        metavar="T,T,...",
        help="the time of every frame, input and future (replaces the input's own times)",
    )
    add_sampling_options(p)
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same frames")
    p.add_argument(
        "--samples",
        type=int,
        default=1,
        metavar="N",
        help="draw N sequences; write their mean as frame_XX.nrrd and the predictive sigma as frame_XX_std.nrrd "
        "(calibrated on validation subjects where the model has a calibration: the truth lies within ±2 sigma at "
        "about 95 %% of voxels)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda[:N]")
    p.add_argument("--out", required=True, help="output folder (created whole at the end)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    """Read, check, generate, then write everything at once; Ctrl-C leaves nothing behind."""
    try:
        return _generate(args)
    except (GenerationCancelled, KeyboardInterrupt):
        print("sadm generate: cancelled; nothing was written", file=sys.stderr)
        return CANCELLED_EXIT_CODE


def _generate(args: argparse.Namespace) -> int:
    stopwatch = Stopwatch()
    out = Path(args.out).expanduser()
    inputs = [Path(p).expanduser() for p in args.input]
    check_out_folder(out, args.overwrite, inputs)
    # Checked (request.py's rules) before the input is read: a typo costs no read.
    sampling = sampling_options(args, seed=args.seed, samples=args.samples)
    device = device_option(args.device)

    from sadm.io.readers import read_input

    sequence = read_input(inputs)
    request = build_request(
        args.roles,
        len(sequence),
        future=args.future,
        input_times=sequence.times,
        times=args.times,
        future_times=args.future_times,
        sampling=sampling,
    )
    prepared = prepare_input(sequence, request)
    stopwatch.lap("read_input")

    from sadm import Engine

    engine = Engine.load(args.model, device=device)
    stopwatch.lap("load_model")

    generation = run_engine(engine, prepared, not args.no_progress)
    stopwatch.lap("generate")

    record = generation_record(args, engine, prepared)
    if generation.std is not None:
        record["std"] = "calibrated predictive sigma" if generation.calibrated else "std of the draws, uncalibrated"
        if not generation.calibrated:
            print(
                "sadm generate: warning: this model has no spread calibration for the "
                f"`{generation.request.sampling.native}` path, so frame_XX_std.nrrd is the std between the draws "
                "alone, which counts neither noise nor the motion's error (fit one with `sadm calibrate`)",
                file=sys.stderr,
            )
    with atomic_folder(out) as staging:
        record["files"] = write_outputs(staging, prepared, generation.mean, generation.std)
        stopwatch.lap("write")
        record["timings_s"] = stopwatch.timings()
        (staging / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"sadm generate: wrote {len(generation)} generated frame(s) and {SEQUENCE_FILE} to {out}")
    return 0


def generation_record(args: argparse.Namespace, engine, prepared: GenerationInput) -> dict:
    """What generation.json keeps so a run can be repeated and its outputs traced to a model and inputs."""
    sampling = prepared.request.sampling
    return {
        "sadm_version": _version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": str(args.model),
        "model_folder": str(Path(engine.source).resolve()),
        "device": engine.describe_device(),
        "inputs": [str(Path(p).expanduser()) for p in args.input],
        "roles": list(prepared.request.roles),
        "future": args.future,
        "sampler": sampling.sampler,
        "steps": sampling.steps,
        "sampler_settings": sampling.sampler_settings,
        "guidance": engine.config.diffusion.guidance if sampling.guidance is None else sampling.guidance,
        "seed": sampling.seed,
        "samples": sampling.samples,
        "times": prepared.times,
        "time_unit": prepared.time_unit,
        "geometry_lps": {
            "spacing_mm": list(prepared.geometry.spacing),
            "origin_mm": list(prepared.geometry.origin),
            "direction": list(prepared.geometry.direction),
        },
        "warnings": prepared.warnings,
    }


class Stopwatch:
    """Seconds spent in each named stage, plus their total."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.stages: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = round(now - self.last, 3)
        self.last = now

    def timings(self) -> dict[str, float]:
        return {**self.stages, "total": round(self.last - self.started, 3)}


# --- reading and checking the request -------------------------------------------------------------


def _time_list(text: str) -> list[float]:
    try:
        values = parse_times(text)
    except InvalidRequestError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if values is None:
        raise argparse.ArgumentTypeError("expected one or more times, e.g. 78,80")
    return values


def prepare_input(sequence: LongitudinalSequence, request: GenerationRequest) -> GenerationInput:
    """Observed frames aligned onto frame 0's grid (frames to generate are not read further), and
    the warnings the alignment gave."""
    from sadm.data.preprocess import align_frames_to_first

    observed = [index for index in request.observed if index < len(sequence)]  # frame 0 among them
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        aligned = align_frames_to_first(sequence.subset(observed))
    messages = [str(warning.message) for warning in caught]
    for message in messages:
        print(f"sadm generate: warning: {message}", file=sys.stderr)
    frames: list[np.ndarray | None] = [None] * len(request.roles)
    for index, frame in zip(observed, aligned):
        frames[index] = frame
    metadata = sequence.metadata or {}
    return GenerationInput(
        request=request,
        frames=frames,
        geometry=sequence.geometries[0],
        time_unit=metadata.get("index_unit") or None,
        index_name=metadata.get("index_name") or None,
        warnings=messages,
    )


def _version() -> str:
    from sadm import __version__

    return __version__


# --- generating -----------------------------------------------------------------------------------


def run_engine(engine, prepared: GenerationInput, show_progress: bool) -> Generation:
    """The engine on the prepared request, with a progress bar and Ctrl-C as cancel."""
    cancel = threading.Event()
    progress = StepProgress(show_progress)
    try:
        with interrupt_sets(cancel):
            return engine.generate(prepared.frames, prepared.request, progress=progress, cancel=cancel)
    finally:
        progress.close()


class StepProgress:
    """A tqdm bar fed by the engine's progress(done, total, frame_index) callback."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None

    def __call__(self, done: int, total: int, frame_index: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="step", file=sys.stderr, dynamic_ncols=True)
        self.bar.set_description(f"frame {frame_index}", refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def interrupt_sets(cancel: threading.Event) -> Iterator[None]:
    """While inside, Ctrl-C sets `cancel` (the engine stops after the current step); a second Ctrl-C
    interrupts at once. Signal handlers belong to the main thread, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_interrupt(signum, frame) -> None:
        cancel.set()
        signal.signal(signal.SIGINT, previous)
        print("\nsadm generate: cancelling after the current step (Ctrl-C again to stop at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# --- writing --------------------------------------------------------------------------------------


def write_outputs(
    folder: Path, prepared: GenerationInput, generated: dict[int, np.ndarray], spread: dict[int, np.ndarray] | None
) -> dict:
    """frame_XX.nrrd (+ frame_XX_std.nrrd) per generated frame and the observed + generated sequence."""
    from sadm.io.writers import write_sequence, write_volume

    files: dict = {"generated": {}, "sequence": SEQUENCE_FILE}
    for index, volume in sorted(generated.items()):
        name = f"frame_{index:02d}.nrrd"
        write_volume(folder / name, volume, prepared.geometry)
        files["generated"][str(index)] = name
        if spread is not None:
            std_name = f"frame_{index:02d}_std.nrrd"
            write_volume(folder / std_name, spread[index], prepared.geometry)
            files.setdefault("std", {})[str(index)] = std_name
    sequence = [generated[i] if frame is None else frame for i, frame in enumerate(prepared.frames)]
    write_sequence(
        folder / SEQUENCE_FILE, sequence, prepared.geometry, prepared.times, prepared.time_unit, prepared.index_name
    )
    return files
