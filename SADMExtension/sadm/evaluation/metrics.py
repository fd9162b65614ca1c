"""Image-quality metrics with scikit-image's conventions (as the paper reports them)."""

from __future__ import annotations

import numpy as np


def _require_skimage():
    try:
        from skimage import metrics
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "metrics need scikit-image: pip install 'sadm[eval]' (or pip install scikit-image)"
        ) from error
    return metrics


def ssim(truth: np.ndarray, generated: np.ndarray) -> float:
    """3D SSIM (skimage's default 7-voxel uniform window, smaller for thin volumes) with data_range from the truth."""
    metrics = _require_skimage()
    truth, generated = np.asarray(truth, np.float64), np.asarray(generated, np.float64)
    data_range = float(truth.max() - truth.min()) or 1.0
    window = min(7, *(n if n % 2 else n - 1 for n in truth.shape))
    return float(metrics.structural_similarity(truth, generated, data_range=data_range, win_size=max(window, 3)))


def psnr(truth: np.ndarray, generated: np.ndarray) -> float:
    """PSNR in dB with data_range from the truth (skimage.metrics.peak_signal_noise_ratio); inf for
    an exact copy."""
    metrics = _require_skimage()
    truth, generated = np.asarray(truth, np.float64), np.asarray(generated, np.float64)
    data_range = float(truth.max() - truth.min()) or 1.0
    with np.errstate(divide="ignore"):
        return float(metrics.peak_signal_noise_ratio(truth, generated, data_range=data_range))


def nrmse(truth: np.ndarray, generated: np.ndarray) -> float:
    """Normalised RMSE, ||truth − generated|| / ||truth|| (skimage's default 'euclidean')."""
    metrics = _require_skimage()
    return float(metrics.normalized_root_mse(np.asarray(truth, np.float64), np.asarray(generated, np.float64)))


def change_correlation(truth: np.ndarray, generated: np.ndarray, reference: np.ndarray) -> float:
    """How well the predicted change from `reference` (the last observed frame before the target)
    matches the true change: Pearson's r of the two difference volumes over all voxels. Copying
    `reference` predicts no change and scores 0 by construction (as does any constant change); a
    perfect prediction scores 1. SSIM and PSNR reward copying whatever stays the same; this scores
    only what the sequence adds."""
    true_change = np.asarray(truth, np.float64) - np.asarray(reference, np.float64)
    predicted_change = np.asarray(generated, np.float64) - np.asarray(reference, np.float64)
    true_change -= true_change.mean()
    predicted_change -= predicted_change.mean()
    norm = float(np.sqrt(np.sum(true_change**2) * np.sum(predicted_change**2)))
    if norm <= 1e-12 * max(true_change.size, 1):
        return 0.0
    return float(np.sum(true_change * predicted_change) / norm)


def score(truth: np.ndarray, generated: np.ndarray, reference: np.ndarray | None = None) -> dict[str, float]:
    """SSIM, PSNR and NRMSE against the truth; with `reference` (the last observed frame before the
    target) also the change correlation."""
    scores = {"ssim": ssim(truth, generated), "psnr": psnr(truth, generated), "nrmse": nrmse(truth, generated)}
    if reference is not None:
        scores["change"] = change_correlation(truth, generated, reference)
    return scores
