"""The random (C, M, F) partitions of Alg. 1 (the roles and their rules live in
`sadm.generation.request`, the context X̃ of a target in `sadm.generation.context`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sadm.errors import InvalidRolesError
from sadm.generation.request import FUTURE, MISSING, OBSERVED


def sample_partition(
    length: int, generator: torch.Generator | None = None, missing_rate: float | None = 0.5
) -> list[str]:
    """Draw a random (C, M, F) partition of a sequence of `length` frames for Alg. 1.

    Frame 0 is always observed. The number of future frames is uniform in 0..length−1 and every
    earlier frame after the first is missing with probability `missing_rate` (None: a rate drawn
    uniformly in [0, 1] per sequence, so that contexts with every earlier frame observed — the
    paper's *full* setting — are as common as half-missing ones; with a fixed 1/2 a context of n
    observed frames comes up with probability 2⁻ⁿ); if nothing is left to generate, the last frame
    becomes future. This covers the paper's single / missing / full settings.
    """
    if length < 2:
        raise InvalidRolesError(f"a training sequence needs at least 2 frames; got {length}")
    if missing_rate is not None and not 0.0 <= missing_rate <= 1.0:
        raise ValueError(f"missing_rate must lie in [0, 1] (or be None); got {missing_rate}")
    num_future = int(torch.randint(0, length, (1,), generator=generator))
    if missing_rate is None:
        missing_rate = float(torch.rand(1, generator=generator))
    roles = [OBSERVED] * length
    for index in range(length - num_future, length):
        roles[index] = FUTURE
    for index in range(1, length - num_future):
        if float(torch.rand(1, generator=generator)) < missing_rate:
            roles[index] = MISSING
    if all(r == OBSERVED for r in roles):
        roles[-1] = FUTURE
    return roles


def sample_target(roles: Sequence[str], generator: torch.Generator | None = None) -> int:
    """i ~ U(M ∪ F)."""
    candidates = [i for i, r in enumerate(roles) if r != OBSERVED]
    return candidates[int(torch.randint(0, len(candidates), (1,), generator=generator))]
