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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from sadm.atomic import atomic_folder
from sadm.defaults import DEFAULT_SAMPLER, DEFAULT_STEPS, steps_or_default
from sadm.errors import GenerationCancelled, InvalidRolesError, SADMError

if TYPE_CHECKING:
    from sadm.data.sequence import Geometry, LongitudinalSequence

ROLE_WORDS = {"o": "observed", "m": "missing", "f": "future"}
SEQUENCE_FILE = "sequence.seq.nrrd"
RECORD_FILE = "generation.json"
CANCELLED_EXIT_CODE = 130  # what shells report for a run stopped by Ctrl-C


class GenerateOptionError(SADMError, ValueError):
    """A `sadm generate` option names something that cannot be used (output folder, sampler, device)."""


@dataclass
class GenerationInput:
    """The sequence as the engine gets it: frames on frame 0's grid (None where generated) and roles."""

    frames: list[np.ndarray | None]
    roles: list[str]
    geometry: Geometry  # of frame 0, shared by every output
    times: list[float] | None
    time_unit: str | None
    index_name: str | None
    warnings: list[str] = field(default_factory=list)


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
        "--input", nargs="+", required=True, metavar="PATH",
        help="a 4D file, a Slicer .seq.nrrd, a one-subject CSV manifest, or 3D files / DICOM folders in time order",
    )
    p.add_argument(
        "--roles",
        help="one role per input frame, comma-separated: o/observed, m/missing, f/future, e.g. o,m,o "
        "(default: every input frame observed)",
    )
    p.add_argument("--future", type=_non_negative_int, default=0, metavar="N", help="append N future frames")
    p.add_argument(
        "--future-times", type=_time_list, metavar="T,T,...",
        help="append one future frame at each of these times, e.g. 78,80 for ages (continuous-time models)",
    )
    p.add_argument(
        "--times", type=_time_list, metavar="T,T,...",
        help="the time of every frame, input and future (replaces the input's own times)",
    )
    p.add_argument("--sampler", default=DEFAULT_SAMPLER,
                   help=f"default {DEFAULT_SAMPLER}; ancestral is the paper's (1000 steps)")
    p.add_argument("--steps", type=_positive_int,
                   help="denoising steps per frame (default: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_STEPS.items()) + ")")
    p.add_argument("--guidance", type=float, help="classifier-free guidance weight w (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same frames")
    p.add_argument("--samples", type=_positive_int, default=1, metavar="N",
                   help="draw N sequences; write their mean as frame_XX.nrrd and their std as frame_XX_std.nrrd")
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
    sampler, steps = _sampler_and_steps(args.sampler, args.steps)
    device = _device(args.device)

    sequence = read_input(inputs)
    future = future_count(args.future, args.future_times)
    roles = parse_roles(args.roles, len(sequence), future, describe_inputs(inputs))
    prepared = prepare_input(sequence, roles)
    prepared.times = resolve_times(prepared.times, sequence.times, args.times, args.future_times, len(roles))
    stopwatch.lap("read_input")

    from sadm import Engine

    engine = Engine.load(args.model, device=device)
    guidance = engine.config.diffusion.guidance if args.guidance is None else float(args.guidance)
    if engine.config.attention.time_embedding == "index" and (args.times or args.future_times):
        raise GenerateOptionError(
            f"model {args.model} places frames by their index, not by time, so --times/--future-times cannot "
            "steer it; use --future N, or a model trained with attention.time_embedding='continuous'"
        )
    stopwatch.lap("load_model")

    generated, spread = run_engine(
        engine, prepared, sampler, steps, guidance, args.seed, args.samples, not args.no_progress
    )
    stopwatch.lap("generate")

    record = generation_record(args, engine, prepared, sampler, steps, guidance)
    with atomic_folder(out) as staging:
        record["files"] = write_outputs(staging, prepared, generated, spread)
        stopwatch.lap("write")
        record["timings_s"] = stopwatch.timings()
        (staging / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"sadm generate: wrote {len(generated)} generated frame(s) and {SEQUENCE_FILE} to {out}")
    return 0


