"""Making a synthetic data set: one call, safe to interrupt and to resume, loud about mistakes."""

from __future__ import annotations

import pytest

from sadm import phantoms as synthetic
from sadm.phantoms import make_synthetic

SMALL = dict(shape=(6, 48, 48), pixel_mm=4.0, frames=6, sub_slices=2)


def test_an_interrupted_subject_never_looks_complete(tmp_path, monkeypatch):
    from sadm.phantoms import writers

    def crash_after_the_4d_file(phantom, folder, name):
        (folder / f"{name}_4d.nii.gz").write_bytes(b"half")
        raise KeyboardInterrupt  # the user pressed Ctrl-C mid-subject

    monkeypatch.setattr(writers, "write_acdc_subject", crash_after_the_4d_file)
    with pytest.raises(KeyboardInterrupt):
        make_synthetic("cardiac", tmp_path, subjects=2, seed=0, **SMALL)
    assert [p.name for p in tmp_path.iterdir()] == [synthetic.MARKER], "no subject, no staging folder"


def test_rerunning_into_the_same_folder_resumes_without_rewriting(tmp_path):
    make_synthetic("cardiac", tmp_path, subjects=1, seed=0, **SMALL)
    first = tmp_path / "patient001" / "Info.cfg"
    stamp = first.stat().st_mtime_ns
    make_synthetic("cardiac", tmp_path, subjects=2, seed=0, **SMALL)
    assert first.stat().st_mtime_ns == stamp
    assert (tmp_path / "patient002" / "Info.cfg").exists()


def test_a_folder_made_with_another_seed_is_refused(tmp_path):
    make_synthetic("cardiac", tmp_path, subjects=1, seed=0, **SMALL)
    with pytest.raises(ValueError, match="already holds synthetic data"):
        make_synthetic("cardiac", tmp_path, subjects=1, seed=1, **SMALL)


def test_mistakes_are_reported_with_the_valid_choices(tmp_path):
    with pytest.raises(ValueError, match="kind must be one of"):
        make_synthetic("lung", tmp_path, subjects=1)
    with pytest.raises(ValueError, match="valid: .*voxel_mm"):
        make_synthetic("brain", tmp_path, subjects=1, slices=3)
    with pytest.raises(ValueError, match="subjects must be >= 1"):
        make_synthetic("cardiac", tmp_path, subjects=0)
    with pytest.raises(ValueError, match="shape must be"):
        make_synthetic("cardiac", tmp_path, subjects=1, shape=(2, 16, 16))


def test_progress_is_reported_per_subject(tmp_path):
    seen = []
    make_synthetic(
        "cardiac", tmp_path, subjects=2, seed=0, progress=lambda done, total: seen.append((done, total)), **SMALL
    )
    assert seen == [(1, 2), (2, 2)]


def test_the_project_readers_load_synthetic_data_like_real_data(tmp_path):
    from sadm.io.readers import discover_sequences

    root = make_synthetic("cardiac", tmp_path / "acdc", subjects=2, seed=0, **SMALL)
    sources = discover_sequences(root)
    assert [s.subject for s in sources] == ["patient001", "patient002"]
    phantom = synthetic.cardiac_subject(0, 0, synthetic.CardiacOptions(**SMALL))
    sequence = sources[0].read()  # ACDC: frames ED..ES inclusive
    assert len(sequence) == phantom.es_index + 1
    assert (sequence.frames[-1] == phantom.frames[phantom.es_index]).all()
    assert sequence.geometries[0].spacing == pytest.approx(phantom.spacing)

    manifest = make_synthetic("brain", tmp_path / "brain", subjects=1, seed=0, voxel_mm=4.0)
    (brain,) = discover_sequences(manifest)
    sequence = brain.read()
    assert sequence.subject == "sub-001" and len(sequence) == 5
    for age, (low, high) in zip(sequence.times, synthetic.AGE_GROUPS):  # times are the ages in years
        assert low <= age <= high
