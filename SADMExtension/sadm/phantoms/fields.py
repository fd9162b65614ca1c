"""Numerical building blocks shared by the phantoms: per-subject random streams, soft shapes
(partial volume), smooth random fields, bias fields and MR magnitude noise."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def subject_rngs(seed: int, index: int, streams: int = 2) -> list[np.random.Generator]:
    """Independent generators for subject `index` that depend only on (seed, index).

    Making 10 or 100 subjects therefore gives the same first 10; separate streams (e.g. anatomy
    vs noise) keep one from shifting when the other draws more numbers.
    """
    if seed < 0 or index < 0:
        raise ValueError(f"seed and subject index must be non-negative; got seed={seed}, index={index}")
    children = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(index),)).spawn(streams)
    return [np.random.default_rng(child) for child in children]


def soft_inside(signed_distance_mm: np.ndarray, edge_mm: float) -> np.ndarray:
    """Fraction of a voxel of width `edge_mm` inside a shape, from the signed distance of its
    centre (negative inside): a linear ramp, i.e. a box-filtered edge — partial volume."""
    return np.clip(0.5 - np.asarray(signed_distance_mm) / edge_mm, 0.0, 1.0).astype(np.float32, copy=False)


def ellipse_distance(u: np.ndarray, v: np.ndarray, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """Approximate signed distance (mm) to the ellipse (u/a)² + (v/b)² = 1, negative inside.

    First-order (n − 1)/|∇n| of the normalised radius n: exact for circles, close for the mild
    ellipses of anatomy, and cheap. Semi-axes may be arrays (shapes that taper along an axis);
    a semi-axis of 0 means the shape is absent there.
    """
    a = np.maximum(a, 1e-3)
    b = np.maximum(b, 1e-3)
    ua, vb = u / a, v / b
    n = np.sqrt(ua * ua + vb * vb) + 1e-9
    grad = np.sqrt((ua / a) ** 2 + (vb / b) ** 2) / n
    return (n - 1.0) / np.maximum(grad, 1e-6)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_voxels) -> np.ndarray:
    """Gaussian-smoothed white noise rescaled to zero mean and unit standard deviation (float32)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_voxels, mode="wrap")
    field -= field.mean()
    return field / max(float(field.std()), 1e-8)


def rician(rng: np.random.Generator, magnitude: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude of a complex signal with Gaussian noise in both channels: the noise of MR
    magnitude images (Rayleigh in air, near-Gaussian in bright tissue)."""
    real = magnitude + sigma * rng.standard_normal(magnitude.shape, dtype=np.float32)
    imaginary = sigma * rng.standard_normal(magnitude.shape, dtype=np.float32)
    return np.sqrt(real * real + imaginary * imaginary)


def rotation_matrix(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """3×3 rotation about `axis` by `angle_rad` (Rodrigues)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    x, y, z = axis
    skew = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle_rad) * skew + (1 - np.cos(angle_rad)) * skew @ skew


def random_rotation(rng: np.random.Generator, max_angle_deg: float) -> np.ndarray:
    """A rotation by a uniform angle up to `max_angle_deg` about a random axis."""
    return rotation_matrix(rng.standard_normal(3), np.deg2rad(rng.uniform(0, max_angle_deg)))
