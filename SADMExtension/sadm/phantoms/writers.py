"""Write phantoms in the formats of the real data sets, so the readers load them like real data:
the ACDC layout for the heart, NIfTI files plus a CSV manifest for brain ageing."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sadm.phantoms.brain import BrainPhantom
from sadm.phantoms.cardiac import CardiacPhantom


def _image(array: np.ndarray, spacing, origin, direction) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    image.SetDirection(tuple(float(d) for d in direction))
    return image


def write_acdc_subject(phantom: CardiacPhantom, folder: Path, name: str) -> None:
    """`folder` gets ACDC's files: Info.cfg, <name>_4d.nii.gz (time as the 4th axis, its spacing
    the frame interval in seconds), and <name>_frameXX[_gt].nii.gz for ED and ES (1-based)."""
    folder = Path(folder)
    geometry = (phantom.spacing, phantom.origin, phantom.direction)
    frames = [_image(frame, *geometry) for frame in phantom.frames]
    sitk.WriteImage(
        sitk.JoinSeries(frames, 0.0, phantom.frame_interval_s), str(folder / f"{name}_4d.nii.gz"), useCompression=True
    )
    for index in (phantom.ed_index, phantom.es_index):
        stem = folder / f"{name}_frame{index + 1:02d}"
        sitk.WriteImage(frames[index], f"{stem}.nii.gz", useCompression=True)
        sitk.WriteImage(_image(phantom.labels[index], *geometry), f"{stem}_gt.nii.gz", useCompression=True)
    lines = [f"{key}: {value}" for key, value in phantom.info().items()]
    (folder / "Info.cfg").write_text("\n".join(lines) + "\n", encoding="utf-8")


def brain_file_name(subject: str, age: int) -> str:
    return f"{subject}_age-{int(age):02d}.nii.gz"


def write_brain_subject(phantom: BrainPhantom, folder: Path, name: str) -> None:
    """`folder` gets one NIfTI per timepoint on the template's grid: <name>_age-YY.nii.gz."""
    geometry = phantom.template.lps_geometry()
    for age, frame in zip(phantom.ages, phantom.frames):
        sitk.WriteImage(_image(frame, *geometry), str(Path(folder) / brain_file_name(name, age)), useCompression=True)


def brain_manifest_rows(subject: str, ages: Iterable[int]) -> list[dict]:
    """Manifest rows of one subject: 1-based timepoints, paths relative to the manifest's folder."""
    return [
        {
            "subject": subject,
            "timepoint": timepoint,
            "path": f"{subject}/{brain_file_name(subject, age)}",
            "time": int(age),
        }
        for timepoint, age in enumerate(ages, start=1)
    ]
