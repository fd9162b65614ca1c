"""A user points SADM at one file holding a whole sequence: a 4D NIfTI / NRRD / MHA, or a Slicer .seq.nrrd."""

from __future__ import annotations

import numpy as np
import pytest
from sequence_files import OBLIQUE, SHAPE, assert_geometry_equal, write_4d, write_slicer_sequence, write_vector_nrrd

from sadm.io.four_d import read_4d_image
from sadm.io.readers import read_sequence


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_reads_every_frame_of_a_4d_image_with_its_oblique_geometry(tmp_path, frames5, suffix):
    path = write_4d(tmp_path / f"cine{suffix}", frames5, time_step=40.0, time_origin=10.0)

    sequence = read_sequence(path)

    assert len(sequence) == 5
    assert sequence.subject == "cine"
    for frame, expected in zip(sequence.frames, frames5):
        assert frame.dtype == np.float32 and frame.shape == SHAPE
        np.testing.assert_array_equal(frame, expected)
    for geometry in sequence.geometries:
        assert_geometry_equal(geometry, OBLIQUE)
    assert sequence.times == pytest.approx([10.0, 50.0, 90.0, 130.0, 170.0])
    assert sequence.sources == [str(path)] * 5


def test_reads_a_4d_nrrd_that_simpleitk_sees_as_a_vector_image(tmp_path, frames5):
    path = write_vector_nrrd(tmp_path / "vector.nrrd", frames5)

    sequence = read_4d_image(path)

    assert len(sequence) == 5
    for frame, expected in zip(sequence.frames, frames5):
        np.testing.assert_array_equal(frame, expected)
    assert_geometry_equal(sequence.geometries[3], OBLIQUE, tolerance=1e-12)
    assert sequence.times is None  # a plain vector NRRD declares no times


def test_reads_a_sequence_file_written_by_slicer(tmp_path, frames5):
    path = write_slicer_sequence(tmp_path / "cine.seq.nrrd", frames5)
    header = path.read_bytes()[:1000].decode("latin-1")
    assert "kinds: domain domain domain list" in header and "axis 3 index values:=0 40 80 120 160" in header

    sequence = read_sequence(path)

    assert sequence.subject == "cine"
    assert len(sequence) == 5
    for frame, expected in zip(sequence.frames, frames5):
        np.testing.assert_array_equal(frame, expected)
    for geometry in sequence.geometries:  # Slicer stores RAS; the reader gives LPS like every other reader
        assert_geometry_equal(geometry, OBLIQUE, tolerance=1e-9)
    assert sequence.times == [0.0, 40.0, 80.0, 120.0, 160.0]
    assert sequence.metadata["index_name"] == "time" and sequence.metadata["index_unit"] == "ms"


def test_keeps_text_index_values_of_a_slicer_sequence_without_inventing_times(tmp_path, frames5):
    path = write_slicer_sequence(tmp_path / "named.seq.nrrd", frames5[:3], index_values=["baseline", "month6", "year1"])
    assert "axis 3 index type:=text" in path.read_bytes()[:1000].decode("latin-1")

    sequence = read_sequence(path)

    assert sequence.times is None
    assert sequence.metadata["index_values"] == ["baseline", "month6", "year1"]
    np.testing.assert_array_equal(sequence.frames[2], frames5[2])


def test_reads_the_older_slicer_layout_with_the_list_axis_first(tmp_path, frames5):
    """Slicer ≤ 5.8 wrote `kinds: list domain domain domain` and `axis 0 index values`."""
    frames = [f.astype(np.float32) for f in frames5[:3]]
    d = np.asarray(OBLIQUE.direction).reshape(3, 3) * np.asarray(OBLIQUE.spacing)  # columns = axis vectors
    vectors = " ".join("(" + ",".join(repr(float(v)) for v in d[:, a]) + ")" for a in range(3))
    header = (
        "NRRD0004\ntype: float\ndimension: 4\nspace: left-posterior-superior\n"
        f"sizes: 3 {SHAPE[2]} {SHAPE[1]} {SHAPE[0]}\nspace directions: none {vectors}\n"
        'kinds: list domain domain domain\nlabels: "time" "" "" ""\nendian: little\nencoding: raw\n'
        f"space origin: ({','.join(repr(v) for v in OBLIQUE.origin)})\n"
        "axis 0 index type:=numeric\naxis 0 index values:=0.5 1.5 2.5\n\n"
    )
    voxels = np.stack(frames, axis=-1).astype("<f4").tobytes()  # list axis fastest
    path = tmp_path / "old.seq.nrrd"
    path.write_bytes(header.encode("ascii") + voxels)

    sequence = read_sequence(path)

    assert sequence.times == [0.5, 1.5, 2.5]
    for frame, expected in zip(sequence.frames, frames):
        np.testing.assert_array_equal(frame, expected)
    assert_geometry_equal(sequence.geometries[0], OBLIQUE, tolerance=1e-12)
