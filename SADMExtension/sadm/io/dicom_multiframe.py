"""Multi-frame DICOM files: a whole sequence in one file.

An enhanced MR file (per-frame functional groups) places every frame with its own position and time
(TemporalPositionIndex, NominalCardiacTriggerDelayTime); its frames become one 3D volume per time
point. A classic multi-frame file (an ultrasound or MR cine, 2D+t) holds one slice over time: each frame
is a one-slice volume, timed by FrameTime / FrameTimeVector. SimpleITK (GDCM) decodes the pixels;
pydicom reads the functional groups SimpleITK does not expose.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sadm.errors import DataError
from sadm.io.checks import check_sequence
from sadm.io.dicom import (
    DicomSlice,
    along_normal,
    import_pydicom,
    is_dicom_file,
    split_by_time,
    stack_geometry,
    time_of,
)
from sadm.io.images import sitk_reason
from sadm.io.reader import SequenceReader, SequenceSource
from sadm.io.sequence import LongitudinalSequence

_TIME_POINTERS = {"FrameTime", "FrameTimeVector", "TriggerTime", "ActualFrameDuration", "TemporalPositionIndex"}
_CM_UNITS = 3  # PhysicalUnitsXDirection code of an ultrasound region measured in cm


class MultiFrameDicomReader(SequenceReader):
    """One DICOM file whose frames are a sequence (enhanced MR, an MR or ultrasound cine)."""

    name = "dicom-multiframe"
    describes = "a multi-frame DICOM file (enhanced MR, a 2D+t cine)"
    suffixes = (".dcm",)

    def claims(self, path: Path) -> bool:
        return path.is_file() and is_dicom_file(path)

    def read(self, source: SequenceSource) -> LongitudinalSequence:
        path = source.paths[0]
        pydicom = import_pydicom()
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as error:  # pydicom raises many kinds for a damaged file
            raise DataError(f"cannot read {path} as DICOM ({error}); re-export it") from None
        count = int(header.get("NumberOfFrames") or 1)
        if count < 2:
            raise DataError(
                f"{path} is a single-frame DICOM file (one 2D slice); pass the folder that holds its whole series"
            )
        samples = int(header.get("SamplesPerPixel") or 1)
        if samples != 1:
            kind = str(header.get("Modality") or "DICOM")
            raise DataError(
                f"{path} is a colour ({header.get('PhotometricInterpretation', 'RGB')}) {kind} cine of {count} frames; "
                "SADM reads greyscale images (one value per voxel): export the cine as greyscale (MONOCHROME2) from the "
                "scanner or viewer, or convert it first (e.g. Slicer's Vector to Scalar Volume module)"
            )
        pixels = _pixels(path, count)
        if "PerFrameFunctionalGroupsSequence" in header:
            frames, geometries, times = _enhanced(header, pixels, str(path))
        else:
            frames, geometries, times = _cine(header, pixels, str(path))
        sequence = LongitudinalSequence(
            frames=frames,
            geometries=geometries,
            sources=[str(path)] * len(frames),
            subject=source.subject,
            times=times,
            metadata={"reader": self.name, **({"index_name": "time", "index_unit": "ms"} if times else {})},
        )
        return check_sequence(sequence, str(path), min_frames=1)


def _pixels(path: Path, count: int) -> np.ndarray:
    """(frame, row, column) float32 voxels, modality rescale applied (GDCM does it)."""
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise DataError(f"cannot read the pixels of {path} ({sitk_reason(error)})") from None
    array = sitk.GetArrayFromImage(image).astype(np.float32, copy=False)
    array = array.reshape((-1, *array.shape[-2:]))
    if array.shape[0] != count:
        raise DataError(f"{path} declares {count} frames but holds {array.shape[0]}; re-export it")
    return array


def _item(frame, shared, sequence: str, keyword: str):
    """A functional-group attribute: the frame's own group, else the shared one."""
    for groups in (frame, shared):
        if groups is not None and sequence in groups and len(groups[sequence].value):
            value = groups[sequence][0].get(keyword)
            if value is not None:
                return value
    return None


