"""Writers of small real files (4D NIfTI/NRRD/MHA, Slicer .seq.nrrd, DICOM series, ACDC folders) shared
by the data tests. Volumes are tiny so every test file runs in a few seconds. (A plain module, not
conftest.py, so that `from sequence_files import ...` cannot pick up another folder's conftest.)"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sadm.io.sequence import Geometry
from sadm_testing import OBLIQUE

SHAPE = (4, 5, 6)  # (k, j, i)


def make_frames(count: int, shape: tuple[int, int, int] = SHAPE, dtype=np.int16) -> list[np.ndarray]:
    """Frame t holds a ramp plus 100·t, so every frame and every voxel is told apart by value."""
    ramp = np.arange(int(np.prod(shape))).reshape(shape)
    return [(ramp + 100 * t).astype(dtype) for t in range(count)]


def image_of(frame: np.ndarray, geometry: Geometry = OBLIQUE) -> sitk.Image:
    return geometry.apply_to(sitk.GetImageFromArray(frame))


def write_4d(
    path: Path,
    frames: Sequence[np.ndarray],
    geometry: Geometry = OBLIQUE,
    time_step: float = 1.0,
    time_origin: float = 0.0,
) -> Path:
    """A 4D scalar image (NIfTI / NRRD / MHA by suffix) with time as the 4th axis."""
    joined = sitk.JoinSeries([image_of(f, geometry) for f in frames], time_origin, time_step)
    sitk.WriteImage(joined, str(path))
    return path


def write_vector_nrrd(path: Path, frames: Sequence[np.ndarray], geometry: Geometry = OBLIQUE) -> Path:
    """A 3D NRRD with one vector component per frame (how SimpleITK sees a 'list' axis)."""
    stacked = np.stack(frames, axis=-1)
    image = geometry.apply_to(sitk.GetImageFromArray(stacked, isVector=True))
    sitk.WriteImage(image, str(path))
    return path


def write_slicer_sequence(
    path: Path, frames: Sequence[np.ndarray], geometry: Geometry = OBLIQUE, index_values: Sequence[str] = ()
) -> Path:
    """A .seq.nrrd written by Slicer's own vtkMRMLVolumeSequenceStorageNode (slicer-core wheel)."""
    import slicer
    import vtk
    from vtk.util import numpy_support

    scene = slicer.vtkMRMLScene()
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode")
    sequence.SetIndexName("time")
    sequence.SetIndexUnit("ms")
    if index_values and not all(_is_number(v) for v in index_values):
        sequence.SetIndexType(slicer.vtkMRMLSequenceNode.TextIndex)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    ijk_to_ras = lps_to_ras @ np.asarray(geometry.direction).reshape(3, 3)
    for index, frame in enumerate(frames):
        volume = slicer.vtkMRMLScalarVolumeNode()
        image_data = vtk.vtkImageData()
        image_data.SetDimensions(frame.shape[2], frame.shape[1], frame.shape[0])
        scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(frame).ravel(), deep=True)
        image_data.GetPointData().SetScalars(scalars)
        volume.SetAndObserveImageData(image_data)
        volume.SetSpacing(*geometry.spacing)
        volume.SetOrigin(*(lps_to_ras @ np.asarray(geometry.origin)))
        directions = vtk.vtkMatrix4x4()
        for row in range(3):
            for column in range(3):
                directions.SetElement(row, column, ijk_to_ras[row, column])
        volume.SetIJKToRASDirectionMatrix(directions)
        value = index_values[index] if index_values else str(index * 40)
        sequence.SetDataNodeAtValue(volume, value)
    storage = slicer.vtkMRMLVolumeSequenceStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.WriteData(sequence), f"Slicer could not write {path}"
    return path


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def write_dicom_series(
    folder: Path, frame: np.ndarray, geometry: Geometry = OBLIQUE, series_uid: str = "1.2.826.0.1.3680043.2.1125.1.1"
) -> Path:
    """One 3D volume as a DICOM series of 2D slices (position/orientation tags carry the geometry)."""
    folder.mkdir(parents=True, exist_ok=True)
    volume = image_of(frame.astype(np.int16), geometry)
    d = geometry.direction
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(volume.GetDepth()):
        slice_ = volume[:, :, k]
        slice_.SetMetaData("0008|0060", "MR")
        slice_.SetMetaData("0020|000d", series_uid + ".0")
        slice_.SetMetaData("0020|000e", series_uid)
        slice_.SetMetaData("0020|0037", "\\".join(f"{v:.10f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7])))
        slice_.SetMetaData("0020|0032", "\\".join(f"{v:.6f}" for v in volume.TransformIndexToPhysicalPoint((0, 0, k))))
        slice_.SetMetaData("0020|0013", str(k + 1))
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(slice_)
    return folder


def write_acdc_patient(
    root: Path,
    name: str,
    frames: Sequence[np.ndarray],
    ed: int,
    es: int,
    info_extra: str = "Group: NOR\nHeight: 184.0\nWeight: 95.0\n",
) -> Path:
    """`<root>/<name>/Info.cfg` + `<name>_4d.nii.gz`, as the ACDC archive lays them out."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\n{info_extra}NbFrame: {len(frames)}\n", encoding="utf-8")
    write_4d(folder / f"{name}_4d.nii.gz", frames, time_step=1.0)
    return folder


def assert_geometry_equal(actual: Geometry, expected: Geometry, tolerance: float = 1e-6) -> None:
    """Exact up to the precision of the file format (NIfTI stores float32)."""
    np.testing.assert_allclose(actual.spacing, expected.spacing, rtol=tolerance, atol=0)
    np.testing.assert_allclose(actual.origin, expected.origin, rtol=0, atol=tolerance * 100)
    np.testing.assert_allclose(actual.direction, expected.direction, rtol=0, atol=tolerance)
