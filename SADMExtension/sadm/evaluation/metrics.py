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


def score(truth: np.ndarray, generated: np.ndarray) -> dict[str, float]:
    return {"ssim": ssim(truth, generated), "psnr": psnr(truth, generated), "nrmse": nrmse(truth, generated)}
