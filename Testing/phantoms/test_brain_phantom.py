"""Synthetic brain ageing from nilearn's bundled MNI152 template: it loads offline, ages the way
brains do, and is written as NIfTI files on the template's grid plus a CSV manifest."""

from __future__ import annotations

import csv
import socket

import nibabel
import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from sadm.phantoms import AGE_GROUPS, BrainOptions, brain_subject, load_template, make_synthetic

FAST = BrainOptions(voxel_mm=4.0)


@pytest.fixture(scope="module")
def template():
    """Loaded with every network connection refused: the template must come from the wheel."""

    def refuse(*args, **kwargs):
        raise OSError("network access attempted while loading the MNI152 template")

    load_template.cache_clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        return load_template(FAST.voxel_mm)


@pytest.fixture(scope="module")
def phantom(template):
    return brain_subject(seed=0, index=0, options=FAST)


@pytest.fixture(scope="module")
def manifest(template, tmp_path_factory):
    """A written two-subject data set, as `sadm data make-synthetic --kind brain` makes it."""
    return make_synthetic("brain", tmp_path_factory.mktemp("brain"), subjects=2, seed=0, voxel_mm=4.0)


def test_template_loads_offline_on_the_requested_grid(template):
    assert template.shape == (48, 59, 50)  # MNI152 1 mm (189, 233, 197) sampled every 4 mm
    assert np.allclose(template.affine[:3, 3], (-98.0, -134.0, -72.0))
    ventricles_ml = template.ventricles.sum() * 4.0**3 / 1000
    assert 10 < ventricles_ml < 40, "lateral + third ventricles of a young adult template"
    assert template.mask.max() == pytest.approx(1.0, abs=0.05)


def test_one_age_per_paper_age_group(phantom):
    assert len(phantom.ages) == 5
    for age, (low, high) in zip(phantom.ages, AGE_GROUPS):
        assert low <= age <= high


def test_ventricles_and_csf_grow_while_grey_matter_shrinks_with_age(phantom):
    assert np.all(np.diff(phantom.ventricle_ml) > 0)
    assert np.all(np.diff(phantom.csf_ml) > 0)
    assert np.all(np.diff(phantom.gm_ml) < 0)
    assert phantom.ventricle_ml[-1] > 1.3 * phantom.ventricle_ml[0]


def test_the_images_show_it_dark_csf_grows_between_youngest_and_oldest(phantom, template):
    """Measured on the images alone, as a reader of the files would."""
    csf, gm = phantom.subject.tissue_t1[1:3]
    threshold = (csf + gm) / 2 / phantom.subject.tissue_t1[3] * phantom.subject.scale
    inside = template.mask > 0.9
    dark = [int(((frame < threshold) & inside).sum()) for frame in phantom.frames]
    assert dark[-1] > 1.2 * dark[0]


def test_frames_are_skull_stripped_int16_t1_contrast(phantom, template):
    frames = phantom.frames
    assert frames.dtype == np.int16 and frames.shape == (5, *template.shape)
    far_outside = ~ndimage.binary_dilation(template.mask > 0.01, iterations=4)  # the head may be 6 % larger
    assert frames.min() >= 0 and np.all(frames[:, far_outside] == 0)
    first = frames[0].astype(float)
    wm, gm = first[template.wm > 0.9].mean(), first[template.gm > 0.9].mean()
    assert wm > 1.1 * gm and first[template.ventricles > 0.9].mean() < gm


