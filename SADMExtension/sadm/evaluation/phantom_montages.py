"""Montages of synthetic subjects (rows) over time (columns), so a person can judge the phantoms:
a mid-ventricular short-axis slice through the cardiac cycle, an axial slice through the
lateral ventricles across the five ages.

    python -m sadm.evaluation.phantom_montages Resources/Montages
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from sadm.evaluation.montage import mid_slices, save_montage
from sadm.phantoms.brain import BrainOptions, brain_subject
from sadm.phantoms.cardiac import CardiacOptions, cardiac_subject

VENTRICLE_LEVEL_MNI_Z = 18.0  # mm: bodies of the lateral ventricles


def cardiac_columns(n_frames: int, es_index: int) -> list[int]:
    """Seven frames that tell the cycle: ED, two systolic, ES, two diastolic, the last frame."""
    systole = np.linspace(0, es_index, 4).round().astype(int)
    diastole = np.linspace(es_index, n_frames - 1, 4).round().astype(int)[1:]
    return [int(i) for i in np.concatenate([systole, diastole])]


def cardiac_montage(path: Path, subjects: int = 3, seed: int = 0, **options) -> Path:
    settings = CardiacOptions(**options)
    rows, labels = [], []
    for index in range(subjects):
        phantom = cardiac_subject(seed, index, settings)
        columns = cardiac_columns(phantom.subject.n_frames, phantom.es_index)
        rows.append([mid_slices(phantom.frames[t]) for t in columns])
        labels.append(
            f"patient{index + 1:03d}\nEF {phantom.subject.ejection_fraction:.0%}\nES {phantom.es_index + 1}/{phantom.subject.n_frames}"
        )
    header = ["ED", "systole", "systole", "ES", "diastole", "diastole", "end"]
    return save_montage(
        path, rows, labels, header, scale=1.5, title=f"synthetic cardiac cine, mid-ventricular slice (seed {seed})"
    )


def brain_montage(path: Path, subjects: int = 3, seed: int = 0, **options) -> Path:
    settings = BrainOptions(**options)
    rows, labels = [], []
    for index in range(subjects):
        phantom = brain_subject(seed, index, settings)
        template = phantom.template
        level = round((VENTRICLE_LEVEL_MNI_Z - template.origin_ras[2]) / template.spacing_mm)
        # axial (j, i) slice with anterior up: numpy rows run posterior → anterior in MNI
        rows.append([np.flipud(mid_slices(frame, axis=0, index=level)) for frame in phantom.frames])
        labels.append(f"sub-{index + 1:03d}\nages " + " ".join(str(a) for a in phantom.ages))
    header = [f"{low}-{high} y" for low, high in settings.age_groups]
    scale = max(1.0, 4.0 / settings.voxel_mm)
    return save_montage(
        path,
        rows,
        labels,
        header,
        scale=scale,
        title=f"synthetic brain ageing, axial slice at MNI z = +18 mm (seed {seed})",
    )


def main(argv: list[str] | None = None) -> None:
    folder = Path((argv or sys.argv[1:] or ["Resources/Montages"])[0])
    print(cardiac_montage(folder / "synthetic-cardiac.png"))
    print(brain_montage(folder / "synthetic-brain.png"))


if __name__ == "__main__":
    main()