def generation_record(
    args: argparse.Namespace, engine, prepared: GenerationInput, sampler: str, steps: int, guidance: float
) -> dict:
    """What generation.json keeps so a run can be repeated and its outputs traced to a model and inputs."""
    return {
        "sadm_version": _version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": str(args.model),
        "model_folder": str(Path(engine.source).resolve()),
        "device": engine.describe_device(),
        "inputs": [str(Path(p).expanduser()) for p in args.input],
        "roles": prepared.roles,
        "future": args.future,
        "sampler": sampler,
        "steps": steps,
        "guidance": guidance,
        "seed": args.seed,
        "samples": args.samples,
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


def parse_roles(text: str | None, input_frames: int, future: int, inputs: str) -> list[str]:
    """'o,m,o' (letters or words, one per input frame) + `future` × 'future' -> full role words."""
    if text is None:
        roles = ["observed"] * input_frames
    else:
        items = [item.strip().lower() for item in text.replace(" ", ",").split(",") if item.strip()]
        roles = [_role_word(item, index) for index, item in enumerate(items)]
        if len(roles) != input_frames:
            raise InvalidRolesError(
                f"--roles gives {len(roles)} role(s) ({text}) but {inputs} holds {input_frames} frame(s); "
                f"give one role per input frame, e.g. --roles {','.join(['o'] + ['m'] * (input_frames - 1))} "
                "(add future frames with --future N)"
            )
    roles += ["future"] * future
    if not any(role != "observed" for role in roles):
        raise InvalidRolesError(
            f"nothing to generate: every one of the {input_frames} input frame(s) is observed; "
            "mark frames missing with --roles (e.g. o,m,o) or add future frames with --future N"
        )
    from sadm.roles import validate_roles

    return validate_roles(roles)


def future_count(future: int, future_times: Sequence[float] | None) -> int:
    """How many future frames to append: --future N, or one per --future-times value."""
    if future_times is None:
        return future
    if future not in (0, len(future_times)):
        raise GenerateOptionError(
            f"--future {future} and --future-times ({len(future_times)} value(s)) disagree; give only --future-times"
        )
    return len(future_times)


def resolve_times(
    extended: list[float] | None,
    input_times: Sequence[float] | None,
    explicit: Sequence[float] | None,
    future_times: Sequence[float] | None,
    length: int,
) -> list[float] | None:
    """Every frame's time: --times as given, else the input's times followed by --future-times, else
    the input's times continued at their last interval (`extended`). Must increase strictly."""
    if explicit is not None:
        if len(explicit) != length:
            raise GenerateOptionError(
                f"--times gives {len(explicit)} value(s) but the sequence has {length} frame(s) (input + future); "
                "give one time per frame"
            )
        times = [float(t) for t in explicit]
    elif future_times is not None:
        if input_times is None:
            raise GenerateOptionError(
                "--future-times needs the input frames' own times, and the input carries none; "
                "give every frame's time with --times instead"
            )
        times = [float(t) for t in input_times] + [float(t) for t in future_times]
    else:
        return extended
    if any(later <= earlier for earlier, later in zip(times, times[1:])):
        raise GenerateOptionError(f"frame times must increase strictly; got {[f'{t:g}' for t in times]}")
    return times


def _time_list(text: str) -> list[float]:
    try:
        values = [float(item) for item in text.replace(" ", ",").split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 78,80; got {text!r}") from None
    if not values or not all(np.isfinite(values)):
        raise argparse.ArgumentTypeError(f"expected finite comma-separated numbers such as 78,80; got {text!r}")
    return values


def _role_word(item: str, index: int) -> str:
    if item in ROLE_WORDS:
        return ROLE_WORDS[item]
    if item in ROLE_WORDS.values():
        return item
    raise InvalidRolesError(f"--roles item {index + 1} is {item!r}; use o/observed, m/missing or f/future")


def read_input(paths: Sequence[Path]) -> LongitudinalSequence:
    """The sequence at the input path(s); one 3D volume alone is a one-frame sequence (the paper's
    single-image setting: a baseline scan plus --future)."""
    from sadm.data.readers import read_sequence
    from sadm.data.sequence import LongitudinalSequence

    if len(paths) == 1 and _is_one_volume(paths[0]):
        from sadm.data.images import read_volume

        volume, geometry = read_volume(paths[0])
        return LongitudinalSequence([volume], [geometry], [str(paths[0])], subject=paths[0].name)
    return read_sequence(paths[0] if len(paths) == 1 else list(paths))


def _is_one_volume(path: Path) -> bool:
    """A 3D scalar image file or a single DICOM series folder (read_sequence refuses both alone)."""
    import SimpleITK as sitk

    from sadm.data.acdc import is_acdc_patient
    from sadm.data.images import dicom_series_files, has_image_suffix

    if path.is_dir():
        return not is_acdc_patient(path) and bool(dicom_series_files(path))
    if not (path.is_file() and has_image_suffix(path)):
        return False
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return False  # read_sequence reports what is wrong with it
    return reader.GetDimension() == 3 and reader.GetNumberOfComponents() == 1


def prepare_input(sequence: LongitudinalSequence, roles: list[str]) -> GenerationInput:
    """Observed frames aligned onto frame 0's grid (frames to generate are not read further), times
    extended over the future frames, and the warnings the alignment gave."""
    from sadm.data.preprocess import align_frames_to_first

    input_frames = len(sequence)
    observed = [index for index in range(input_frames) if roles[index] == "observed"]  # frame 0 among them
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        aligned = align_frames_to_first(sequence.subset(observed))
    messages = [str(warning.message) for warning in caught]
    for message in messages:
        print(f"sadm generate: warning: {message}", file=sys.stderr)
    frames: list[np.ndarray | None] = [None] * len(roles)
    for index, frame in zip(observed, aligned):
        frames[index] = frame
    metadata = sequence.metadata or {}
    return GenerationInput(
        frames=frames,
        roles=roles,
        geometry=sequence.geometries[0],
        times=extend_times(sequence.times, len(roles)),
        time_unit=metadata.get("index_unit") or None,
        index_name=metadata.get("index_name") or None,
        warnings=messages,
    )


def extend_times(times: Sequence[float] | None, length: int) -> list[float] | None:
    """The input's times continued at its last interval over appended future frames (None if unknown)."""
    if times is None:
        return None
    values = [float(t) for t in times]
    if len(values) == length:
        return values
    if len(values) < 2 or values[-1] <= values[-2]:
        return None
    step = values[-1] - values[-2]
    return values + [values[-1] + step * n for n in range(1, length - len(values) + 1)]


def check_out_folder(out: Path, overwrite: bool, inputs: Sequence[Path]) -> None:
    """Refuse up front what would be refused after a long run: a file, or a non-empty folder."""
    if out.exists() and not out.is_dir():
        raise GenerateOptionError(f"--out {out} is a file; give a folder path (it is created)")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        count = sum(1 for _ in out.iterdir())
        raise GenerateOptionError(
            f"--out {out} is not empty ({count} entries); choose a new folder or pass --overwrite to replace it"
        )
    resolved = out.resolve()
    for path in inputs:
        if path.resolve() == resolved or resolved in path.resolve().parents:
            raise GenerateOptionError(
                f"--out {out} holds the input {path}; --overwrite would delete it — choose another --out"
            )


def describe_inputs(paths: Sequence[Path]) -> str:
    return str(paths[0]) if len(paths) == 1 else f"the {len(paths)} input files"


def _sampler_and_steps(sampler: str, steps: int | None) -> tuple[str, int]:
    if sampler not in DEFAULT_STEPS:
        raise GenerateOptionError(f"--sampler {sampler!r} is unknown; choose one of {', '.join(sorted(DEFAULT_STEPS))}")
    return sampler, steps_or_default(sampler, steps)


def _device(name: str):
    from sadm.devices import resolve_device

    try:
        return resolve_device(name)
    except RuntimeError as error:
        raise GenerateOptionError(f"--device {name}: {error}") from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more; got {text}")
    return value


def _version() -> str:
    from sadm import __version__

    return __version__


# --- generating -----------------------------------------------------------------------------------


def run_engine(
    engine,
    prepared: GenerationInput,
    sampler: str,
    steps: int,
    guidance: float,
    seed: int,
    samples: int,
    show_progress: bool,
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray] | None]:
    """{index: frame} (the mean when samples > 1) and {index: std} (None for one sample)."""
    times = _engine_times(engine, prepared)
    cancel = threading.Event()
    progress = StepProgress(show_progress)
    options = dict(
        sampler=sampler, steps=steps, guidance=guidance, seed=seed, progress=progress, cancel=cancel, times=times
    )
    try:
        with interrupt_sets(cancel):
            if samples == 1:
                return engine.generate(prepared.frames, prepared.roles, **options), None
            draws = engine.generate_samples(prepared.frames, prepared.roles, samples=samples, **options)
    finally:
        progress.close()
    means = {index: volumes.mean(axis=0, dtype=np.float64).astype(np.float32) for index, volumes in draws.items()}
    stds = {index: volumes.std(axis=0, dtype=np.float64).astype(np.float32) for index, volumes in draws.items()}
    return means, stds


def _engine_times(engine, prepared: GenerationInput) -> list[float] | None:
    """Frame times for a continuous-time model; index models take none."""
    if engine.config.attention.time_embedding == "index":
        return None
    if prepared.times is None:
        raise InvalidRolesError(
            f"model {engine.source} places frames by their time, but the input carries no times; give a .seq.nrrd "
            "or 4D file with time values, or a CSV manifest with a time column"
        )
    return prepared.times


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
    from sadm.data.writers import write_sequence, write_volume

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
