"""Small data makers shared by the test suites (imported as `sadm_testing`; Testing/ is on sys.path
through its top-level conftest)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sadm.io.sequence import Geometry


def train_step(model, optimizer, sequences, generator=None, max_grad_norm: float | None = 1.0) -> float:
    """One plain gradient step of Alg. 1 on a batch of sequences (B, L, D, H, W) in [0, 1]: what the
    engine tests train their tiny models with (the Trainer adds EMA, bf16, schedules, DDP); the loss."""
    import torch

    from sadm.training.batches import make_batch

    model.train()
    batch = make_batch(sequences, generator=generator, context=model.config.attention.context)
    loss = model.loss(batch, generator)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return float(loss.detach())


def moving_blob_sequence(length: int = 4, shape=(8, 16, 16), scale: float = 1.0) -> list[np.ndarray]:
    """A bright ball that moves along i and grows over time on a dim background (k, j, i)."""
    k, j, i = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    frames = []
    for t in range(length):
        centre = (shape[0] / 2, shape[1] / 2, 4.0 + 2.5 * t)
        radius = 3.0 + 0.5 * t
        distance = np.sqrt((k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2)
        frame = 0.1 + 0.9 / (1 + np.exp((distance - radius) * 2.0))
        frames.append((frame * scale).astype(np.float32))
    return frames


def rotation(axis: Sequence[float], angle_rad: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle_rad) * cross + (1 - math.cos(angle_rad)) * cross @ cross


# Oblique about a skew axis and anisotropic: a geometry no reader can get right by accident.
OBLIQUE = Geometry(
    spacing=(0.7, 1.3, 2.9),
    origin=(10.5, -20.25, 30.125),
    direction=tuple(float(v) for v in rotation([1, 2, 3], 0.4).ravel()),
)
