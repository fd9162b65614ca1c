"""What the DICOM readers share: the tags of a slice, the split of slices into time points, and the
geometry of a stack of slices from its position and orientation tags.

A cine series stores every (slice position, time) pair as one slice: the slices at one position are
that position's frames in time order (TemporalPositionIdentifier / TemporalPositionIndex, then
TriggerTime, then InstanceNumber), so time point t is the t-th slice at every position. pydicom is
loaded only where SimpleITK does not expose a tag (multi-frame functional groups).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sadm.errors import DataError
from sadm.io.sequence import Geometry

_POSITION_DECIMALS = 2  # positions equal to 0.01 mm are one slice position


@dataclass(frozen=True)
class DicomSlice:
    """One 2D slice (a file of a series, or a frame of a multi-frame file) and the tags that place it."""

    index: int  # frame number in the file, or the file's place in the folder
    position: tuple[float, float, float] | None  # ImagePositionPatient, mm (LPS)
    orientation: tuple[float, ...] | None  # ImageOrientationPatient: row then column direction cosines
    temporal: float | None = None  # TemporalPositionIdentifier / TemporalPositionIndex
    trigger_ms: float | None = None  # TriggerTime / NominalCardiacTriggerDelayTime
    instance: int | None = None  # InstanceNumber
    thickness: float | None = None  # SpacingBetweenSlices, else SliceThickness (mm): one slice's depth
    file: str = ""


def numbers(text: str | None) -> tuple[float, ...] | None:
    """'1.5\\-2\\3' -> (1.5, -2.0, 3.0); None when absent or not numbers."""
    if text is None or not str(text).strip():
        return None
    try:
        return tuple(float(part) for part in str(text).split("\\"))
    except ValueError:
        return None


def series_slice(file: str, index: int) -> DicomSlice:
    """The placing tags of one slice file, as SimpleITK (GDCM) reads them."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(file)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise DataError(f"cannot read the DICOM header of {file}; re-export the series") from None

    def tag(key: str) -> tuple[float, ...] | None:
        return numbers(reader.GetMetaData(key)) if reader.HasMetaDataKey(key) else None

    position, orientation = tag("0020|0032"), tag("0020|0037")
    temporal, trigger, instance = tag("0020|0100"), tag("0018|1060"), tag("0020|0013")
    thickness = tag("0018|0088") or tag("0018|0050")
    return DicomSlice(
        index=index,
        position=position[:3] if position and len(position) >= 3 else None,
        orientation=orientation[:6] if orientation and len(orientation) >= 6 else None,
        temporal=temporal[0] if temporal else None,
        trigger_ms=trigger[0] if trigger else None,
        instance=int(instance[0]) if instance else None,
        thickness=thickness[0] if thickness else None,
        file=file,
    )


def dicom_series_files(folder: Path) -> list[str]:
    """The slice files of the first series in `folder`, in GDCM's order (also what a cache watches)."""
    series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_ids[0])) if series_ids else []


def series_time_points(folder: Path) -> list[list[DicomSlice]]:
    """The time points of the first series in `folder` (one for a 3D volume), each its slices. The
    headers are read once per state of the folder (readers ask while claiming and again to read)."""
    files = dicom_series_files(folder)
    stamps = []
    for file in files:
        stat = os.stat(file)
        stamps.append((file, stat.st_mtime_ns, stat.st_size))
    return _time_points(str(folder), tuple(stamps))


@functools.lru_cache(maxsize=8)
def _time_points(folder: str, stamps: tuple) -> list[list[DicomSlice]]:
    return split_by_time([series_slice(stamp[0], index) for index, stamp in enumerate(stamps)], folder)


