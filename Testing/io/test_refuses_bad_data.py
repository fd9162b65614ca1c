"""Bad data is refused with a message naming the file and saying what was expected; nothing is modified."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from sequence_files import (
    image_of,
    make_frames,
    write_4d,
    write_acdc_patient,
    write_dicom_series,
    write_slicer_sequence,
)

from sadm.errors import DataError, SADMError
from sadm.io.acdc import read_acdc_patient
from sadm.io.readers import discover_sequences, read_sequence
from sadm.training.dataset import load_training_data


def test_data_errors_are_sadm_errors_and_value_errors():
    assert issubclass(DataError, SADMError) and issubclass(DataError, ValueError)


# --- unreadable and truncated files -------------------------------------------------------------


def test_refuses_a_file_that_is_not_an_image(tmp_path):
    path = tmp_path / "notes.nrrd"
    path.write_text("hello, I am not a NRRD", encoding="utf-8")

    with pytest.raises(DataError, match=r"cannot read .*notes.nrrd as an image .* expected a NIfTI, NRRD or MetaImage"):
        read_sequence(path)


def test_refuses_a_nifti_file_that_is_not_gzip_despite_its_name(tmp_path):
    path = tmp_path / "cine.nii.gz"
    path.write_bytes(b"not gzip at all")

    with pytest.raises(DataError, match=r"cine.nii.gz is not a complete NIfTI file \(Not a gzipped file"):
        read_sequence(path)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_refuses_a_truncated_nifti_that_simpleitk_would_fill_with_zeros(tmp_path, suffix):
    path = write_4d(tmp_path / f"cine{suffix}", make_frames(5, dtype=np.float32))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.8)])
    before = path.read_bytes()

    with pytest.raises(DataError, match=rf"cine{suffix.replace('.', '[.]')}"):
        read_sequence(path)

    assert path.read_bytes() == before


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_refuses_a_truncated_nrrd_or_metaimage(tmp_path, suffix):
    path = write_4d(tmp_path / f"cine{suffix}", make_frames(5, dtype=np.float32))
    path.write_bytes(path.read_bytes()[:-200])

    with pytest.raises(DataError, match=rf"cannot read .*cine\{suffix} as an image"):
        read_sequence(path)


def test_refuses_a_truncated_slicer_sequence(tmp_path):
    path = write_slicer_sequence(tmp_path / "cine.seq.nrrd", make_frames(3))
    path.write_bytes(path.read_bytes()[:-100])

    with pytest.raises(DataError, match=r"cine.seq.nrrd"):
        read_sequence(path)


def test_refuses_a_path_that_does_not_exist(tmp_path):
    with pytest.raises(DataError, match=r"missing.nii.gz does not exist; expected an ACDC root"):
        discover_sequences(tmp_path / "missing.nii.gz")


# --- wrong dimensionality ----------------------------------------------------------------------


def test_refuses_a_3d_file_where_a_4d_sequence_is_expected(tmp_path):
    path = tmp_path / "scan.nii.gz"
    sitk.WriteImage(image_of(make_frames(1)[0]), str(path))

    with pytest.raises(
        DataError, match=r"scan.nii.gz is a 3D image of size \(6, 5, 4\); expected a 4D image with time as the 4th axis"
    ):
        read_sequence(path)


def test_refuses_a_3d_file_among_the_4d_files_of_a_data_folder(tmp_path):
    write_4d(tmp_path / "a.nii.gz", make_frames(3))
    sitk.WriteImage(image_of(make_frames(1)[0]), str(tmp_path / "mask.nrrd"))

    with pytest.raises(DataError, match=r"mask.nrrd is a 3D image"):
        load_training_data(tmp_path, tmp_path / "cache", grid=(2, 2, 2))


def test_refuses_a_4d_file_in_a_list_of_3d_frames(tmp_path):
    sitk.WriteImage(image_of(make_frames(1)[0]), str(tmp_path / "t0.nrrd"))
    write_4d(tmp_path / "t1.nii.gz", make_frames(2))

    with pytest.raises(DataError, match=r"t1.nii.gz is a 4D image .*; expected one 3D scalar volume per timepoint"):
        read_sequence([tmp_path / "t0.nrrd", tmp_path / "t1.nii.gz"])


def test_refuses_a_colour_image_whose_components_are_not_frames(tmp_path):
    path = tmp_path / "photo.nrrd"
    sitk.WriteImage(sitk.Image([6, 5, 4], sitk.sitkVectorUInt8, 3), str(path))
    header_and_voxels = path.read_bytes()
    assert b"kinds: vector domain domain domain" in header_and_voxels
    path.write_bytes(header_and_voxels.replace(b"kinds: vector", b"kinds: RGB-color", 1))  # as colour exporters write

    with pytest.raises(DataError, match=r"photo.nrrd .* of NRRD kind 'RGB-color' \(the components form one value"):
        read_sequence(path)


# --- too few frames ----------------------------------------------------------------------------


def test_refuses_a_4d_file_of_one_frame(tmp_path):
    path = write_4d(tmp_path / "single.nii.gz", make_frames(1))

    with pytest.raises(
        DataError, match=r"single.nii.gz is a sequence of 1 frame; a longitudinal sequence needs at least 2"
    ):
        read_sequence(path)


def test_refuses_a_slicer_sequence_of_one_frame(tmp_path):
    path = write_slicer_sequence(tmp_path / "single.seq.nrrd", make_frames(1))

    with pytest.raises(DataError, match=r"single.seq.nrrd is a sequence of 1 frame"):
        read_sequence(path)


def test_refuses_a_manifest_subject_with_one_scan(tmp_path):
    sitk.WriteImage(image_of(make_frames(1)[0]), str(tmp_path / "0.nrrd"))
    (tmp_path / "m.csv").write_text("subject,timepoint,path\nlonely,0,0.nrrd\n", encoding="utf-8")

    with pytest.raises(DataError, match=r"subject 'lonely' holds 1 frame"):
        read_sequence(tmp_path / "m.csv")


# --- ACDC --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ed, es, message",
    [
        (1, 9, r"ED 1 / ES 9 lie outside frames 1..6 of patient001_4d.nii.gz"),
        (0, 3, r"ED 0 / ES 3 lie outside frames 1..6"),
        (4, 2, r"ES 2 is not after ED 4"),
        (3, 3, r"ES 3 is not after ED 3"),
    ],
)
def test_refuses_ed_es_outside_the_cine_or_in_the_wrong_order(tmp_path, ed, es, message):
    folder = write_acdc_patient(tmp_path, "patient001", make_frames(6), ed=ed, es=es)

    with pytest.raises(DataError, match=r"patient001/Info.cfg: " + message):
        read_acdc_patient(folder)


def test_refuses_an_info_cfg_without_es(tmp_path):
    folder = write_acdc_patient(tmp_path, "patient001", make_frames(3), ed=1, es=2)
    (folder / "Info.cfg").write_text("ED: 1\nGroup: NOR\n", encoding="utf-8")

    with pytest.raises(DataError, match=r"Info.cfg has no ES line; expected e.g. 'ED: 1' and 'ES: 12'"):
        read_acdc_patient(folder)


def test_refuses_a_non_numeric_frame_number(tmp_path):
    folder = write_acdc_patient(tmp_path, "patient001", make_frames(3), ed=1, es=2)
    (folder / "Info.cfg").write_text("ED: first\nES: 2\n", encoding="utf-8")

    with pytest.raises(DataError, match=r"'ED: first' is not a number"):
        read_acdc_patient(folder)


def test_refuses_an_acdc_patient_without_its_cine(tmp_path):
    folder = write_acdc_patient(tmp_path, "patient001", make_frames(3), ed=1, es=2)
    (folder / "patient001_4d.nii.gz").unlink()

    with pytest.raises(DataError, match=r"patient001 has no patient001_4d.nii.gz"):
        discover_sequences(tmp_path)[0].read()


# --- voxels ------------------------------------------------------------------------------------


def test_refuses_nan_voxels_in_a_4d_file(tmp_path):
    frames = make_frames(3, dtype=np.float32)
    frames[2][1, 2, 3] = np.nan
    path = write_4d(tmp_path / "nan.nii.gz", frames)

    with pytest.raises(DataError, match=r"nan.nii.gz holds 1 NaN/Inf voxels \(the first in frame 2\)"):
        read_sequence(path)


def test_refuses_nan_voxels_in_a_4d_nrrd_naming_the_frame(tmp_path):
    frames = make_frames(3, dtype=np.float32)
    frames[1][0, 0, 0] = np.nan
    path = write_4d(tmp_path / "nan.nrrd", frames)

    with pytest.raises(DataError, match=r"frame 1 of .*nan.nrrd \(.*\) holds 1 NaN/Inf voxels"):
        read_sequence(path)


def test_refuses_inf_voxels_in_a_3d_nifti_frame_that_simpleitk_would_zero(tmp_path):
    frames = make_frames(2, dtype=np.float32)
    frames[0][3, 4, 5] = -np.inf
    paths = [tmp_path / f"{t}.nii" for t in range(2)]
    for frame, path in zip(frames, paths):
        sitk.WriteImage(image_of(frame), str(path))

    with pytest.raises(DataError, match=r"0.nii holds 1 NaN/Inf voxels"):
        read_sequence(paths)


def test_refuses_inf_voxels_in_a_3d_frame(tmp_path):
    frames = make_frames(2, dtype=np.float32)
    frames[1][0, 0, :2] = np.inf
    paths = [tmp_path / f"{t}.mha" for t in range(2)]
    for frame, path in zip(frames, paths):
        sitk.WriteImage(image_of(frame), str(path))

    with pytest.raises(DataError, match=r"1.mha holds 2 NaN/Inf voxels"):
        read_sequence(paths)


# --- folders -----------------------------------------------------------------------------------


def test_refuses_an_empty_data_folder(tmp_path):
    (tmp_path / "data").mkdir()

    with pytest.raises(
        DataError, match=r"found no sequences under .*data; expected an ACDC root \(patientNNN/Info.cfg folders\)"
    ):
        load_training_data(tmp_path / "data", tmp_path / "cache", grid=(2, 2, 2))

    assert not (tmp_path / "cache").exists()


def test_refuses_a_folder_holding_two_dicom_series(tmp_path):
    write_dicom_series(tmp_path / "mixed", make_frames(1)[0], series_uid="1.2.3.1")
    write_dicom_series(tmp_path / "other", make_frames(1)[0], series_uid="1.2.3.2")
    for path in (tmp_path / "other").iterdir():
        path.rename(tmp_path / "mixed" / f"other_{path.name}")

    with pytest.raises(DataError, match=r"mixed holds 2 DICOM series \(1.2.3.1, 1.2.3.2\)"):
        read_sequence([tmp_path / "mixed", tmp_path / "mixed"])


def test_refuses_a_frame_folder_without_dicom_files(tmp_path):
    (tmp_path / "empty").mkdir()
    sitk.WriteImage(image_of(make_frames(1)[0]), str(tmp_path / "0.nrrd"))

    with pytest.raises(DataError, match=r"empty is a folder without DICOM files"):
        read_sequence([tmp_path / "0.nrrd", tmp_path / "empty"])


# --- CSV manifests -----------------------------------------------------------------------------


def write_scans(folder, count=2):
    for t, frame in enumerate(make_frames(count)):
        sitk.WriteImage(image_of(frame), str(folder / f"{t}.nrrd"))


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "subject,path\na,0.nrrd\n",
            r"m.csv lacks column\(s\) timepoint \(it has: subject, path\); expected a header 'subject,timepoint,path\[,time\]'",
        ),
        ("", r"m.csv lacks column\(s\) subject, timepoint, path \(it has: no header\)"),
        ("subject,timepoint,path\n", r"m.csv has a header but no rows"),
        ("subject,timepoint,path\na,zero,0.nrrd\na,1,1.nrrd\n", r"m.csv line 2: timepoint 'zero' is not a number"),
        ("subject,timepoint,path\na,0,0.nrrd\na,0,1.nrrd\n", r"lines 2 and 3: subject 'a' has timepoint 0 twice"),
        ("subject,timepoint,path\n,0,0.nrrd\n", r"m.csv line 2: empty subject"),
        (
            "subject,timepoint,path,time\na,0,0.nrrd,60\na,1,1.nrrd,\n",
            r"subject 'a' has a time on some rows but not on line\(s\) 3",
        ),
        (
            "subject,timepoint,path,time\na,0,0.nrrd,60\na,1,1.nrrd,59\n",
            r"subject 'a' has times \['60', '59'\] that do not increase",
        ),
    ],
)
def test_refuses_a_malformed_manifest(tmp_path, text, message):
    write_scans(tmp_path)
    (tmp_path / "m.csv").write_text(text, encoding="utf-8")

    with pytest.raises(DataError, match=message):
        discover_sequences(tmp_path / "m.csv")


def test_refuses_a_manifest_naming_missing_files_and_lists_them(tmp_path):
    write_scans(tmp_path)
    (tmp_path / "m.csv").write_text(
        "subject,timepoint,path\na,0,0.nrrd\na,1,gone.nrrd\nb,0,also_gone.nii.gz\nb,1,1.nrrd\n", encoding="utf-8"
    )

    with pytest.raises(
        DataError, match=r"m.csv names 2 file\(s\) that do not exist: line 3: .*gone.nrrd; line 4: .*also_gone.nii.gz"
    ):
        discover_sequences(tmp_path / "m.csv")


def test_refuses_a_data_file_of_unknown_kind(tmp_path):
    (tmp_path / "data.json").write_text("{}", encoding="utf-8")

    with pytest.raises(DataError, match=r"data.json is neither a CSV manifest nor an image file"):
        discover_sequences(tmp_path / "data.json")
