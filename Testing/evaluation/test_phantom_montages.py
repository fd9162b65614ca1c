"""The shared PNG montage: data previews and "truth / generated / |difference|" comparisons."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sadm.evaluation.montage import mid_slices, save_montage
from sadm.evaluation.phantom_montages import brain_montage, cardiac_columns, cardiac_montage


def ramp(height: int, width: int) -> np.ndarray:
    return np.add.outer(np.arange(height), np.arange(width)).astype(np.float32)


def test_mid_slices_of_a_volume_and_of_a_whole_sequence():
    volume = np.arange(4 * 6 * 8).reshape(4, 6, 8)
    assert mid_slices(volume).shape == (6, 8)
    assert np.array_equal(mid_slices(volume, axis=0), volume[2])
    assert np.array_equal(mid_slices(volume, axis=2), volume[:, :, 4])
    assert np.array_equal(mid_slices(volume, axis=1, index=0), volume[:, 0, :])
    sequence = np.stack([volume, volume + 1, volume + 2])  # (L, k, j, i)
    assert mid_slices(sequence, axis=1).shape == (3, 4, 8)
    with pytest.raises(ValueError, match="axis must be"):
        mid_slices(volume, axis=3)
    with pytest.raises(ValueError, match="outside"):
        mid_slices(volume, axis=0, index=4)


def test_grid_without_labels_has_the_expected_pixel_size(tmp_path):
    rows = [[ramp(20, 30)] * 4, [ramp(20, 30)] * 4]
    path = save_montage(tmp_path / "grid.png", rows, scale=2, gap=2)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "L", "gray rows make a grayscale file"
        assert image.size == (4 * (60 + 2) + 2, 2 * (40 + 2) + 2)


def test_comparison_montage_with_labels_ranges_and_a_hot_difference_row(tmp_path):
    truth, generated = ramp(16, 16), ramp(16, 16) + 1.0
    rows = [[truth, truth], [generated, generated], [np.abs(generated - truth)] * 2]
    path = save_montage(
        tmp_path / "compare.png",
        rows,
        row_labels=["ground truth", "generated", "|difference|"],
        column_labels=["frame 3\n(missing)", "frame 4"],
        value_range=[(0, 30), (0, 30), (0, 2)],
        colormaps=["gray", "gray", "hot"],
        scale=4,
        title="SADM, missing setting",
    )
    with Image.open(path) as image:
        pixels = np.asarray(image)
    plain = save_montage(tmp_path / "plain.png", rows, value_range=[(0, 30), (0, 30), (0, 2)], scale=4)
    with Image.open(plain) as image:
        assert pixels.shape[0] > image.size[1] and pixels.shape[1] > image.size[0], "labels add margins"
    assert pixels.ndim == 3, "a coloured row makes an RGB file"
    red, green = pixels[..., 0].astype(int), pixels[..., 1].astype(int)
    assert np.any(red - green > 100), "the difference row is coloured"


def test_bad_montage_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="2D slice"):
        save_montage(tmp_path / "x.png", [[np.zeros((2, 3, 4))]])
    with pytest.raises(ValueError, match="value_range has 1 entries for 2 rows"):
        save_montage(tmp_path / "x.png", [[ramp(4, 4)], [ramp(4, 4)]], value_range=[(0, 1)])
    with pytest.raises(ValueError, match="colormap must be one of"):
        save_montage(tmp_path / "x.png", [[ramp(4, 4)]], colormaps="jet")


def test_cycle_columns_run_from_ed_through_es_to_the_last_frame():
    assert cardiac_columns(25, 10) == [0, 3, 7, 10, 15, 19, 24]


def test_preview_montages_of_both_generators_are_written(tmp_path):
    cardiac = cardiac_montage(
        tmp_path / "cardiac.png", subjects=2, shape=(6, 48, 48), pixel_mm=4.0, frames=8, sub_slices=2
    )
    brain = brain_montage(tmp_path / "brain.png", subjects=1, voxel_mm=4.0)  # shares the 4 mm template cache
    for path in (cardiac, brain):
        with Image.open(path) as image:
            assert image.size[0] > 200 and image.size[1] > 80
