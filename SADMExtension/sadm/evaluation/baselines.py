"""Trivial baselines every generated frame must beat to be worth its compute.

All see only the observed frames of a run (never the truth of the frames they fill):
- copy-last: the last observed frame before the target;
- linear: interpolation in time between the nearest observed frames before and after the target,
  else extrapolation from the last two observed frames before it, else copy-last; clipped to the
  intensity range of the observed frames (extrapolated background must not leave the data's range);
- registration: the observed frames around the target registered to each other and the motion scaled
  to the target's time (or continued past the last one), else copy-last — the strongest model-free
  answer (`sadm.generation.registration`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable

import numpy as np

from sadm.generation.registration import registered_frames
from sadm.generation.request import OBSERVED

Baseline = Callable[[np.ndarray, Sequence[str], Sequence[float]], dict[int, np.ndarray]]


def _observed(roles: Sequence[str]) -> list[int]:
    return [i for i, role in enumerate(roles) if role == OBSERVED]


def reference_index(roles: Sequence[str], target: int) -> int:
    """The last observed frame before `target`: what copy-last returns and the change is measured from."""
    return max(i for i in range(target) if roles[i] == OBSERVED)


def copy_last(frames: np.ndarray, roles: Sequence[str], times: Sequence[float]) -> dict[int, np.ndarray]:
    """{target: the last observed frame before it}."""
    return {
        target: frames[reference_index(roles, target)].copy() for target, role in enumerate(roles) if role != OBSERVED
    }


def linear(frames: np.ndarray, roles: Sequence[str], times: Sequence[float]) -> dict[int, np.ndarray]:
    """{target: linear interpolation (or extrapolation) in time of the observed frames}."""
    observed = _observed(roles)
    low = min(float(frames[i].min()) for i in observed)
    high = max(float(frames[i].max()) for i in observed)
    result = {}
    for target, role in enumerate(roles):
        if role == OBSERVED:
            continue
        before = [i for i in observed if i < target]
        after = [i for i in observed if i > target]
        if after:
            a, b = before[-1], after[0]
        elif len(before) >= 2:
            a, b = before[-2], before[-1]
        else:
            result[target] = frames[before[-1]].copy()
            continue
        weight = (times[target] - times[a]) / (times[b] - times[a])
        estimate = (1.0 - weight) * frames[a].astype(np.float64) + weight * frames[b].astype(np.float64)
        result[target] = np.clip(estimate, low, high).astype(frames.dtype)
    return result


def registration(frames: np.ndarray, roles: Sequence[str], times: Sequence[float]) -> dict[int, np.ndarray]:
    """{target: the observed frames' registration scaled to its time}."""
    return {target: frame.astype(frames.dtype) for target, frame in registered_frames(frames, roles, times).items()}


BASELINES: dict[str, Baseline] = {"copy-last": copy_last, "linear": linear, "registration": registration}
