"""Issue 18 audit: training examples that look like what sampling asks the model. Frame i−1 is always
present at inference (observed or generated), and the native warp path asks, from target i's
context, for the frame at an anchor's position — which Alg. 1 never does (the target is never in its
own context, frame 0 never a target). Both are options of `make_batch` (and TrainConfig)."""

from __future__ import annotations

import pytest
import torch

from sadm.config import TrainConfig
from sadm.errors import ConfigError
from sadm.training.batches import make_batch

LENGTH = 6


def sequences(batch: int = 64) -> torch.Tensor:
    """Frame k of every sequence is the constant (k + 1) / 10: a frame's image names its index."""
    values = (torch.arange(LENGTH, dtype=torch.float32) + 1) / 10
    return values[None, :, None, None, None].expand(batch, LENGTH, 2, 2, 2).clone()


def frame_of(image: torch.Tensor) -> int:
    """The index of a frame from its image (-1: a zero volume, a frame not observed)."""
    value = float(image.flatten()[0])
    return -1 if value == 0 else round(value * 10) - 1


@pytest.mark.parametrize("context", ["causal", "bidirectional"])
def test_previous_frame_is_observed_when_asked(context):
    batch = make_batch(
        sequences(),
        generator=torch.Generator().manual_seed(1),
        context=context,
        missing_rate=1.0,
        previous_observed_probability=1.0,
    )
    for b in range(len(batch["target"])):
        target = int(batch["target_index"][b])
        slots = {
            int(p): frame_of(batch["context"][b, s])
            for s, p in enumerate(batch["positions"][b])
            if batch["context_mask"][b, s]
        }
        assert slots[target - 1] == target - 1  # observed: its image is there
    without = make_batch(sequences(), generator=torch.Generator().manual_seed(1), context=context, missing_rate=1.0)
    hidden = 0
    for b in range(len(without["target"])):
        target = int(without["target_index"][b])
        slots = {
            int(p): frame_of(without["context"][b, s])
            for s, p in enumerate(without["positions"][b])
            if without["context_mask"][b, s]
        }
        hidden += target > 1 and slots[target - 1] == -1
    assert hidden > 0  # Alg. 1 alone (every frame after 0 missing here) hides it


@pytest.mark.parametrize("context", ["causal", "bidirectional"])
def test_anchor_examples_ask_for_an_observed_context_frame(context):
    batch = make_batch(
        sequences(256), generator=torch.Generator().manual_seed(2), context=context, anchor_target_probability=1.0
    )
    asked_zero = 0
    for b in range(len(batch["target"])):
        asked = int(batch["target_index"][b])
        assert frame_of(batch["target"][b] * 0.5 + 0.5) == asked  # the target image is that frame (in [−1, 1])
        assert float(batch["target_position"][b]) == asked
        slots = {
            int(p): frame_of(batch["context"][b, s])
            for s, p in enumerate(batch["positions"][b])
            if batch["context_mask"][b, s]
        }
        assert slots[asked] == asked  # an observed frame of X̃: what the warp path's reference draw asks for
        asked_zero += asked == 0
    assert asked_zero > 0  # frame 0, the single setting's anchor, is asked for too

    plain = make_batch(sequences(256), generator=torch.Generator().manual_seed(2), context=context)
    for b in range(len(plain["target"])):
        positions = {int(p) for s, p in enumerate(plain["positions"][b]) if plain["context_mask"][b, s]}
        assert int(plain["target_position"][b]) not in positions  # Alg. 1: never a frame of its own X̃


def test_probabilities_are_checked():
    with pytest.raises(ValueError, match="anchor_target_probability must lie in"):
        make_batch(sequences(2), anchor_target_probability=1.5)
    with pytest.raises(ConfigError, match="previous_observed_probability must lie in"):
        TrainConfig(previous_observed_probability=-0.1)
