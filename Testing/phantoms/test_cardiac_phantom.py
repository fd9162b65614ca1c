"""The synthetic beating heart: physiology that holds up to measurement, and ACDC files that read
back like the real data set."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from sadm.phantoms import CardiacOptions, cardiac_subject, contraction_curve, make_synthetic
from sadm.phantoms.cardiac import LV_LABEL, MYO_LABEL, RV_LABEL

# a coarse grid over the same field of view as the default: fast, still the whole chest
SMALL = dict(shape=(8, 64, 64), pixel_mm=3.0, frames=(10, 12), sub_slices=3)


@pytest.fixture(scope="module")
def phantom():
    return cardiac_subject(seed=3, index=0, options=CardiacOptions(**SMALL))


def test_same_seed_and_index_give_byte_identical_subjects():
    first = cardiac_subject(7, 2, CardiacOptions(**SMALL))
    again = cardiac_subject(7, 2, CardiacOptions(**SMALL))
    other = cardiac_subject(8, 2, CardiacOptions(**SMALL))
    assert first.frames.tobytes() == again.frames.tobytes()
    assert first.labels.tobytes() == again.labels.tobytes()
    assert first.frames.shape != other.frames.shape or not np.array_equal(first.frames, other.frames)


def test_frames_are_int16_mr_magnitudes_with_acdc_labels(phantom):
    assert phantom.frames.dtype == np.int16 and phantom.labels.dtype == np.uint8
    assert phantom.frames.shape == (phantom.subject.n_frames, 8, 64, 64)
    assert phantom.frames.min() >= 0 and 100 < phantom.frames.max() < 2000
    assert set(np.unique(phantom.labels)) == {0, RV_LABEL, MYO_LABEL, LV_LABEL}
    ed, labels = phantom.frames[0].astype(float), phantom.labels[0]
    blood, muscle = ed[labels == LV_LABEL].mean(), ed[labels == MYO_LABEL].mean()
    assert blood > 2 * muscle, "bSSFP: bright blood, dark myocardium"


def test_cycle_starts_at_ed_and_contracts_most_at_es():
    curve = contraction_curve(25, 10)
    assert curve[0] == 0.0 and curve[10] == pytest.approx(1.0)
    assert np.argmax(curve) == 10 and np.all(np.diff(curve[:11]) > 0)
    assert curve[-1] < 0.1, "the atrial kick refills the ventricle by the next ED"


def test_lv_volume_at_es_matches_the_subjects_ejection_fraction(phantom):
    ef = phantom.subject.ejection_fraction
    exact = phantom.lv_cavity_ml[phantom.es_index] / phantom.lv_cavity_ml[0]
    assert exact == pytest.approx(1.0 - ef, rel=0.05)
    counted = [(phantom.labels[t] == LV_LABEL).sum() for t in (0, phantom.es_index)]
    assert counted[1] / counted[0] == pytest.approx(1.0 - ef, rel=0.2)
    assert 60 < phantom.lv_cavity_ml[0] < 250, "an adult LV end-diastolic volume in mL"
    assert np.argmin(phantom.lv_cavity_ml) == phantom.es_index


def test_myocardium_thickens_at_es_and_keeps_its_volume(phantom):
    def wall_thickness(labels: np.ndarray) -> float:
        """Mean wall thickness of an annulus with the measured cavity and muscle areas (voxels)."""
        cavity, muscle = (labels == LV_LABEL).sum(), (labels == MYO_LABEL).sum()
        return float(np.sqrt((cavity + muscle) / np.pi) - np.sqrt(cavity / np.pi))

    middle = phantom.labels.shape[1] // 2
    ed, es = phantom.labels[0, middle], phantom.labels[phantom.es_index, middle]
    assert wall_thickness(es) > 1.2 * wall_thickness(ed)
    assert phantom.myocardium_ml[phantom.es_index] == pytest.approx(phantom.myocardium_ml[0], rel=0.05)


def test_writes_the_acdc_layout_that_reads_back_with_its_geometry(tmp_path):
    out = make_synthetic("cardiac", tmp_path / "acdc", subjects=1, seed=3, **SMALL)
    phantom = cardiac_subject(3, 0, CardiacOptions(**SMALL))
    folder = out / "patient001"
    es = phantom.es_index + 1
    info = (folder / "Info.cfg").read_text(encoding="utf-8").splitlines()
    assert info[:3] == ["ED: 1", f"ES: {es}", "Group: NOR"]
    assert [line.split(":")[0] for line in info] == ["ED", "ES", "Group", "Height", "NbFrame", "Weight"]
    assert info[4] == f"NbFrame: {phantom.subject.n_frames}"

    series = sitk.ReadImage(str(folder / "patient001_4d.nii.gz"))
    assert series.GetDimension() == 4 and series.GetPixelID() == sitk.sitkInt16
    assert series.GetSize() == (64, 64, 8, phantom.subject.n_frames)
    assert np.allclose(series.GetSpacing(), (*phantom.spacing, phantom.frame_interval_s), atol=1e-5)
    assert np.allclose(series.GetOrigin()[:3], phantom.origin, atol=1e-3)
    direction = np.array(series.GetDirection()).reshape(4, 4)[:3, :3]
    assert np.allclose(direction, np.reshape(phantom.direction, (3, 3)), atol=1e-5)
    assert np.array_equal(sitk.GetArrayFromImage(series), phantom.frames)

    for frame in (1, es):
        image = sitk.ReadImage(str(folder / f"patient001_frame{frame:02d}.nii.gz"))
        truth = sitk.ReadImage(str(folder / f"patient001_frame{frame:02d}_gt.nii.gz"))
        assert np.array_equal(sitk.GetArrayFromImage(image), phantom.frames[frame - 1])
        assert np.array_equal(sitk.GetArrayFromImage(truth), phantom.labels[frame - 1])
        assert np.allclose(image.GetDirection(), phantom.direction, atol=1e-5)


def test_more_subjects_start_with_the_same_subjects(tmp_path):
    make_synthetic("cardiac", tmp_path / "one", subjects=1, seed=5, **SMALL)
    make_synthetic("cardiac", tmp_path / "two", subjects=2, seed=5, **SMALL)
    read = lambda root: sitk.GetArrayFromImage(sitk.ReadImage(str(root / "patient001" / "patient001_4d.nii.gz")))  # noqa: E731
    assert np.array_equal(read(tmp_path / "one"), read(tmp_path / "two"))
    assert sorted(p.name for p in (tmp_path / "two").glob("patient*")) == ["patient001", "patient002"]


def test_any_number_of_ed_to_es_phases_is_rendered_directly_not_blended():
    """Evaluation sequences: each phase drawn from the anatomy at its contraction, with its own noise —
    the middle frame of three is not the mean of its neighbours, as a linearly resampled one would be."""
    from sadm.phantoms.cardiac import systole_contractions

    cycle = cardiac_subject(3, 0, CardiacOptions(**SMALL))
    phases = cardiac_subject(3, 0, CardiacOptions(**SMALL), contractions=systole_contractions(5))
    assert phases.frames.shape == (5, *cycle.frames.shape[1:])
    assert phases.subject == cycle.subject  # same anatomy, whatever phases are rendered
    np.testing.assert_allclose(phases.lv_cavity_ml[[0, -1]], cycle.lv_cavity_ml[[0, cycle.es_index]], rtol=0.01)
    assert np.all(np.diff(phases.lv_cavity_ml) < 0)  # systole: the LV empties from ED to ES
    middle, neighbours = phases.frames[2].astype(float), (phases.frames[1] + phases.frames[3].astype(float)) / 2
    assert np.abs(middle - neighbours).mean() > 0.1 * np.abs(phases.frames[3] - phases.frames[1].astype(float)).mean()
    assert systole_contractions(3).tolist() == pytest.approx([0.0, 0.5, 1.0])


def test_the_noise_free_twin_is_the_same_subject_without_its_rician_noise():
    noisy = cardiac_subject(3, 0, CardiacOptions(**SMALL))
    clean = cardiac_subject(3, 0, CardiacOptions(**SMALL), noisy=False)
    np.testing.assert_array_equal(clean.labels, noisy.labels)
    np.testing.assert_array_equal(clean.lv_cavity_ml, noisy.lv_cavity_ml)
    sigma = noisy.subject.noise * noisy.subject.peak
    for t in (0, len(noisy.frames) - 1):
        difference = noisy.frames[t].astype(np.float64) - clean.frames[t]
        bright = clean.frames[t] > 0.5 * clean.frames[t].max()  # Rician ≈ Gaussian where the signal is high
        assert bright.sum() > 1000
        assert difference[bright].std() == pytest.approx(sigma, rel=0.15)
        assert abs(difference[bright].mean()) < 0.2 * sigma
