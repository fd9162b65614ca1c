"""A user points SADM at the ACDC archive, or at a folder of 4D files, and every sequence is found."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from sequence_files import (
    OBLIQUE,
    assert_geometry_equal,
    image_of,
    make_frames,
    write_4d,
    write_acdc_patient,
    write_slicer_sequence,
)

from sadm.io.acdc import list_acdc_patients, read_acdc_info, read_acdc_patient
from sadm.io.readers import ACDC, FOUR_D, discover_sequences, read_sequence


def test_reads_acdc_frames_from_ed_to_es(tmp_path):
    cycle = make_frames(8)
    folder = write_acdc_patient(tmp_path, "patient007", cycle, ed=2, es=6)

    sequence = read_acdc_patient(folder)

    assert sequence.subject == "patient007"
    assert len(sequence) == 5  # frames 2..6 inclusive, 1-based
    for frame, expected in zip(sequence.frames, cycle[1:6]):
        np.testing.assert_array_equal(frame, expected)
    assert_geometry_equal(sequence.geometries[0], OBLIQUE)
    assert sequence.times is None  # positions are frame order, as in the paper
    assert sequence.metadata["ed"] == 2 and sequence.metadata["es"] == 6
    assert sequence.metadata["group"] == "NOR" and sequence.metadata["cine_frame_count"] == 8


def test_parses_every_info_cfg_field(tmp_path):
    (tmp_path / "Info.cfg").write_text(
        "ED: 1\nES: 12\nGroup: DCM\nHeight: 184.0\nNbFrame: 30\nWeight: 95.0\n", encoding="utf-8"
    )

    info = read_acdc_info(tmp_path / "Info.cfg")

    assert (info.ed, info.es, info.group, info.height_cm, info.weight_kg, info.frame_count) == (
        1,
        12,
        "DCM",
        184.0,
        95.0,
        30,
    )


def test_warns_when_nbframe_disagrees_with_the_cine(tmp_path):
    folder = write_acdc_patient(tmp_path, "patient001", make_frames(4), ed=1, es=3)
    (folder / "Info.cfg").write_text("ED: 1\nES: 3\nNbFrame: 30\n", encoding="utf-8")

    with pytest.warns(UserWarning, match="NbFrame: 30 but patient001_4d.nii.gz holds 4 frames"):
        read_acdc_patient(folder)


def test_lists_acdc_patients_and_discovers_one_sequence_each(tmp_path):
    for number in (3, 1, 2):
        write_acdc_patient(tmp_path, f"patient{number:03d}", make_frames(4), ed=1, es=3)
    (tmp_path / "notes").mkdir()  # a folder without Info.cfg is not a patient

    patients = list_acdc_patients(tmp_path)
    sources = discover_sequences(tmp_path)

    assert [p.name for p in patients] == ["patient001", "patient002", "patient003"]
    assert [(s.subject, s.layout) for s in sources] == [(f"patient00{n}", ACDC) for n in (1, 2, 3)]
    assert [f.name for f in sources[0].watched_files()] == ["Info.cfg", "patient001_4d.nii.gz"]
    assert len(sources[2].read()) == 3


def test_read_sequence_accepts_an_acdc_patient_folder(tmp_path):
    folder = write_acdc_patient(tmp_path, "patient042", make_frames(3), ed=1, es=3)

    assert read_sequence(folder).subject == "patient042"
    assert [s.subject for s in discover_sequences(folder)] == ["patient042"]


def test_discovers_every_4d_file_and_slicer_sequence_in_a_folder(tmp_path, frames5):
    write_4d(tmp_path / "a.nii.gz", frames5)
    write_slicer_sequence(tmp_path / "b.seq.nrrd", frames5[:2])
    write_4d(tmp_path / "c.mha", frames5[:3])
    (tmp_path / "README.txt").write_text("not an image", encoding="utf-8")

    sources = discover_sequences(tmp_path)

    assert [(s.subject, s.layout) for s in sources] == [("a", FOUR_D), ("b", FOUR_D), ("c", FOUR_D)]
    assert [len(s.read()) for s in sources] == [5, 2, 3]


def test_discovers_a_single_4d_file(tmp_path, frames5):
    path = write_4d(tmp_path / "only.nrrd", frames5)

    (source,) = discover_sequences(path)

    assert source.subject == "only" and source.watched_files() == [path]


def test_refuses_two_files_that_would_give_one_subject(tmp_path, frames5):
    write_4d(tmp_path / "same.nii.gz", frames5)
    write_4d(tmp_path / "same.nrrd", frames5)

    with pytest.raises(ValueError, match="both give subject 'same'"):
        discover_sequences(tmp_path)


def test_read_sequence_refuses_a_folder_of_many_sequences_and_points_to_discovery(tmp_path, frames5):
    write_4d(tmp_path / "a.nii.gz", frames5)
    write_4d(tmp_path / "b.nii.gz", frames5)

    with pytest.raises(ValueError, match="discover_sequences"):
        read_sequence(tmp_path)


def test_read_sequence_refuses_a_single_dicom_folder_as_a_sequence(tmp_path):
    from sequence_files import write_dicom_series

    folder = write_dicom_series(tmp_path / "series", make_frames(1)[0])

    with pytest.raises(ValueError, match="single 3D volume"):
        read_sequence(folder)


def test_read_sequence_refuses_a_manifest_of_several_subjects(tmp_path):
    for name in ("x", "y"):
        for t in range(2):
            sitk.WriteImage(image_of(make_frames(1)[0]), str(tmp_path / f"{name}{t}.nrrd"))
    (tmp_path / "m.csv").write_text(
        "subject,timepoint,path\nx,0,x0.nrrd\nx,1,x1.nrrd\ny,0,y0.nrrd\ny,1,y1.nrrd\n", encoding="utf-8"
    )

    with pytest.raises(ValueError, match="holds 2 sequences"):
        read_sequence(tmp_path / "m.csv")