def _floats(value) -> tuple[float, ...] | None:
    if value is None:
        return None
    return (float(value),) if isinstance(value, (int, float)) else tuple(float(v) for v in value)


def _enhanced(header, pixels: np.ndarray, where: str):
    shared = header.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in header else None
    per_frame = header.PerFrameFunctionalGroupsSequence
    slices = []
    for index, frame in enumerate(per_frame):
        temporal = _item(frame, shared, "FrameContentSequence", "TemporalPositionIndex")
        trigger = _item(frame, shared, "CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime")
        slices.append(
            DicomSlice(
                index=index,
                position=_floats(_item(frame, shared, "PlanePositionSequence", "ImagePositionPatient")),
                orientation=_floats(_item(frame, shared, "PlaneOrientationSequence", "ImageOrientationPatient")),
                temporal=None if temporal is None else float(temporal),
                trigger_ms=None if trigger is None else float(trigger),
            )
        )
    if any(item.position is None or item.orientation is None for item in slices):
        raise DataError(
            f"{where} has frames without a plane position or orientation; expected both in every frame's "
            "functional groups (an enhanced MR export)"
        )
    first = per_frame[0]
    spacing = _floats(_item(first, shared, "PixelMeasuresSequence", "PixelSpacing"))
    thickness = _item(first, shared, "PixelMeasuresSequence", "SpacingBetweenSlices") or _item(
        first, shared, "PixelMeasuresSequence", "SliceThickness"
    )
    frames, geometries, times = [], [], []
    for number, time_point in enumerate(split_by_time(slices, where)):
        ordered = along_normal(time_point)
        frames.append(np.stack([pixels[item.index] for item in ordered]))
        geometries.append(stack_geometry(ordered, spacing, thickness, f"time point {number + 1} of {where}"))
        times.append(time_of(ordered))
    return frames, geometries, None if None in times else times


def _cine(header, pixels: np.ndarray, where: str):
    pointer = header.get("FrameIncrementPointer")
    pointers = [pointer] if pointer is not None and not isinstance(pointer, list) else (pointer or [])
    from pydicom.datadict import keyword_for_tag

    names = [keyword_for_tag(tag) or str(tag) for tag in pointers]
    if names and not set(names) & _TIME_POINTERS:
        raise DataError(
            f"{where}'s frames are ordered by {', '.join(names)}, so they are slices of one volume, not time points; "
            "expected a cine (frames ordered by FrameTime or FrameTimeVector)"
        )
    position = _floats(header.get("ImagePositionPatient"))
    orientation = _floats(header.get("ImageOrientationPatient"))
    thickness = header.get("SpacingBetweenSlices") or header.get("SliceThickness")
    item = DicomSlice(index=0, position=position, orientation=orientation)
    geometry = stack_geometry([item], _pixel_spacing(header), thickness, where)
    frames = [pixels[index][np.newaxis] for index in range(pixels.shape[0])]
    return frames, [geometry] * len(frames), _frame_times(header, len(frames))


def _pixel_spacing(header) -> tuple[float, float] | None:
    """(between rows, between columns) in mm: PixelSpacing, ImagerPixelSpacing or an ultrasound region's deltas."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        if header.get(keyword):
            return _floats(header.get(keyword))[:2]
    regions = header.get("SequenceOfUltrasoundRegions")
    if regions:
        region = regions[0]
        if region.get("PhysicalUnitsXDirection") == _CM_UNITS and region.get("PhysicalUnitsYDirection") == _CM_UNITS:
            return float(region.PhysicalDeltaY) * 10.0, float(region.PhysicalDeltaX) * 10.0
    return None


def _frame_times(header, count: int) -> list[float] | None:
    """Frame start times in ms: FrameTimeVector (the interval before each frame) or FrameTime × frame."""
    vector = header.get("FrameTimeVector")
    if vector is not None and len(vector) == count:
        return [float(t) for t in np.cumsum([float(v) for v in vector])]
    frame_time = header.get("FrameTime")
    if frame_time:
        return [float(frame_time) * index for index in range(count)]
    return None
