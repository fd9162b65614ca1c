"""The context X̃ of a target frame: which frames Aθ sees, and which of them enter as images. One rule
for training (Alg. 1) and sampling (Alg. 2); torch-free."""

from __future__ import annotations

from collections.abc import Sequence

from sadm.generation.request import OBSERVED


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
