"""A user has one 3D scan per timepoint (NIfTI, NRRD, MHA files or DICOM folders), listed in order or in a CSV."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from sequence_files import OBLIQUE, SHAPE, assert_geometry_equal, image_of, make_frames, write_dicom_series

from sadm.io.readers import discover_sequences, read_sequence


def test_reads_an_ordered_list_of_3d_files_of_mixed_formats(tmp_path):
    frames = make_frames(3)
    paths = []
    for frame, suffix in zip(frames, [".nii.gz", ".nrrd", ".mha"]):
        paths.append(tmp_path / f"scan{len(paths)}{suffix}")
        sitk.WriteImage(image_of(frame), str(paths[-1]))

    sequence = read_sequence(paths)

    assert len(sequence) == 3 and sequence.times is None
    assert sequence.sources == [str(p) for p in paths]
    for frame, expected, geometry in zip(sequence.frames, frames, sequence.geometries):
        assert frame.dtype == np.float32 and frame.shape == SHAPE
        np.testing.assert_array_equal(frame, expected)
        assert_geometry_equal(geometry, OBLIQUE)


def test_reads_dicom_series_folders_as_frames_with_their_oblique_geometry(tmp_path):
    frames = make_frames(2)
    folders = [
        write_dicom_series(tmp_path / f"t{t}", frame, series_uid=f"1.2.3.4.{t}") for t, frame in enumerate(frames)
    ]

    sequence = read_sequence(folders)

    assert len(sequence) == 2
    for frame, expected, geometry in zip(sequence.frames, frames, sequence.geometries):
        np.testing.assert_array_equal(frame, expected)
        assert_geometry_equal(geometry, OBLIQUE, tolerance=1e-5)  # DICOM stores positions as decimal strings


def test_reads_a_csv_manifest_as_one_sequence_per_subject_in_timepoint_order(tmp_path):
    frames = make_frames(3)
    (tmp_path / "scans").mkdir()
    for t, frame in enumerate(frames):
        sitk.WriteImage(image_of(frame), str(tmp_path / "scans" / f"anna_{t}.nrrd"))
        sitk.WriteImage(image_of(frame + 7), str(tmp_path / "scans" / f"ben_{t}.nii.gz"))
    absolute = tmp_path / "scans" / "ben_2.nii.gz"
    (tmp_path / "manifest.csv").write_text(
        "subject,timepoint,path,time\n"
        f"ben,3,{absolute},71.5\n"  # absolute path, rows out of order
        "anna,2,scans/anna_1.nrrd,\n"
        "ben,1,scans/ben_0.nii.gz,70\n"
        "anna,1,scans/anna_0.nrrd,\n"
        "anna,5,scans/anna_2.nrrd,\n"
        "ben,2,scans/ben_1.nii.gz,70.25\n"
    )

    sources = discover_sequences(tmp_path / "manifest.csv")

    assert [s.subject for s in sources] == ["ben", "anna"]
    ben, anna = (source.read() for source in sources)
    assert ben.times == [70.0, 70.25, 71.5]
    assert anna.times is None
    for t in range(3):
        np.testing.assert_array_equal(anna.frames[t], frames[t])
        np.testing.assert_array_equal(ben.frames[t], frames[t] + 7)
        assert_geometry_equal(ben.geometries[t], OBLIQUE)
    assert ben.sources[2] == str(absolute)


def test_reads_a_one_subject_manifest_through_read_sequence(tmp_path):
    for t, frame in enumerate(make_frames(2)):
        sitk.WriteImage(image_of(frame), str(tmp_path / f"{t}.mha"))
    (tmp_path / "one.csv").write_text("subject,timepoint,path,site\ncarl,0,0.mha,A\ncarl,1,1.mha,A\n", encoding="utf-8")

    sequence = read_sequence(tmp_path / "one.csv")

    assert sequence.subject == "carl" and len(sequence) == 2


def test_manifest_rows_may_name_dicom_folders(tmp_path):
    for t, frame in enumerate(make_frames(2)):
        write_dicom_series(tmp_path / "dicom" / f"visit{t}", frame, series_uid=f"1.2.3.9.{t}")
    (tmp_path / "m.csv").write_text(
        "subject,timepoint,path\ndora,0,dicom/visit0\ndora,1,dicom/visit1\n", encoding="utf-8"
    )

    (source,) = discover_sequences(tmp_path / "m.csv")

    assert len(source.watched_files()) == 2 * SHAPE[0]  # every slice file is watched for changes
    np.testing.assert_array_equal(source.read().frames[1], make_frames(2)[1])


@pytest.mark.parametrize("timepoints", [("0", "1"), ("1.5", "2.5")])
def test_timepoints_may_be_integers_or_decimals(tmp_path, timepoints):
    for t, frame in enumerate(make_frames(2)):
        sitk.WriteImage(image_of(frame), str(tmp_path / f"{t}.nrrd"))
    (tmp_path / "m.csv").write_text(
        f"subject,timepoint,path\ne,{timepoints[1]},1.nrrd\ne,{timepoints[0]},0.nrrd\n", encoding="utf-8"
    )

    sequence = read_sequence(tmp_path / "m.csv")

    np.testing.assert_array_equal(sequence.frames[0], make_frames(2)[0])
