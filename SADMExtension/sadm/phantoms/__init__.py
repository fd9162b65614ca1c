"""Synthetic longitudinal data sets that stand in for ACDC (beating heart) and brain ageing:
written to disk in the real formats, deterministic by seed, one subject at a time.

    make_synthetic("cardiac", Path("data/acdc-synthetic"), subjects=100, seed=0)
    make_synthetic("brain", Path("data/brain-synthetic"), subjects=50, voxel_mm=3.0)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

from sadm.phantoms.brain import (
    AGE_GROUPS,
    BrainOptions,
    BrainPhantom,
    brain_subject,
    load_template,
    sample_brain_subject,
)
from sadm.phantoms.cardiac import CardiacOptions, CardiacPhantom, cardiac_subject, contraction_curve
from sadm.phantoms.fields import subject_rngs
from sadm.storage.atomic import atomic_folder, atomic_write_bytes

KINDS = ("cardiac", "brain")
MARKER = "synthetic.json"  # what made this folder: kind, seed, options (resuming must match)
GENERATOR_VERSION = 2  # 2: the brain phantom's subject variety (issue 27); bump when a change alters the subjects of a given seed, so resuming refuses to mix

__all__ = [
    "AGE_GROUPS",
    "KINDS",
    "BrainOptions",
    "BrainPhantom",
    "CardiacOptions",
    "CardiacPhantom",
    "brain_subject",
    "cardiac_subject",
    "contraction_curve",
    "load_template",
    "make_synthetic",
    "subject_name",
]


def subject_name(kind: str, index: int) -> str:
    """Folder name of subject `index` (0-based): patient001… like ACDC, sub-001… for brains."""
    return f"patient{index + 1:03d}" if kind == "cardiac" else f"sub-{index + 1:03d}"


def _options(kind: str, options: dict) -> CardiacOptions | BrainOptions:
    cls = CardiacOptions if kind == "cardiac" else BrainOptions
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown {kind} option(s) {unknown}; valid: {sorted(known)}")
    return cls(**options)


def _claim_folder(out: Path, kind: str, seed: int, options) -> None:
    """Record what this folder holds; refuse to mix subjects of another kind, seed or options."""
    wanted = {
        "kind": kind,
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
        "options": json.loads(json.dumps(dataclasses.asdict(options))),
    }
    marker = out / MARKER
    if marker.exists():
        found = json.loads(marker.read_text(encoding="utf-8"))
        if found != wanted:
            raise ValueError(
                f"{out} already holds synthetic data made with {found}; asked for {wanted}. Use an empty folder."
            )
        return
    atomic_write_bytes(marker, (json.dumps(wanted, indent=2) + "\n").encode("utf-8"))


def _write_subject(out: Path, name: str, write: Callable[[Path], None]) -> None:
    """Write into a hidden staging folder, then rename: an interrupted run never leaves a subject
    under its real name (readers skip hidden folders)."""
    with atomic_folder(out / name) as staging:
        write(staging)


def make_synthetic(
    kind: str,
    out: Path,
    subjects: int,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    **options,
) -> Path:
    """Write `subjects` synthetic subjects of `kind` ("cardiac" | "brain") into `out`.

    Subject i depends only on (seed, i, options): 10 subjects are the first 10 of 100, and a rerun
    into the same folder skips subjects already complete (resume). `options` are the fields of
    CardiacOptions / BrainOptions (e.g. shape=(10, 96, 96), frames=24, voxel_mm=3.0).
    `progress(done, total)` is called after each subject. Returns what a reader opens: the
    folder for cardiac (ACDC layout), the manifest CSV for brain.
    """
    from sadm.io.manifest import write_manifest
    from sadm.phantoms.writers import brain_manifest_rows, write_acdc_subject, write_brain_subject

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    if int(subjects) < 1:
        raise ValueError(f"subjects must be >= 1; got {subjects!r}")
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    settings = _options(kind, options)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _claim_folder(out, kind, int(seed), settings)

    rows: list[dict] = []
    for index in range(int(subjects)):
        name = subject_name(kind, index)
        if not (out / name).is_dir():
            if kind == "cardiac":
                phantom = cardiac_subject(seed, index, settings)
                _write_subject(
                    out, name, lambda folder, phantom=phantom, name=name: write_acdc_subject(phantom, folder, name)
                )
            else:
                phantom = brain_subject(seed, index, settings)
                _write_subject(
                    out, name, lambda folder, phantom=phantom, name=name: write_brain_subject(phantom, folder, name)
                )
        if kind == "brain":  # ages come from the parameter stream alone: cheap for resumed subjects
            ages = sample_brain_subject(subject_rngs(seed, index, streams=3)[0], settings).ages
            rows.extend(brain_manifest_rows(name, ages))
        if progress is not None:
            progress(index + 1, int(subjects))
    return out if kind == "cardiac" else write_manifest(out / "manifest.csv", rows)
