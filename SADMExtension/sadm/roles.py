"""Observed / missing / future roles of the frames of a sequence: validation for generation and
the random partitions (C, M, F) of Alg. 1."""

from __future__ import annotations

from typing import Sequence

import torch

from sadm.errors import InvalidRolesError

OBSERVED, MISSING, FUTURE = "observed", "missing", "future"
ROLES = (OBSERVED, MISSING, FUTURE)


def validate_roles(roles: Sequence[str], max_frames: int | None = None) -> list[str]:
    """Check the rules of the method and return the roles as a list.

    Frame 0 is observed (it conditions every later one); at least one frame is missing or future;
    every future frame comes after every observed and missing frame; no more frames than the model
    was built for.
    """
    roles = list(roles)
    if not roles:
        raise InvalidRolesError("roles is empty; give one role per frame, starting with 'observed'")
    for index, role in enumerate(roles):
        if role not in ROLES:
            raise InvalidRolesError(f"roles[{index}] is {role!r}; each role must be one of {ROLES}")
    if roles[0] != OBSERVED:
        raise InvalidRolesError(
            f"roles[0] must be 'observed' (the first frame conditions all later ones); got {roles[0]!r}"
        )
    if max_frames is not None and len(roles) > max_frames:
        raise InvalidRolesError(
            f"the sequence has {len(roles)} frames but this model supports at most {max_frames}; "
            f"drop frames or use a model trained with max_frames >= {len(roles)}"
        )
    targets = [i for i, r in enumerate(roles) if r != OBSERVED]
    if not targets:
        raise InvalidRolesError("no frame to generate: mark at least one frame 'missing' or 'future'")
    future = [i for i, r in enumerate(roles) if r == FUTURE]
    if future:
        last_known = max(i for i, r in enumerate(roles) if r != FUTURE)
        early = [i for i in future if i < last_known]
        if early:
            raise InvalidRolesError(
                f"future frame(s) {early} come before frame {last_known} ({roles[last_known]!r}); future "
                "frames must follow every observed and missing frame — mark them 'missing' instead"
            )
    return roles


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


def context_indices(length: int, target: int, context: str = "causal") -> list[int]:
    """The frames that make up X̃ for `target`, in time order: 0..target−1 ("causal", the paper's
    Alg. 1/2), or every frame but the target ("bidirectional")."""
    if context == "causal":
        return list(range(target))
    if context == "bidirectional":
        return [k for k in range(length) if k != target]
    raise ValueError(f"unknown context {context!r}; expected 'causal' or 'bidirectional'")


def context_mask(roles: Sequence[str], target: int, context: str = "causal") -> list[bool]:
    """For each frame of X̃ (see `context_indices`): does it enter as its image (True) or as a zero
    volume that still carries its position (False)."""
    return [roles[k] == OBSERVED for k in context_indices(len(roles), target, context)]
