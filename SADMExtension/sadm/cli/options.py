"""What every `sadm` command shares: the one `OptionError` (a bad option, found before anything runs)
and the checks several commands make on their options."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sadm.defaults import DEFAULT_SAMPLER, NATIVE_PATHS
from sadm.devices import resolve_device
from sadm.diffusion.catalogue import catalogue_text, sampler_names
from sadm.errors import SADMError
from sadm.generation.request import SamplingOptions


def add_native_option(parser) -> None:
    """--native: how generated frames reach the input grid (one definition for every command)."""
    parser.add_argument(
        "--native",
        choices=NATIVE_PATHS,
        default=None,
        help="how frames reach the input grid: warp (the nearest observed frame moved by the model's motion, "
        "keeping native detail), resample (the model's frame resampled up, the paper's) or register (where two "
        "observed frames give the motion, their registration scaled to the target's time; else warp); "
        'default: the model\'s own (config.json "native"; register for both bundled models)',
    )


def add_sampling_options(parser, settings: bool = True) -> None:
    """--sampler (the catalogue's names), --steps, --sampler-option (the sampler's settings; not with
    `settings` False), --guidance and --native: one definition for every command that draws frames;
    `sampling_options` checks them with the request's own rules."""
    parser.add_argument(
        "--sampler",
        default=DEFAULT_SAMPLER,
        metavar="{" + ",".join(sampler_names()) + "}",  # checked by SamplingOptions: one message everywhere
        help="the sampler of every frame; " + catalogue_text().replace("%", "%%").replace("\n", "; "),
    )
    parser.add_argument("--steps", type=int, help="denoising steps per frame (default: the sampler's)")
    if settings:
        add_sampler_option(parser)
    parser.add_argument("--guidance", type=float, help="classifier-free guidance weight w (default: the model's)")
    add_native_option(parser)


def add_sampler_option(parser) -> None:
    """--sampler-option NAME=VALUE, repeatable: a setting of the sampler (sadm.diffusion.catalogue)."""
    parser.add_argument(
        "--sampler-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the sampler, e.g. eta=0.5 for dpm++2m or v=0.5 for ancestral (repeat for several; "
        "see --sampler for each one's settings and defaults)",
    )


def sampling_options(args, **fields) -> SamplingOptions:
    """The options of `add_sampling_options` (and `fields`, e.g. seed and samples) as the request's
    SamplingOptions: checked before anything is read or loaded, with the engine's messages."""
    return SamplingOptions(
        sampler=args.sampler,
        steps=args.steps,
        sampler_options=getattr(args, "sampler_option", []),
        guidance=args.guidance,
        native=args.native,
        **fields,
    )


class OptionError(SADMError, ValueError):
    """A command-line option names something that cannot be used; the message says which and why."""


def check_out_folder(out: Path, overwrite: bool, inputs: Sequence[Path]) -> None:
    """Refuse up front what would be refused after a long run: a file, or a non-empty folder."""
    if out.exists() and not out.is_dir():
        raise OptionError(f"--out {out} is a file; give a folder path (it is created)")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        count = sum(1 for _ in out.iterdir())
        raise OptionError(
            f"--out {out} is not empty ({count} entries); choose a new folder or pass --overwrite to replace it"
        )
    resolved = out.resolve()
    for path in inputs:
        if path.resolve() == resolved or resolved in path.resolve().parents:
            raise OptionError(f"--out {out} holds the input {path}; --overwrite would delete it — choose another --out")


def device_option(name: str):
    try:
        return resolve_device(name)
    except RuntimeError as error:
        raise OptionError(f"--device {name}: {error}") from None


def int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise OptionError(f"{option} {text!r}: give comma-separated whole numbers, e.g. 10,20,50") from None
    if not values or min(values) < 1:
        raise OptionError(f"{option} {text!r}: every step count must be at least 1")
    return values


def choice_list(text: str, allowed: Sequence[str], option: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if option == "--baselines" and items == ["none"]:
        return []
    unknown = [item for item in items if item not in allowed]
    if unknown or not items:
        raise OptionError(f"{option} {text!r}: choose from {', '.join(allowed)}")
    return items
