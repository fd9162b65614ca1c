"""DICOM files written with pydicom (another tool than the readers' SimpleITK), with known geometry and
times: a cine series (every slice position at every phase, one file each), an enhanced MR multi-frame
file and a 2D+t multi-frame cine. pydicom's own real test files are found with `real_file`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom  # a test extra (pyproject): missing, the DICOM tests fail rather than skip
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4.1"
US_MULTI_FRAME_IMAGE = "1.2.840.10008.5.1.4.1.1.3.1"

ROW = np.array([0.8, 0.6, 0.0])  # ImageOrientationPatient: the direction along a row (the i axis)
COLUMN = np.array([0.0, 0.0, -1.0])  # ... and down a column (the j axis)
NORMAL = np.cross(ROW, COLUMN)
PIXEL_SPACING = (0.9, 0.7)  # between rows (j), between columns (i), mm
SLICE_GAP = 2.5  # mm
ORIGIN = np.array([-20.0, 10.5, 33.0])
SHAPE = (3, 5, 6)  # slices, rows, columns


def phase_volume(phase: int, shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    """A (k, j, i) int16 volume every voxel and phase of which is told apart by value."""
    return (np.arange(int(np.prod(shape))).reshape(shape) + 100 * phase).astype(np.int16)


def slice_position(k: int) -> np.ndarray:
    return ORIGIN + k * SLICE_GAP * NORMAL


def _base(sop_class: str, series_uid: str, rows: int, columns: int) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = series_uid + ".9", series_uid
    ds.FrameOfReferenceUID = series_uid + ".8"
    ds.Modality, ds.PatientName, ds.PatientID = "MR", "Test^Cine", "42"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    return ds


def _save(ds: Dataset, path: Path, pixels: np.ndarray) -> Path:
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_cine_series(
    folder: Path,
    phases: int = 4,
    tags: Sequence[str] = ("temporal", "trigger"),
    series_uid: str = "1.2.826.0.1.3680043.2.1125.7.1",
    slices: int = SHAPE[0],
) -> list[float]:
    """One MR series of single-slice files, every slice position at every phase, in shuffled file
    names; returns each phase's trigger time (ms, the mean over its slices: slices differ by 0.5 ms)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = rng.permutation(phases * slices)
    orientation = [float(v) for v in (*ROW, *COLUMN)]
    for phase in range(phases):
        volume = phase_volume(phase, (slices, *SHAPE[1:]))
        for k in range(slices):
            ds = _base(MR_IMAGE, series_uid, SHAPE[1], SHAPE[2])
            ds.ImageOrientationPatient = orientation
            ds.ImagePositionPatient = [float(v) for v in slice_position(k)]
            ds.PixelSpacing = list(PIXEL_SPACING)
            ds.SliceThickness = SLICE_GAP
            ds.InstanceNumber = 1 + phase + k * phases  # slice-major, as many scanners number a cine
            if "temporal" in tags:
                ds.TemporalPositionIdentifier = phase + 1
                ds.NumberOfTemporalPositions = phases
            if "trigger" in tags:
                ds.TriggerTime = 40.0 * phase + 0.5 * k
            _save(ds, folder / f"IM{names[phase * slices + k]:04d}", volume[k])
    return [40.0 * phase + 0.5 * (slices - 1) / 2 for phase in range(phases)]


def write_enhanced_mr(path: Path, phases: int = 3, slope: float = 1.0, intercept: float = 0.0) -> list[float]:
    """An enhanced MR file: frames stored slice by slice (all phases of slice 0 first), each placed by
    its per-frame groups; returns the phases' trigger delays (ms)."""
    ds = _base(ENHANCED_MR_IMAGE, "1.2.826.0.1.3680043.2.1125.7.2", SHAPE[1], SHAPE[2])
    shared = Dataset()
    orientation = Dataset()
    orientation.ImageOrientationPatient = [float(v) for v in (*ROW, *COLUMN)]
    measures = Dataset()
    measures.PixelSpacing = list(PIXEL_SPACING)
    measures.SliceThickness = SLICE_GAP
    measures.SpacingBetweenSlices = SLICE_GAP
    transform = Dataset()
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = slope, intercept, "US"
    shared.PlaneOrientationSequence = DicomSequence([orientation])
    shared.PixelMeasuresSequence = DicomSequence([measures])
    shared.PixelValueTransformationSequence = DicomSequence([transform])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame, pixels = [], []
    delays = [35.0 * phase + 10.0 for phase in range(phases)]
    for k in range(SHAPE[0]):
        for phase in range(phases):
            frame = Dataset()
            position, content, cardiac = Dataset(), Dataset(), Dataset()
            position.ImagePositionPatient = [float(v) for v in slice_position(k)]
            content.TemporalPositionIndex = phase + 1
            content.InStackPositionNumber = k + 1
            cardiac.NominalCardiacTriggerDelayTime = delays[phase]
            frame.PlanePositionSequence = DicomSequence([position])
            frame.FrameContentSequence = DicomSequence([content])
            frame.CardiacSynchronizationSequence = DicomSequence([cardiac])
            per_frame.append(frame)
            pixels.append(phase_volume(phase)[k])
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.NumberOfFrames = len(per_frame)
    _save(ds, path, np.stack(pixels))
    return delays


def write_2d_cine(path: Path, frames: int = 5, frame_time_ms: float = 33.3) -> np.ndarray:
    """A greyscale ultrasound multi-frame file: one slice over time, spacing in its ultrasound region (cm)."""
    ds = _base(US_MULTI_FRAME_IMAGE, "1.2.826.0.1.3680043.2.1125.7.3", SHAPE[1], SHAPE[2])
    ds.Modality = "US"
    ds.NumberOfFrames = frames
    ds.FrameTime = frame_time_ms
    ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    region = Dataset()
    region.PhysicalUnitsXDirection, region.PhysicalUnitsYDirection = 3, 3
    region.PhysicalDeltaX, region.PhysicalDeltaY = 0.02, 0.03
    ds.SequenceOfUltrasoundRegions = DicomSequence([region])
    pixels = np.stack([phase_volume(t, (1, *SHAPE[1:]))[0] for t in range(frames)])
    _save(ds, path, pixels)
    return pixels


def real_file(name: str) -> Path:
    """One of the DICOM files pydicom's wheel ships (written by other tools)."""
    from pydicom.data import get_testdata_file

    found = get_testdata_file(name, download=False)
    assert found is not None, (
        f"pydicom {__import__('pydicom').__version__} does not ship {name} (the tests need pydicom 3)"
    )
    return Path(found)
