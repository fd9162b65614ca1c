"""Checking the frames a caller hands to the engine, before any work is done."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sadm.errors import InvalidFramesError, InvalidRolesError
from sadm.generation.request import OBSERVED


def validate_frames(frames: Sequence[np.ndarray | None], roles: Sequence[str]) -> tuple[int, int, int]:
    """Observed frames are finite 3D arrays of one shape; returns that (k, j, i) shape.

    Frames of missing/future timepoints are ignored (they may be None or hold ground truth).
    """
    if len(frames) != len(roles):
        raise InvalidRolesError(f"got {len(frames)} frames but {len(roles)} roles; give one role per frame")
    shape = None
    for index, (frame, role) in enumerate(zip(frames, roles)):
        if role != OBSERVED:
            continue
        if frame is None:
            raise InvalidFramesError(
                f"frame {index} is marked 'observed' but is None; pass its image or mark it 'missing'"
            )
        array = np.asarray(frame)
        if array.ndim != 3:
            raise InvalidFramesError(
                f"frame {index} has {array.ndim} dimensions {array.shape}; expected a 3D volume (k, j, i)"
                + ("; split a 4D array into one volume per frame" if array.ndim == 4 else "")
            )
        if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
            raise InvalidFramesError(f"frame {index} has dtype {array.dtype}; expected real-valued voxels")
        if min(array.shape) < 1:
            raise InvalidFramesError(f"frame {index} is empty (shape {array.shape})")
        if shape is None:
            shape = array.shape
        elif array.shape != shape:
            raise InvalidFramesError(
                f"frame {index} has shape {array.shape} but frame 0 has {shape}; all frames of a sequence "
                "must share one grid (resample them onto the first frame's grid)"
            )
        if not np.all(np.isfinite(array)):
            bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
            raise InvalidFramesError(f"frame {index} holds {bad} NaN/Inf voxels; replace them (e.g. with 0) first")
    return shape
