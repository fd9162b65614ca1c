"""Reading one image file or one DICOM series folder with SimpleITK; every failure becomes a DataError
naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sadm.errors import DataError
from sadm.io.checks import check_finite
from sadm.io.dicom import dicom_series_files, series_time_points
from sadm.io.integrity import check_nifti, is_nifti
from sadm.io.sequence import Geometry


def read_image(path: Path) -> sitk.Image:
    """The image in `path` (a file, or a folder holding one DICOM series), as SimpleITK reads it."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; expected an image file or a DICOM series folder")
    if path.is_dir():
        return read_dicom_series(path)
    if is_nifti(path):
        check_nifti(path)
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise DataError(
            f"cannot read {path} as an image ({sitk_reason(error)}); expected a NIfTI, NRRD or MetaImage file "
            "or a DICOM series folder"
        ) from None


def read_dicom_series(folder: Path) -> sitk.Image:
    """The single DICOM series in `folder` (GDCM sorts the slices); several series are refused, not guessed."""
    series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series_ids:
        raise DataError(f"{folder} is a folder without DICOM files; expected the DICOM slices of one 3D volume")
    if len(series_ids) > 1:
        raise DataError(
            f"{folder} holds {len(series_ids)} DICOM series ({', '.join(series_ids)}); expected one series per "
            "folder (one folder per timepoint)"
        )
    time_points = series_time_points(folder)
    if len(time_points) > 1:
        raise DataError(
            f"{folder} holds a cine series of {len(time_points)} time points, not one 3D volume; pass the folder "
            "alone: it is the whole sequence"
        )
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(dicom_series_files(folder))
    try:
        return reader.Execute()
    except RuntimeError as error:
        raise DataError(f"cannot read the DICOM series in {folder} ({sitk_reason(error)})") from None


def read_volume(path: Path) -> tuple[np.ndarray, Geometry]:
    """One 3D scalar volume as a (k, j, i) float32 array and its geometry."""
    image = read_image(path)
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise DataError(f"{path} is {describe(image)}; expected one 3D scalar volume per timepoint")
    volume = sitk.GetArrayFromImage(image).astype(np.float32, copy=False)
    check_finite(volume, str(path))
    return volume, Geometry.of_image(image)


def describe(image: sitk.Image) -> str:
    """E.g. 'a 4D image of size (6, 5, 4, 3)' or 'a 3D image of size (6, 5, 4) with 3 components per voxel'."""
    text = f"a {image.GetDimension()}D image of size {tuple(image.GetSize())}"
    components = image.GetNumberOfComponentsPerPixel()
    return text + (f" with {components} components per voxel" if components > 1 else "")


def sitk_reason(error: RuntimeError) -> str:
    """The last line of a SimpleITK exception, without the C++ source location noise."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1].replace("sitk::ERROR: ", "") if lines else "unknown error"
