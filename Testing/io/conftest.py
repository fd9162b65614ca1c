"""Fixtures of the reader tests (the file writers live in Testing/sequence_files.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sequence_files import make_frames


@pytest.fixture
def frames5() -> list[np.ndarray]:
    """Five int16 frames of shape (4, 5, 6), frame t = ramp + 100·t."""
    return make_frames(5)
