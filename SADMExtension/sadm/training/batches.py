"""Algorithm 1: turn sequences into (X̃, target) training examples (the trainer takes the steps)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sadm.data.normalize import renormalize_to_observed
from sadm.generation.context import context_indices, context_mask
from sadm.generation.request import MISSING, OBSERVED
from sadm.training.partitions import sample_partition, sample_target


def make_batch(
    sequences: torch.Tensor,
    *,
    lengths: Sequence[int] | None = None,
    times: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    context: str = "causal",
    truncate_probability: float = 0.0,
    missing_rate: float | None = 0.5,
    previous_observed_probability: float = 0.0,
    anchor_target_probability: float = 0.0,
    frame_ranges: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Alg. 1 lines 3–9 for a batch of sequences.

    `sequences` (B, L, D, H, W) in [0, 1]; `lengths[b]` frames of sequence b are real (the rest is
    padding). Per sequence: draw (C, M, F), a target i ~ U(M ∪ F), and X̃ = frames 0..i−1 with
    zero volumes where frames are not observed ("bidirectional" context: every frame but i, so the
    frames after a missing one help). Contexts of different lengths share one tensor with a mask. `positions` are frame indices, or `times` where the data carry them.
    With probability `truncate_probability` a sequence is first cut to a prefix of 2..L frames
    drawn uniformly, so a bidirectional model also learns sequences shorter than the ones it was
    trained on (a user's 7-frame cine on a 12-frame model; the *full* setting's prefixes) — without
    it every training context has L−1 slots and a shorter one is out of distribution.
    `missing_rate`: see `sample_partition`.
    `previous_observed_probability`: how often frame i−1 is made observed (at inference it is always
    there, observed or generated; Alg. 1's partitions leave it out most of the time).
    `anchor_target_probability`: how often the example asks, from target i's context X̃, for the
    frame at an anchor's position instead — the observed frame before i, or for a missing i the
    observed one after it — as the native warp path's reference draw does (Alg. 1 never asks for a
    position whose frame is in X̃, and never for frame 0). The image X̃ and its mask stay i's.
    `frame_ranges` (B, L, 2) (`collate_sequences`): when given, each example is renormalised to the
    window of its observed frames, as generation normalises a request (it never sees the targets);
    without it the example keeps the cache's window over all frames (the paper's per-subject min–max).
    Every option is a keyword (the trainer passes its TrainConfig's by name).
    Returns context (B, Lc, D, H, W), context_mask (B, Lc), positions (B, Lc),
    target_position (B,), target (B, 1, D, H, W) in [−1, 1], target_index (B,) (the frame asked for).
    """
    batch, length = sequences.shape[:2]
    lengths = [length] * batch if lengths is None else [int(n) for n in lengths]
    if times is None:
        times = torch.arange(length, dtype=torch.float32).expand(batch, length)
    members, observed = [], []
    for name, value in (
        ("truncate_probability", truncate_probability),
        ("previous_observed_probability", previous_observed_probability),
        ("anchor_target_probability", anchor_target_probability),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1]; got {value}")
    asked = []
    prepared = sequences if frame_ranges is None else sequences.clone()
    for b in range(batch):
        if (
            truncate_probability > 0
            and lengths[b] > 2
            and float(torch.rand(1, generator=generator)) < truncate_probability
        ):
            lengths[b] = int(torch.randint(2, lengths[b] + 1, (1,), generator=generator))
        roles = sample_partition(lengths[b], generator, missing_rate)
        target = sample_target(roles, generator)
        if (
            previous_observed_probability > 0
            and float(torch.rand(1, generator=generator)) < previous_observed_probability
        ):
            roles[target - 1] = OBSERVED  # target ≥ 1: frame 0 is always observed
        if frame_ranges is not None:
            seen = [k for k, role in enumerate(roles) if role == OBSERVED]
            n = lengths[b]
            prepared[b, :n] = renormalize_to_observed(sequences[b, :n], frame_ranges[b, :n], seen)
        members.append(context_indices(lengths[b], target, context))
        observed.append(context_mask(roles, target, context))
        asked.append(target)
        if anchor_target_probability > 0 and float(torch.rand(1, generator=generator)) < anchor_target_probability:
            anchors = anchor_indices(roles, target, members[-1])
            asked[-1] = anchors[int(torch.randint(0, len(anchors), (1,), generator=generator))]
    context_length = max(len(m) for m in members)
    sequences = prepared
    frames = sequences.new_zeros(batch, context_length, *sequences.shape[2:])
    mask = torch.zeros(batch, context_length, dtype=torch.bool, device=sequences.device)
    positions = torch.zeros(batch, context_length, dtype=torch.float32, device=sequences.device)
    for b, (indices, keep) in enumerate(zip(members, observed)):
        mask[b, : len(indices)] = True
        positions[b, : len(indices)] = times[b, indices].to(positions.device)
        for slot, (k, is_observed) in enumerate(zip(indices, keep)):
            if is_observed:
                frames[b, slot] = sequences[b, k]
    index = torch.tensor(asked, device=sequences.device)
    rows = torch.arange(batch, device=sequences.device)
    return {
        "context": frames,
        "context_mask": mask,
        "positions": positions,
        "target_position": times.to(sequences.device)[rows, index].float(),
        "target": sequences[rows, index][:, None] * 2.0 - 1.0,
        "target_index": index,
    }


def anchor_indices(roles: Sequence[str], target: int, members: Sequence[int]) -> list[int]:
    """The anchors of `target` the warp path draws at: the last observed frame before it and, for a
    missing target, the first observed one after it, where X̃ holds it (bidirectional context)."""
    before = [k for k in range(target) if roles[k] == OBSERVED]
    anchors = before[-1:]
    if roles[target] == MISSING:
        after = [k for k in range(target + 1, len(roles)) if roles[k] == OBSERVED and k in members]
        anchors += after[:1]
    return anchors
