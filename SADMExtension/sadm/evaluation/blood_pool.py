"""LV blood-pool volume of a cardiac frame, by one rule applied to the truth and to every method's
frame alike: the voxels inside a region of interest that are brighter than a threshold. Both come
from the sequence's ED frame and its ACDC label (given data, not the frame being judged): the ROI is
the ED LV cavity grown by a margin (the cavity only shrinks towards ES), the threshold lies midway
between the ED cavity's and the ED myocardium's median intensity. Papillary muscles, darker than
blood, are left out in every frame the same way."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from sadm.io.images import read_volume
from sadm.phantoms.cardiac import LV_LABEL, MYO_LABEL

MARGIN_MM = 4.0
"""How far the ROI reaches beyond the ED cavity: room for a generated wall drawn a little off."""


@dataclass(frozen=True)
class BloodPoolRule:
    roi: np.ndarray  # bool (k, j, i) on the sequence's native grid
    threshold: float  # in the sequence's normalised intensities
    voxel_ml: float

    def volume_ml(self, frame: np.ndarray) -> float:
        """The LV blood-pool volume of `frame` (same grid and normalisation as the ED frame)."""
        frame = np.asarray(frame)
        if frame.shape != self.roi.shape:
            raise ValueError(f"frame shape {frame.shape} differs from the ROI's {self.roi.shape}")
        return float(np.count_nonzero(self.roi & (frame > self.threshold))) * self.voxel_ml


def blood_pool_rule(
    ed_frame: np.ndarray, ed_labels: np.ndarray, spacing_ijk: tuple[float, float, float]
) -> BloodPoolRule:
    """The rule for one sequence from its ED frame (normalised) and ED labels; spacing in mm along i, j, k."""
    ed_frame, ed_labels = np.asarray(ed_frame), np.asarray(ed_labels)
    if ed_frame.shape != ed_labels.shape:
        raise ValueError(f"ED frame {ed_frame.shape} and labels {ed_labels.shape} differ in shape")
    cavity, myocardium = ed_labels == LV_LABEL, ed_labels == MYO_LABEL
    if not cavity.any() or not myocardium.any():
        raise ValueError("the ED labels hold no LV cavity or no myocardium (ACDC labels 3 and 2)")
    spacing_kji = np.asarray(spacing_ijk, dtype=float)[::-1]
    radius = np.maximum(np.round(MARGIN_MM / spacing_kji).astype(int), 0)
    offsets = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
    ball = sum((o / max(r, 1)) ** 2 for o, r in zip(offsets, radius)) <= 1.0
    roi = ndimage.binary_dilation(cavity, structure=ball)
    threshold = 0.5 * (float(np.median(ed_frame[cavity])) + float(np.median(ed_frame[myocardium])))
    return BloodPoolRule(roi, threshold, float(np.prod(spacing_kji)) / 1000.0)


def acdc_blood_pool_rule(folder: Path, ed_frame: np.ndarray, ed: int) -> BloodPoolRule | None:
    """The rule from an ACDC patient folder's ED label file (None when the folder has none)."""
    labels_path = Path(folder) / f"{Path(folder).name}_frame{ed:02d}_gt.nii.gz"
    if not labels_path.is_file():
        return None
    labels, geometry = read_volume(labels_path)
    if labels.shape != np.asarray(ed_frame).shape:
        return None
    return blood_pool_rule(ed_frame, np.rint(labels).astype(np.int16), geometry.spacing)
