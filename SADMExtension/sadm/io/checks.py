"""Checks every sequence passes before it is used: enough frames, 3D frames, finite voxels."""

from __future__ import annotations

import numpy as np

from sadm.errors import DataError
from sadm.io.sequence import LongitudinalSequence


def check_finite(volume: np.ndarray, where: str) -> None:
    """NaN/Inf voxels would poison min–max normalisation and every loss that sees them."""
    finite = np.isfinite(volume)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        raise DataError(f"{where} holds {bad} NaN/Inf voxels; replace them (e.g. with 0) before training")


def check_sequence(sequence: LongitudinalSequence, where: str, min_frames: int = 2) -> LongitudinalSequence:
    """A longitudinal sequence needs at least two 3D frames of finite voxels (one for `sadm generate`'s
    single-image input, `min_frames=1`); returns it unchanged."""
    if len(sequence) < min_frames:
        raise DataError(
            f"{where} holds {len(sequence)} frame(s); a longitudinal sequence needs at least 2 "
            "(the first conditions the generation of later ones)"
        )
    for index, (frame, source) in enumerate(zip(sequence.frames, sequence.sources)):
        if frame.ndim != 3:
            raise DataError(
                f"frame {index} of {where} ({source}) has shape {frame.shape}; expected a 3D volume (k, j, i)"
            )
        check_finite(frame, f"frame {index} of {where} ({source})")
    return sequence
