"""A user saves generated volumes and sequences, then opens them in SADM again or in desktop Slicer
(through the slicer-core wheel's own storage nodes): same voxels, same place in the patient."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import vtk
from vtk.util import numpy_support

from sadm.errors import DataError
from sadm.io.images import read_volume
from sadm.io.readers import read_sequence
from sadm.io.sequence import Geometry
from sadm.io.writers import write_sequence, write_volume
from sadm_testing import OBLIQUE

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


SHAPE = (4, 5, 6)  # (k, j, i): three different sizes, so a transposed axis changes the shape


def frames_of(count: int, dtype=np.float32) -> list[np.ndarray]:
    """Frame t = ramp + 100·t: every voxel of every frame has its own value."""
    ramp = np.arange(np.prod(SHAPE)).reshape(SHAPE)
    return [(ramp + 100 * t).astype(dtype) for t in range(count)]


def expected_ijk_to_ras(geometry: Geometry) -> np.ndarray:
    """Slicer's IJK→RAS: LPS direction columns scaled by spacing, flipped to RAS; origin flipped too."""
    matrix = np.eye(4)
    matrix[:3, :3] = LPS_TO_RAS @ np.asarray(geometry.direction).reshape(3, 3) @ np.diag(geometry.spacing)
    matrix[:3, 3] = LPS_TO_RAS @ np.asarray(geometry.origin)
    return matrix


