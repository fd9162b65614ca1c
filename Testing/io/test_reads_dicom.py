"""A user's cine comes as DICOM: a folder holding one series with several temporal positions (the common
cine-MR export), or one multi-frame file (enhanced MR, an ultrasound cine). Each is read as a sequence
with its geometry and times; what cannot be read is refused saying why and what to do."""

from __future__ import annotations

import numpy as np
import pytest
from dicom_files import (
    COLUMN,
    NORMAL,
    ORIGIN,
    PIXEL_SPACING,
    ROW,
    SHAPE,
    SLICE_GAP,
    phase_volume,
    real_file,
    write_2d_cine,
    write_cine_series,
    write_enhanced_mr,
)

from sadm.errors import DataError
from sadm.io.readers import discover_sequences, read_input, read_sequence
from sadm.io.sequence import Geometry

EXPECTED = Geometry(
    spacing=(PIXEL_SPACING[1], PIXEL_SPACING[0], SLICE_GAP),
    origin=tuple(ORIGIN),
    direction=tuple(np.stack([ROW, COLUMN, NORMAL], axis=1).ravel()),
)


def assert_geometry(actual: Geometry, expected: Geometry = EXPECTED) -> None:
    np.testing.assert_allclose(actual.spacing, expected.spacing, atol=1e-5)
    np.testing.assert_allclose(actual.origin, expected.origin, atol=1e-4)
    np.testing.assert_allclose(actual.direction, expected.direction, atol=1e-6)


@pytest.mark.parametrize("tags", [("temporal", "trigger"), ("trigger",), ()], ids=["temporal", "trigger", "instance"])
def test_a_cine_series_folder_is_one_frame_per_temporal_position(tmp_path, tags):
    triggers = write_cine_series(tmp_path / "cine", phases=4, tags=tags)

    sequence = read_sequence(tmp_path / "cine")

    assert len(sequence) == 4 and sequence.subject == "cine"
    for phase, (frame, geometry) in enumerate(zip(sequence.frames, sequence.geometries)):
        assert frame.shape == SHAPE
        np.testing.assert_array_equal(frame, phase_volume(phase))
        assert_geometry(geometry)
    if "trigger" in tags:
        assert sequence.times == pytest.approx(triggers)
        assert sequence.metadata["index_unit"] == "ms"
    else:
        assert sequence.times is None  # ordered by InstanceNumber, no time to give


def test_a_single_slice_cine_series_is_a_sequence_of_one_slice_volumes(tmp_path):
    triggers = write_cine_series(tmp_path / "cine", phases=3, slices=1)

    sequence = read_sequence(tmp_path / "cine")

    assert len(sequence) == 3 and sequence.times == pytest.approx(triggers)
    for phase, (frame, geometry) in enumerate(zip(sequence.frames, sequence.geometries)):
        np.testing.assert_array_equal(frame, phase_volume(phase, (1, *SHAPE[1:])))
        assert_geometry(geometry)  # k along the slice normal, one slice thickness deep


def test_a_cine_series_is_discovered_watched_and_read_by_sadm_generate(tmp_path):
    write_cine_series(tmp_path / "cine", phases=3)

    (source,) = discover_sequences(tmp_path / "cine")

    assert source.layout == "dicom-cine"
    assert len(source.watched_files()) == 3 * SHAPE[0]
    assert len(read_input([tmp_path / "cine"])) == 3


def test_a_cine_folder_given_as_one_timepoint_of_a_list_is_refused(tmp_path):
    write_cine_series(tmp_path / "cine", phases=2)
    write_cine_series(tmp_path / "again", phases=2, series_uid="1.2.3.77")

    with pytest.raises(DataError, match=r"cine holds a cine series of 2 time points, not one 3D volume"):
        read_sequence([tmp_path / "cine", tmp_path / "again"])


def test_an_incomplete_cine_series_names_what_is_missing(tmp_path):
    write_cine_series(tmp_path / "cine", phases=3)
    sorted((tmp_path / "cine").iterdir())[0].unlink()

    with pytest.raises(DataError, match=r"different numbers of time points"):
        read_sequence(tmp_path / "cine")


def test_an_enhanced_mr_file_groups_its_frames_into_one_volume_per_time_point(tmp_path):
    delays = write_enhanced_mr(tmp_path / "enhanced.dcm", phases=3)

    sequence = read_sequence(tmp_path / "enhanced.dcm")

    assert len(sequence) == 3 and sequence.subject == "enhanced"
    assert sequence.times == pytest.approx(delays)
    for phase, (frame, geometry) in enumerate(zip(sequence.frames, sequence.geometries)):
        np.testing.assert_array_equal(frame, phase_volume(phase))
        assert_geometry(geometry)