def split_by_time(slices: Sequence[DicomSlice], where: str) -> list[list[DicomSlice]]:
    """Time points in order, each its slices; one time point when no slice position repeats."""
    by_position: dict[tuple, list[DicomSlice]] = {}
    for item in slices:
        key = tuple(round(v, _POSITION_DECIMALS) for v in item.position) if item.position else (item.index,)
        by_position.setdefault(key, []).append(item)
    if all(len(group) == 1 for group in by_position.values()):
        return [list(slices)]
    counts = sorted({len(group) for group in by_position.values()})
    if len(counts) > 1:
        shown = ", ".join(f"{len(g)} at {k}" for k, g in list(by_position.items())[:4])
        raise DataError(
            f"{where} holds {len(by_position)} slice positions with different numbers of time points ({shown}); "
            "expected every slice position at every time point (a complete cine export)"
        )
    for group in by_position.values():
        group.sort(key=_time_order)
    return [[group[t] for group in by_position.values()] for t in range(counts[0])]


def _time_order(item: DicomSlice) -> tuple:
    missing = math.inf
    return (
        missing if item.temporal is None else item.temporal,
        missing if item.trigger_ms is None else item.trigger_ms,
        missing if item.instance is None else item.instance,
        item.index,
    )


def time_of(slices: Sequence[DicomSlice]) -> float | None:
    """The time point's trigger time in ms (the mean over its slices), None unless every slice has one."""
    triggers = [item.trigger_ms for item in slices]
    return None if any(t is None for t in triggers) else float(np.mean(triggers))


def along_normal(slices: Sequence[DicomSlice]) -> list[DicomSlice]:
    """The slices of one time point in order along the slice normal (the k axis)."""
    normal = slice_normal(slices[0].orientation)
    return sorted(slices, key=lambda item: float(np.dot(normal, item.position or (0.0, 0.0, 0.0))))


def slice_normal(orientation: Sequence[float] | None) -> np.ndarray:
    row, column = _axes(orientation)
    return np.cross(row, column)


def _axes(orientation: Sequence[float] | None) -> tuple[np.ndarray, np.ndarray]:
    if orientation is None:
        return np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    values = np.asarray(orientation, dtype=np.float64)
    return values[:3] / np.linalg.norm(values[:3]), values[3:6] / np.linalg.norm(values[3:6])


def stack_geometry(
    slices: Sequence[DicomSlice], pixel_spacing: Sequence[float] | None, thickness: float | None, where: str
) -> Geometry:
    """The geometry of slices sorted along their normal: origin at the first slice, i along the rows
    (PixelSpacing[1]), j along the columns (PixelSpacing[0]), k from slice to slice."""
    row, column = _axes(slices[0].orientation)
    normal = np.cross(row, column)
    if len(slices) > 1:
        steps = np.diff([float(np.dot(normal, item.position)) for item in slices])
        if steps.min() <= 0 or steps.max() - steps.min() > 0.01 * steps.max() + 1e-3:
            raise DataError(
                f"{where} has slices {np.round(steps, 3).tolist()} mm apart; expected equally spaced slices "
                "(a slice missing from the export?)"
            )
        depth = float(steps.mean())
    else:
        depth = float(thickness) if thickness else 1.0
    rows_mm, columns_mm = (float(pixel_spacing[0]), float(pixel_spacing[1])) if pixel_spacing else (1.0, 1.0)
    direction = np.stack([row, column, normal], axis=1)  # columns are the i, j, k axes
    origin = slices[0].position or (0.0, 0.0, 0.0)
    return Geometry(
        spacing=(columns_mm, rows_mm, depth),
        origin=tuple(float(v) for v in origin),
        direction=tuple(float(v) for v in direction.ravel()),
    )


def is_dicom_file(path: Path) -> bool:
    """A DICOM Part 10 file: 'DICM' after the 128-byte preamble."""
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def import_pydicom():
    """pydicom, or a DataError saying how to install it (Slicer ships it; `pip install 'sadm[dicom]'`)."""
    try:
        import pydicom
    except ImportError:
        raise DataError(
            "reading multi-frame DICOM files needs pydicom; install it with `pip install 'sadm[dicom]'` "
            "(3D Slicer ships it)"
        ) from None
    return pydicom