def read(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_writes_nifti_on_the_template_grid_and_a_manifest(manifest, phantom, template):
    assert manifest.name == "manifest.csv"
    with manifest.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["subject", "timepoint", "path", "time"]
    assert [r["subject"] for r in rows] == ["sub-001"] * 5 + ["sub-002"] * 5
    assert [int(r["timepoint"]) for r in rows[:5]] == [1, 2, 3, 4, 5]

    # the files of subject 1 are, byte for byte, what the same seed renders in memory
    assert [int(r["time"]) for r in rows[:5]] == list(phantom.ages)
    for row, frame in zip(rows[:5], phantom.frames):
        path = manifest.parent / row["path"]
        assert path.name == f"sub-001_age-{int(row['time']):02d}.nii.gz"
        image = sitk.ReadImage(str(path))
        assert image.GetSize() == template.shape[::-1] and image.GetPixelID() == sitk.sitkInt16
        assert np.array_equal(read(path), frame)
        # nibabel (what nilearn users see) reports exactly the template's RAS affine
        assert np.allclose(nibabel.load(path).affine, template.affine, atol=1e-4)


def test_subjects_differ_and_more_subjects_start_with_the_same_ones(manifest, tmp_path):
    one = make_synthetic("brain", tmp_path / "one", subjects=1, seed=0, voxel_mm=4.0)
    assert one.read_text(encoding="utf-8") in manifest.read_text(encoding="utf-8")
    first = sorted((one.parent / "sub-001").iterdir())
    assert [p.name for p in first] == [p.name for p in sorted((manifest.parent / "sub-001").iterdir())]
    for path in first:
        assert np.array_equal(read(path), read(manifest.parent / "sub-001" / path.name))
    second = sorted((manifest.parent / "sub-002").iterdir())
    assert not np.array_equal(read(first[0]), read(second[0]))


def test_the_template_variety_renders_the_subjects_the_first_brain_stages_trained_on(template):
    """Stages 1-4 of brain-demo trained on the phantom before it varied anatomy and ageing per
    subject; `variety="template"` must still make those subjects (their volumes as recorded then)."""
    old = brain_subject(seed=0, index=0, options=BrainOptions(voxel_mm=4.0, variety="template"))
    assert old.subject.variety == "template"
    assert old.subject.ventricle_base_mm == old.subject.atrophy_warp_mm == old.subject.coarse_warp_mm == 0.0
    assert old.ventricle_ml == pytest.approx([19.49, 22.23, 27.09, 31.84, 40.17], abs=0.05)
    assert old.gm_ml == pytest.approx([927.3, 901.3, 857.9, 816.0, 750.7], abs=0.2)
    with pytest.raises(ValueError, match="variety"):
        BrainOptions(variety="one template")


def test_subjects_differ_in_anatomy_and_in_how_they_age_not_only_in_degree(template):
    """Issue 27: held-out brains used to share the training brains' anatomy and ageing pattern. Over
    the same six subjects the young ventricles vary about 3.5 times as much as the template variety's
    (coefficient of variation 0.22 vs 0.06) and their growth by the last scan twice as much."""

    def spread(variety: str) -> tuple[float, float]:
        phantoms = [brain_subject(0, i, BrainOptions(voxel_mm=4.0, variety=variety)) for i in range(6)]
        young = np.array([p.ventricle_ml[0] for p in phantoms])
        growth = np.array([p.ventricle_ml[-1] / p.ventricle_ml[0] for p in phantoms])
        return young.std() / young.mean(), growth.std()

    (template_young, template_growth), (subject_young, subject_growth) = spread("template"), spread("subject")
    assert subject_young > 2.0 * template_young
    assert subject_growth > 1.3 * template_growth


def test_a_subjects_own_atrophy_flow_changes_the_aged_scans_not_the_young_anatomy(template):
    from dataclasses import replace

    from sadm.phantoms.brain import render_brain, sample_brain_subject
    from sadm.phantoms.fields import subject_rngs

    def render(subject):
        _, field_rng, noise_rng = subject_rngs(0, 2, streams=3)
        return render_brain(subject, template, field_rng, noise_rng).frames

    subject = sample_brain_subject(subject_rngs(0, 2, streams=3)[0], FAST)
    assert subject.ages[0] <= subject.ageing_onset and subject.atrophy_warp_mm > 1.0
    with_flow, without = render(subject), render(replace(subject, atrophy_warp_mm=0.0))
    assert np.array_equal(with_flow[0], without[0])
    changed = np.abs(with_flow[-1].astype(int) - without[-1].astype(int)) > 0.1 * with_flow[-1].max()
    assert changed.sum() > 500  # 2729 voxels at 4 mm; the whole ageing changes 3641 so much