def test_an_enhanced_mr_file_applies_its_rescale(tmp_path):
    write_enhanced_mr(tmp_path / "enhanced.dcm", phases=2, slope=2.0, intercept=-10.0)

    sequence = read_sequence(tmp_path / "enhanced.dcm")

    np.testing.assert_allclose(sequence.frames[1], 2.0 * phase_volume(1) - 10.0)


def test_a_2d_cine_file_is_a_sequence_of_one_slice_volumes(tmp_path):
    pixels = write_2d_cine(tmp_path / "echo.dcm", frames=5, frame_time_ms=33.3)

    sequence = read_sequence(tmp_path / "echo.dcm")

    assert len(sequence) == 5
    assert sequence.times == pytest.approx([0.0, 33.3, 66.6, 99.9, 133.2])
    for frame, expected in zip(sequence.frames, pixels):
        assert frame.shape == (1, *SHAPE[1:])
        np.testing.assert_array_equal(frame[0], expected)
    assert sequence.geometries[0].spacing == pytest.approx((0.2, 0.3, 1.0))  # the region's 0.02 / 0.03 cm


def test_a_folder_of_multi_frame_files_is_one_sequence_each(tmp_path):
    write_enhanced_mr(tmp_path / "a.dcm", phases=2)
    write_2d_cine(tmp_path / "b.dcm", frames=3)

    sources = discover_sequences(tmp_path)

    assert [(s.subject, s.layout, len(s.read())) for s in sources] == [
        ("a", "dicom-multiframe", 2),
        ("b", "dicom-multiframe", 3),
    ]


def test_a_real_colour_ultrasound_cine_is_refused_saying_what_to_do():
    path = real_file("examples_ybr_color.dcm")  # 30 frames, YBR_FULL_422, JPEG

    with pytest.raises(DataError, match=r"is a colour \(YBR_FULL_422\) US cine of 30 frames; SADM reads greyscale"):
        read_sequence(path)


def test_a_real_ultrasound_cine_made_greyscale_keeps_its_times_and_spacing(tmp_path):
    """pydicom's real ultrasound cine, its luminance written back as MONOCHROME2 with every other tag kept."""
    import pydicom
    from pydicom.pixels import convert_color_space
    from pydicom.uid import ExplicitVRLittleEndian

    ds = pydicom.dcmread(real_file("examples_ybr_color.dcm"))
    luminance = convert_color_space(ds.pixel_array, "YBR_FULL_422", "YBR_FULL")[..., 0]
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored, ds.HighBit = (
        1,
        "MONOCHROME2",
        8,
        8,
        7,
    )
    del ds.PlanarConfiguration
    ds.PixelData = np.ascontiguousarray(luminance, dtype=np.uint8).tobytes()
    ds.save_as(tmp_path / "grey.dcm", enforce_file_format=True)

    sequence = read_sequence(tmp_path / "grey.dcm")

    assert len(sequence) == 30 and sequence.frames[0].shape == (1, 240, 320)
    assert sequence.times[:3] == pytest.approx([0.0, 33.333, 66.666])
    assert sequence.geometries[0].spacing[:2] == pytest.approx((0.5104970559, 0.5104970559))
    np.testing.assert_array_equal(sequence.frames[7][0], luminance[7])


def test_a_real_multi_frame_dose_grid_is_refused_as_not_a_cine():
    with pytest.raises(DataError, match=r"ordered by GridFrameOffsetVector, so they are slices of one volume"):
        read_sequence(real_file("rtdose.dcm"))


def test_a_real_single_frame_file_points_to_its_series_folder():
    with pytest.raises(DataError, match=r"MR_small.dcm is a single-frame DICOM file \(one 2D slice\)"):
        read_sequence(real_file("MR_small.dcm"))


def test_nifti_and_dicom_folders_are_read_without_pydicom(tmp_path):
    """pydicom is an optional extra: only multi-frame files need it."""
    import subprocess
    import sys

    write_cine_series(tmp_path / "cine", phases=2)
    code = (
        "import sys\n"
        "class NoPydicom:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'pydicom':\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, NoPydicom())\n"
        "import numpy as np, SimpleITK as sitk\n"
        "from sadm.io.readers import read_sequence\n"
        f"path = {str(tmp_path / 'cine.nii.gz')!r}\n"
        "sitk.WriteImage(sitk.JoinSeries([sitk.Image([4, 3, 2], sitk.sitkInt16)] * 2), path)\n"
        "assert len(read_sequence(path)) == 2\n"
        f"assert len(read_sequence({str(tmp_path / 'cine')!r})) == 2\n"
        "assert 'pydicom' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_multi_frame_file_without_pydicom_says_how_to_install_it(tmp_path, monkeypatch):
    import sys

    write_2d_cine(tmp_path / "echo.dcm")
    monkeypatch.setitem(sys.modules, "pydicom", None)  # `import pydicom` raises ImportError

    with pytest.raises(DataError, match=r"needs pydicom; install it with `pip install 'sadm\[dicom\]'`"):
        read_sequence(tmp_path / "echo.dcm")
