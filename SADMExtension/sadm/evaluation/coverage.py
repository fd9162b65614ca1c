"""How a σ map covers the truth: which voxels changed or moved between frames, the coverage of the
central bands, r(|error|, σ) and sharpness — what `sadm evaluate --samples N` reports and what
`sadm calibrate` weighs (scoring needs the truth, so it lives here, not beside the map)."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
from scipy.ndimage import gaussian_filter

from sadm.generation.uncertainty import Z_95

CHANGED = 0.05  # a voxel "changed" when it moved by more than 5 % of the intensity range


def changed_voxels(truth: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Where the truth differs from the last observed frame by more than `CHANGED` of its range, voxel
    by voxel. With acquisition noise σ_n this holds wherever the two noise samples differ by more than
    CHANGED — e.g. 5 % of the cardiac phantom's voxels that did not move at all — and there the truth's
    own noise is large by selection: reported beside `moved_voxels`, which is what a reader means."""
    truth = np.asarray(truth, np.float64)
    span = float(truth.max() - truth.min()) or 1.0
    return np.abs(truth - np.asarray(reference, np.float64)) > CHANGED * span


def moved_voxels(truth: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Where the anatomy moved: the truth and the last observed frame, each smoothed in-plane
    (Gaussian, σ one voxel, which cuts white noise about 3.5×), differ by more than `CHANGED` of the
    truth's range — the change, not the two frames' noise."""
    truth = np.asarray(truth, np.float64)
    span = float(truth.max() - truth.min()) or 1.0
    sigma = (0.0,) * (truth.ndim - 2) + (1.0, 1.0)
    difference = gaussian_filter(truth, sigma) - gaussian_filter(np.asarray(reference, np.float64), sigma)
    return np.abs(difference) > CHANGED * span


RELIABILITY_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def coverage_row(
    truth: np.ndarray,
    mean: np.ndarray,
    sigma: np.ndarray,
    changed: np.ndarray,
    changed_raw: np.ndarray | None = None,
) -> dict[str, float]:
    """How a spread map scores against the truth: the share of voxels inside the 50 / 90 / 95 % bands
    and ±2σ, over all voxels and over the voxels that changed (`moved_voxels`; with `changed_raw`, also
    ±2σ over `changed_voxels`); r(|error|, σ); sharpness (mean σ); the observed coverage of each
    `RELIABILITY_LEVELS` band (a reliability diagram's points)."""
    error = np.abs(np.asarray(truth, np.float64) - mean).ravel()
    sigma = np.asarray(sigma, np.float64).ravel()
    changed = np.asarray(changed, bool).ravel()
    row: dict[str, float] = {}
    for label, z in (("50", 0.674490), ("90", 1.644854), ("95", Z_95), ("2sigma", 2.0)):
        inside = error <= z * sigma
        row[f"cover_{label}"] = float(inside.mean())
        row[f"cover_{label}_changed"] = float(inside[changed].mean()) if changed.any() else float("nan")
        if changed_raw is not None and label == "2sigma":
            raw = np.asarray(changed_raw, bool).ravel()
            row["cover_2sigma_changed_raw"] = float(inside[raw].mean()) if raw.any() else float("nan")
    row["r_error_sigma"] = float(np.corrcoef(error, sigma)[0, 1]) if sigma.std() > 0 and error.std() > 0 else 0.0
    row["sharpness"] = float(sigma.mean())
    row["changed_share"] = float(changed.mean())
    ratio = error / np.maximum(sigma, 1e-12)
    for level in RELIABILITY_LEVELS:
        row[f"reliability_{level:g}"] = float((ratio <= NormalDist().inv_cdf(0.5 + level / 2)).mean())
    return row
