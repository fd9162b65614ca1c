"""Training reads batches of cached sequences, split by subject."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from sequence_files import image_of, make_frames, write_acdc_patient
from torch.utils.data import DataLoader

from sadm.errors import ConfigError
from sadm.training.dataset import SequenceDataset, collate_sequences, load_training_data, split_subjects


@pytest.fixture
def acdc_root(tmp_path):
    root = tmp_path / "acdc"
    write_acdc_patient(root, "patient001", make_frames(6), ed=1, es=4)  # 4 frames
    write_acdc_patient(root, "patient002", make_frames(6), ed=2, es=3)  # 2 frames
    write_acdc_patient(root, "patient003", make_frames(6), ed=1, es=6)  # 6 frames
    return root


def test_loads_acdc_training_data_as_normalised_sequences_on_the_model_grid(acdc_root, tmp_path):
    dataset = load_training_data(acdc_root, tmp_path / "cache", grid=(2, 4, 4))

    assert len(dataset) == 3 and dataset.subjects == ["patient001", "patient002", "patient003"]
    item = dataset[0]
    assert item["subject"] == "patient001" and item["length"] == 4
    assert item["frames"].shape == (4, 2, 4, 4) and item["frames"].dtype == torch.float32
    assert float(item["frames"].min()) >= 0.0 and float(item["frames"].max()) <= 1.0
    assert torch.equal(item["times"], torch.arange(4, dtype=torch.float32))  # no times in ACDC: frame indices


def test_resamples_every_cardiac_sequence_to_twelve_phases(acdc_root, tmp_path):
    dataset = load_training_data(
        acdc_root, tmp_path / "cache", grid=(2, 4, 4), num_frames=12, clip_percentiles=(0.5, 99.5)
    )

    assert [dataset[i]["length"] for i in range(3)] == [12, 12, 12]
    assert torch.equal(dataset[1]["times"], torch.arange(12, dtype=torch.float32))


def test_items_carry_the_times_of_the_data(tmp_path):
    for t, frame in enumerate(make_frames(3)):
        sitk.WriteImage(image_of(frame), str(tmp_path / f"{t}.nrrd"))
    (tmp_path / "ages.csv").write_text(
        "subject,timepoint,path,time\nx,0,0.nrrd,61.0\nx,1,1.nrrd,63.5\nx,2,2.nrrd,70.25\n", encoding="utf-8"
    )

    dataset = load_training_data(tmp_path / "ages.csv", tmp_path / "cache", grid=(2, 2, 2))

    assert dataset[0]["times"].tolist() == [61.0, 63.5, 70.25]


def test_batches_sequences_of_different_lengths_with_padding(acdc_root, tmp_path):
    dataset = load_training_data(acdc_root, tmp_path / "cache", grid=(2, 4, 4))
    loader = DataLoader(dataset, batch_size=3, collate_fn=collate_sequences)

    batch = next(iter(loader))

    assert batch["frames"].shape == (3, 6, 2, 4, 4)
    assert batch["lengths"].tolist() == [4, 2, 6] and batch["subjects"] == ["patient001", "patient002", "patient003"]
    assert torch.equal(batch["frames"][1, :2], dataset[1]["frames"])
    assert torch.count_nonzero(batch["frames"][1, 2:]) == 0
    assert batch["times"][1].tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]  # padding repeats the last time


def test_collate_keeps_the_first_frames_of_sequences_longer_than_max_frames(acdc_root, tmp_path):
    dataset = load_training_data(acdc_root, tmp_path / "cache", grid=(2, 4, 4))

    batch = collate_sequences([dataset[2], dataset[1]], max_frames=3)

    assert batch["frames"].shape == (2, 3, 2, 4, 4) and batch["lengths"].tolist() == [3, 2]
    assert torch.equal(batch["frames"][0], dataset[2]["frames"][:3])


def test_collate_refuses_sequences_on_different_grids():
    small = {"frames": torch.zeros(2, 2, 2, 2), "length": 2, "times": torch.arange(2.0), "subject": "a"}
    large = {"frames": torch.zeros(2, 4, 4, 4), "length": 2, "times": torch.arange(2.0), "subject": "b"}

    with pytest.raises(ConfigError, match="share a grid"):
        collate_sequences([small, large])


def test_splits_subjects_deterministically_whatever_their_order():
    subjects = [f"patient{n:03d}" for n in range(1, 101)]

    train, validation = split_subjects(subjects, val_fraction=0.2, seed=7)

    assert len(validation) == 20 and len(train) == 80
    assert set(train).isdisjoint(validation) and set(train) | set(validation) == set(subjects)
    assert split_subjects(list(reversed(subjects)) + subjects[:5], 0.2, seed=7) == (train, validation)
    assert split_subjects(subjects, 0.2, seed=8)[1] != validation


def test_split_keeps_a_subject_on_each_side_of_a_tiny_dataset():
    assert split_subjects(["a", "b"], val_fraction=0.1, seed=0)[1] in (["a"], ["b"])
    assert split_subjects(["a", "b", "c"], val_fraction=0.0) == (["a", "b", "c"], [])
    with pytest.raises(ConfigError, match="val_fraction"):
        split_subjects(["a"], val_fraction=1.0)


def test_datasets_restricted_to_one_side_of_the_split(acdc_root, tmp_path):
    full = load_training_data(acdc_root, tmp_path / "cache", grid=(2, 4, 4))
    train, validation = split_subjects(full.subjects, val_fraction=0.34, seed=1)

    train_set = SequenceDataset.from_cache(tmp_path / "cache", subjects=train)
    validation_set = full.restricted_to(validation)

    assert train_set.subjects == train and validation_set.subjects == validation
    np.testing.assert_array_equal(train_set[0]["frames"].numpy(), full[full.subjects.index(train[0])]["frames"].numpy())
    with pytest.raises(ConfigError, match="patient999"):
        full.restricted_to(["patient999"])


def test_a_loader_with_a_frame_limit_batches_through_partial(acdc_root, tmp_path):
    dataset = load_training_data(acdc_root, tmp_path / "cache", grid=(2, 4, 4))
    loader = DataLoader(dataset, batch_size=2, shuffle=False, collate_fn=partial(collate_sequences, max_frames=3))

    shapes = [tuple(batch["frames"].shape) for batch in loader]

    assert shapes == [(2, 3, 2, 4, 4), (1, 3, 2, 4, 4)]
