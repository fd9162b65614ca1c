"""DICOM folders: one series of 2D slice files.

`DicomCineReader` reads a series whose slices carry several time points (the common cine-MR export:
every slice position at every cardiac phase) as a sequence: frames in time order, each a 3D volume on
the slices' own geometry, times the trigger times in ms. `DicomVolumeReader` reads a series of one
time point as the one 3D volume it is (`sadm generate`'s single-image input); alone it is no
sequence. SimpleITK (GDCM) reads the slices; its tag reader places them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sadm.errors import DataError
from sadm.io.acdc import is_acdc_patient
from sadm.io.checks import check_sequence
from sadm.io.dicom import (
    DicomSlice,
    along_normal,
    dicom_series_files,
    series_time_points,
    stack_geometry,
    time_of,
)
from sadm.io.frame_list import OneVolumeReader, files_of
from sadm.io.images import sitk_reason
from sadm.io.reader import SequenceReader, SequenceSource
from sadm.io.sequence import Geometry, LongitudinalSequence


def _series_ids(path: Path) -> list[str]:
    if not path.is_dir() or is_acdc_patient(path):
        return []
    return list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path)))


def _is_multi_frame(file: str) -> bool:
    reader = sitk.ImageFileReader()
    reader.SetFileName(file)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return False
    key = "0028|0008"
    return reader.HasMetaDataKey(key) and reader.GetMetaData(key).strip() not in ("", "1")


class DicomCineReader(SequenceReader):
    """A folder holding one DICOM series with several temporal positions."""

    name = "dicom-cine"
    describes = "a DICOM folder of one cine series (several temporal positions)"

    def claims(self, path: Path) -> bool:
        if len(_series_ids(path)) != 1:
            return False
        files = dicom_series_files(path)
        return not _is_multi_frame(files[0]) and len(series_time_points(path)) > 1

    def sources(self, path: Path) -> list[SequenceSource]:
        return [SequenceSource(path.name, self.name, (path,))]

    def read(self, source: SequenceSource) -> LongitudinalSequence:
        folder = source.paths[0]
        time_points = series_time_points(folder)
        frames, geometries = [], []
        for index, slices in enumerate(time_points):
            volume, geometry = _read_slices(along_normal(slices), f"time point {index + 1} of {folder}")
            frames.append(volume)
            geometries.append(geometry)
        times = [time_of(slices) for slices in time_points]
        sequence = LongitudinalSequence(
            frames=frames,
            geometries=geometries,
            sources=[str(folder)] * len(frames),
            subject=source.subject,
            times=None if any(t is None for t in times) else times,
            metadata={"reader": self.name, "index_name": "time", "index_unit": "ms"}
            if None not in times
            else {"reader": self.name},
        )
        return check_sequence(sequence, str(folder))

    def watched_files(self, source: SequenceSource) -> list[Path]:
        return files_of(source.paths[0])


class DicomVolumeReader(OneVolumeReader):
    """A folder holding the slices of one 3D volume (one DICOM series, one time point)."""

    name = "dicom-volume"
    describes = "a DICOM series folder (one 3D volume)"

    def claims(self, path: Path) -> bool:
        series = _series_ids(path)
        if not series or _is_multi_frame(dicom_series_files(path)[0]):
            return False
        return len(series) > 1 or len(series_time_points(path)) == 1  # several series: refused when read

    def watched_files(self, source: SequenceSource) -> list[Path]:
        return files_of(source.paths[0])

    def not_a_sequence(self, path: Path) -> str:
        series = _series_ids(path)
        if len(series) > 1:
            return (
                f"{path} holds {len(series)} DICOM series ({', '.join(series)}); expected one series per folder "
                "(one cine series, or one folder per timepoint)"
            )
        return (
            f"{path} holds one DICOM series, which is a single 3D volume; pass the DICOM folders of all "
            "timepoints in order (or list them in a CSV manifest)"
        )


def _read_slices(slices: list[DicomSlice], where: str) -> tuple[np.ndarray, Geometry]:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([item.file for item in slices])
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise DataError(f"cannot read {where} ({sitk_reason(error)})") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DataError(
            f"{where} is a colour series ({image.GetNumberOfComponentsPerPixel()} values per voxel); SADM reads "
            "greyscale images: export the series as greyscale (MONOCHROME2)"
        )
    volume = sitk.GetArrayFromImage(image).astype(np.float32, copy=False)
    if len(slices) > 1:
        return volume, Geometry.of_image(image)
    # One slice (a single-slice cine): its k axis is the slice normal, one slice thickness deep.
    columns_mm, rows_mm = image.GetSpacing()[:2]
    geometry = stack_geometry(slices, (rows_mm, columns_mm), slices[0].thickness, where)
    return volume.reshape((1, *volume.shape[-2:])), geometry