def ijk_to_ras_of(volume_node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def voxels_of(volume_node) -> np.ndarray:
    """The node's voxels as a (k, j, i) array, as slicer.util.arrayFromVolume gives them."""
    image = volume_node.GetImageData()
    columns, rows, depth = image.GetDimensions()
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(depth, rows, columns)


def load_in_slicer(path):
    """Read a .seq.nrrd the way desktop Slicer's Sequences module does."""
    scene = slicer.vtkMRMLScene()
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode")
    storage = slicer.vtkMRMLVolumeSequenceStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(sequence) == 1, f"Slicer could not read {path}"
    return sequence, scene


def header_fields(path) -> dict[str, str]:
    """NRRD header fields (`key: value` and `key:=value`) up to the blank line."""
    fields = {}
    with open(path, "rb") as handle:
        for raw in iter(handle.readline, b"\n"):
            line = raw.decode().rstrip("\n")
            if line.startswith("#") or line.startswith("NRRD"):
                continue
            key, _, value = line.partition(":=") if ":=" in line else line.partition(": ")
            fields[key] = value
    return fields


def no_temp_files_in(folder) -> bool:
    return not [p.name for p in folder.iterdir() if ".tmp" in p.name]


# --- write_volume ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["generated.nrrd", "generated.nii.gz", "generated.mha", "generated.nii"])
def test_a_generated_volume_reads_back_with_its_voxels_and_geometry(tmp_path, name):
    volume = frames_of(2)[1]

    path = write_volume(tmp_path / name, volume, OBLIQUE)

    read_back, geometry = read_volume(path)
    np.testing.assert_array_equal(read_back, volume)
    tolerance = 1e-6 if ".nii" in name else 1e-12  # NIfTI stores the affine in float32
    np.testing.assert_allclose(geometry.spacing, OBLIQUE.spacing, rtol=tolerance)
    np.testing.assert_allclose(geometry.origin, OBLIQUE.origin, atol=tolerance * 100)
    np.testing.assert_allclose(geometry.direction, OBLIQUE.direction, atol=tolerance * 10)
    assert no_temp_files_in(tmp_path)


def test_a_generated_nrrd_is_compressed_and_slicer_places_it_in_ras(tmp_path):
    volume = frames_of(1)[0]
    path = write_volume(tmp_path / "frame_01.nrrd", volume, OBLIQUE)

    assert header_fields(path)["encoding"] == "gzip"
    node = slicer.vtkMRMLScalarVolumeNode()
    scene = slicer.vtkMRMLScene()
    scene.AddNode(node)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1
    np.testing.assert_array_equal(voxels_of(node), volume)
    np.testing.assert_allclose(ijk_to_ras_of(node), expected_ijk_to_ras(OBLIQUE), atol=1e-9)


def test_boolean_masks_are_written_as_unsigned_bytes(tmp_path):
    mask = frames_of(1)[0] > 50

    read_back, _ = read_volume(write_volume(tmp_path / "mask.nrrd", mask, OBLIQUE))

    np.testing.assert_array_equal(read_back, mask.astype(np.float32))


def test_refuses_what_it_cannot_write_whole_and_says_what_to_use(tmp_path):
    with pytest.raises(DataError, match=r"volume\.nhdr.*use one of \.nii\.gz, \.nii, \.nrrd, \.mha"):
        write_volume(tmp_path / "volume.nhdr", frames_of(1)[0], OBLIQUE)
    with pytest.raises(DataError, match=r"shape \(2, 4, 5, 6\); expected a 3D"):
        write_volume(tmp_path / "volume.nrrd", np.stack(frames_of(2)), OBLIQUE)
    with pytest.raises(DataError, match="missing-folder does not exist; create it first"):
        write_volume(tmp_path / "missing-folder" / "volume.nrrd", frames_of(1)[0], OBLIQUE)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_interrupted_volume_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = write_volume(tmp_path / "frame_01.nrrd", frames_of(1)[0], OBLIQUE)
    before = path.read_bytes()

    def write_half_then_interrupt(image, filename, *args, **kwargs):
        with open(filename, "wb") as handle:
            handle.write(b"NRRD0004\ntype: float\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(sitk, "WriteImage", write_half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_volume(path, frames_of(2)[1], OBLIQUE)

    assert path.read_bytes() == before
    assert no_temp_files_in(tmp_path)


# --- write_sequence -------------------------------------------------------------------------------


def test_a_sequence_reads_back_through_sadm_with_frames_geometry_and_times(tmp_path):
    frames = frames_of(2, np.int16) + frames_of(3, np.float32)[2:]  # observed int16 + generated float32

    path = write_sequence(tmp_path / "cine.seq.nrrd", frames, OBLIQUE, times=[0.0, 40.0, 80.0], time_unit="ms")

    sequence = read_sequence(path)
    assert len(sequence) == 3
    for frame, expected in zip(sequence.frames, frames):
        np.testing.assert_array_equal(frame, expected.astype(np.float32))
    for geometry in sequence.geometries:
        np.testing.assert_allclose(geometry.spacing, OBLIQUE.spacing, rtol=1e-12)
        np.testing.assert_allclose(geometry.origin, OBLIQUE.origin, atol=1e-10)
        np.testing.assert_allclose(geometry.direction, OBLIQUE.direction, atol=1e-12)
    assert sequence.times == [0.0, 40.0, 80.0]
    assert sequence.metadata["reader"] == "seq.nrrd"
    assert (sequence.metadata["index_name"], sequence.metadata["index_unit"]) == ("time", "ms")
    assert header_fields(path)["type"] == "float"  # one voxel type: the common one


def test_slicer_loads_the_sequence_with_every_frame_in_place(tmp_path):
    frames = frames_of(4)
    path = write_sequence(tmp_path / "cine.seq.nrrd", frames, OBLIQUE, times=[0, 35.5, 71, 106.5], time_unit="ms")

    sequence, _scene = load_in_slicer(path)

    assert sequence.GetNumberOfDataNodes() == 4
    assert (sequence.GetIndexName(), sequence.GetIndexUnit()) == ("time", "ms")
    assert sequence.GetIndexType() == slicer.vtkMRMLSequenceNode.NumericIndex
    assert [sequence.GetNthIndexValue(n) for n in range(4)] == ["0", "35.5", "71", "106.5"]
    for index, expected in enumerate(frames):
        volume = sequence.GetNthDataNode(index)
        assert volume.IsA("vtkMRMLScalarVolumeNode")
        np.testing.assert_array_equal(voxels_of(volume), expected)
        np.testing.assert_allclose(volume.GetSpacing(), OBLIQUE.spacing, rtol=1e-12)
        np.testing.assert_allclose(volume.GetOrigin(), LPS_TO_RAS @ np.asarray(OBLIQUE.origin), atol=1e-10)
        np.testing.assert_allclose(ijk_to_ras_of(volume), expected_ijk_to_ras(OBLIQUE), atol=1e-10)


def test_the_file_has_the_fields_slicer_itself_writes(tmp_path):
    ours = write_sequence(tmp_path / "ours.seq.nrrd", frames_of(3), OBLIQUE, times=[0, 40, 80], time_unit="ms")
    sequence, scene = load_in_slicer(ours)
    storage = slicer.vtkMRMLVolumeSequenceStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(tmp_path / "slicer.seq.nrrd"))
    assert storage.WriteData(sequence) == 1

    theirs, mine = header_fields(tmp_path / "slicer.seq.nrrd"), header_fields(ours)

    assert set(mine) == set(theirs)
    for key in (
        "type",
        "dimension",
        "space",
        "sizes",
        "kinds",
        "labels",
        "units",
        "endian",
        "encoding",
        "DataNodeClassName",
        "axis 3 index type",
        "axis 3 index values",
    ):
        assert mine[key] == theirs[key], key
    for key in ("space directions", "space origin"):
        numbers = [[float(v) for v in part.strip("()").split(",")] for part in mine[key].split() if part != "none"]
        expected = [[float(v) for v in part.strip("()").split(",")] for part in theirs[key].split() if part != "none"]
        np.testing.assert_allclose(numbers, expected, atol=1e-12)


def test_without_times_the_index_is_the_frame_number(tmp_path):
    path = write_sequence(tmp_path / "frames.seq.nrrd", frames_of(3), [OBLIQUE] * 3)

    sequence, _scene = load_in_slicer(path)

    assert sequence.GetIndexName() == "frame"
    assert [sequence.GetNthIndexValue(n) for n in range(3)] == ["0", "1", "2"]
    assert read_sequence(path).times == [0.0, 1.0, 2.0]


def test_the_payload_is_gzip_of_the_frames_in_time_order(tmp_path):
    frames = frames_of(2)
    path = write_sequence(tmp_path / "raw.seq.nrrd", frames, OBLIQUE)

    payload = path.read_bytes().split(b"\n\n", 1)[1]

    data = np.frombuffer(gzip.decompress(payload), dtype="<f4").reshape(2, *SHAPE)
    np.testing.assert_array_equal(data, np.stack(frames))


def test_refuses_frames_that_do_not_share_one_grid(tmp_path):
    shifted = Geometry(OBLIQUE.spacing, (11.5, -20.25, 30.125), OBLIQUE.direction)
    with pytest.raises(DataError, match=r"frame 2 lies on another grid than frame 0.*align_frames_to_first"):
        write_sequence(tmp_path / "a.seq.nrrd", frames_of(3), [OBLIQUE, OBLIQUE, shifted])
    with pytest.raises(DataError, match=r"frame 1 has shape \(4, 5, 7\) but frame 0 has \(4, 5, 6\)"):
        write_sequence(tmp_path / "b.seq.nrrd", [frames_of(1)[0], np.zeros((4, 5, 7))], OBLIQUE)
    with pytest.raises(DataError, match="2 times for 3 frames"):
        write_sequence(tmp_path / "c.seq.nrrd", frames_of(3), OBLIQUE, times=[0, 1])
    with pytest.raises(DataError, match=r"must end in '\.seq\.nrrd'"):
        write_sequence(tmp_path / "d.nrrd", frames_of(3), OBLIQUE)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_sequence_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = write_sequence(tmp_path / "cine.seq.nrrd", frames_of(2), OBLIQUE)
    before = path.read_bytes()
    original_write = gzip.GzipFile.write
    calls = []

    def interrupt_on_second_frame(self, data):
        calls.append(len(data))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original_write(self, data)

    monkeypatch.setattr(gzip.GzipFile, "write", interrupt_on_second_frame)
    with pytest.raises(KeyboardInterrupt):
        write_sequence(path, frames_of(3), OBLIQUE)

    assert path.read_bytes() == before
    assert no_temp_files_in(tmp_path)
