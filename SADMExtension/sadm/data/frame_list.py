"""Reading a sequence given as one 3D file (NIfTI, NRRD, MetaImage) or DICOM folder per timepoint."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sadm.data.checks import check_sequence
from sadm.data.images import read_volume
from sadm.data.sequence import LongitudinalSequence
from sadm.errors import DataError


def read_frame_files(
    paths: Sequence[str | Path], subject: str = "", times: Sequence[float] | None = None
) -> LongitudinalSequence:
    """Frames in the order given; each keeps its own geometry (grids are reconciled in preprocessing)."""
    paths = [Path(p) for p in paths]
    if times is not None and len(times) != len(paths):
        raise DataError(f"got {len(times)} times for {len(paths)} frame files; give one time per file or none")
    frames, geometries = [], []
    for path in paths:
        volume, geometry = read_volume(path)
        frames.append(volume)
        geometries.append(geometry)
    sequence = LongitudinalSequence(
        frames=frames,
        geometries=geometries,
        sources=[str(p) for p in paths],
        subject=subject,
        times=None if times is None else [float(t) for t in times],
        metadata={"reader": "frames"},
    )
    where = f"the sequence of subject '{subject}'" if subject else f"the sequence {[str(p) for p in paths]}"
    return check_sequence(sequence, where)
