"""Sequences are brought onto the model grid as the paper does before training."""

from __future__ import annotations

import numpy as np
import pytest
from sequence_files import OBLIQUE, make_frames

from sadm.data.normalize import IntensityRange
from sadm.data.preprocess import PreprocessParams, align_frames_to_first, direction_difference_deg, preprocess_sequence
from sadm.data.resample import resample_to_shape
from sadm.errors import ConfigError, DataError
from sadm.io.sequence import Geometry, LongitudinalSequence
from sadm_testing import rotation

IDENTITY = Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))


def sequence_of(frames, geometries=None, times=None) -> LongitudinalSequence:
    frames = [np.asarray(f, dtype=np.float32) for f in frames]
    return LongitudinalSequence(
        frames=frames,
        geometries=geometries or [OBLIQUE] * len(frames),
        sources=[f"/data/scan{t}.nii.gz" for t in range(len(frames))],
        subject="s1",
        times=times,
    )


def test_resizes_every_frame_to_the_model_grid_and_normalises_per_sequence():
    frames = make_frames(3, shape=(4, 8, 8))
    sequence = sequence_of(frames)

    prepared = preprocess_sequence(sequence, PreprocessParams(grid=(2, 4, 4)))

    assert prepared.frames.shape == (3, 2, 4, 4) and prepared.frames.dtype == np.float32
    assert prepared.intensity == IntensityRange(0.0, 255.0 + 200.0)  # min of frame 0, max of frame 2
    expected = resample_to_shape((frames[1] - 0.0) / 455.0, (2, 4, 4))  # what the Engine does at inference
    np.testing.assert_allclose(prepared.frames[1], expected, atol=1e-6)
    assert prepared.frames.min() >= 0.0 and prepared.frames.max() <= 1.0
    np.testing.assert_array_equal(prepared.times, [0.0, 1.0, 2.0])  # frame indices: the data carry no times


def test_on_the_native_grid_normalisation_is_exact_min_max():
    frames = make_frames(2)
    prepared = preprocess_sequence(sequence_of(frames, times=[30.0, 31.5]), PreprocessParams(grid=frames[0].shape))

    np.testing.assert_allclose(prepared.frames[1], frames[1] / frames[1].max(), rtol=1e-6)
    assert prepared.frames[0].min() == 0.0 and prepared.frames[1].max() == 1.0
    np.testing.assert_array_equal(prepared.times, np.float32([30.0, 31.5]))


def test_percentile_clipping_keeps_a_hot_voxel_from_squashing_the_contrast():
    frames = [np.linspace(0, 100, 4 * 5 * 6).reshape(4, 5, 6) for _ in range(2)]
    frames[1][0, 0, 0] = 1e6
    plain = preprocess_sequence(sequence_of(frames), PreprocessParams(grid=(4, 5, 6)))
    clipped = preprocess_sequence(sequence_of(frames), PreprocessParams(grid=(4, 5, 6), clip_percentiles=(1, 99)))

    assert plain.frames[0].max() < 1e-3  # everything but the outlier is black
    assert clipped.frames[0].max() == 1.0 and clipped.frames[0].min() == 0.0
    assert clipped.frames[1, 0, 0, 0] == 1.0  # the outlier saturates instead
    assert clipped.intensity.low == pytest.approx(np.percentile(np.concatenate([f.ravel() for f in frames]), 1))


def test_resamples_in_time_to_a_fixed_frame_count_interpolating_times():
    frames = [np.full((2, 3, 4), 10.0 * t) for t in range(3)]

    prepared = preprocess_sequence(
        sequence_of(frames, times=[0.0, 1.0, 4.0]), PreprocessParams(grid=(2, 3, 4), num_frames=5)
    )

    assert prepared.frames.shape == (5, 2, 3, 4)
    np.testing.assert_allclose(prepared.frames[:, 0, 0, 0], [0.0, 0.25, 0.5, 0.75, 1.0], atol=1e-6)
    np.testing.assert_allclose(prepared.times, [0.0, 0.5, 1.0, 2.5, 4.0])


def test_cardiac_sequences_without_times_become_numbered_phases():
    frames = [np.full((2, 3, 4), float(t)) for t in range(7)]  # e.g. ED..ES of one patient

    prepared = preprocess_sequence(sequence_of(frames), PreprocessParams(grid=(2, 3, 4), num_frames=12))

    np.testing.assert_array_equal(prepared.times, np.arange(12, dtype=np.float32))
    np.testing.assert_allclose(prepared.frames[:, 0, 0, 0], np.linspace(0, 1, 12), atol=1e-6)


def test_resamples_a_frame_on_another_grid_onto_the_first_frames_grid_with_a_warning():
    frame = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    shifted = Geometry((1.0, 1.0, 1.0), (1.0, 0.0, 0.0), IDENTITY.direction)  # one voxel further along i
    sequence = sequence_of([frame, frame], geometries=[IDENTITY, shifted])

    with pytest.warns(UserWarning, match=r"frame 1 \(/data/scan1.nii.gz\) lies on another grid"):
        aligned = align_frames_to_first(sequence)

    np.testing.assert_allclose(aligned[1][..., 1:], frame[..., :-1], atol=1e-4)
    np.testing.assert_array_equal(aligned[1][..., 0], frame.min())  # outside frame 1: its darkest value


def test_resamples_a_frame_of_another_shape_and_spacing_covering_the_same_field():
    """Both frames hold the physical x coordinate: after alignment they must agree voxel for voxel."""
    coarse = np.broadcast_to(np.arange(3, dtype=np.float32), (2, 2, 3))  # spacing 1, x = i
    fine_grid = Geometry((0.5, 1.0, 1.0), (-0.25, 0.0, 0.0), IDENTITY.direction)
    fine = np.broadcast_to(np.arange(6, dtype=np.float32) * 0.5 - 0.25, (2, 2, 6))  # x = −0.25 + 0.5 i
    sequence = sequence_of([coarse, fine], geometries=[IDENTITY, fine_grid])

    with pytest.warns(UserWarning, match=r"shape \(2, 2, 6\) vs \(2, 2, 3\), spacing \(0.5, 1.0, 1.0\)"):
        aligned = align_frames_to_first(sequence)

    np.testing.assert_allclose(aligned[1], coarse, atol=1e-6)


def test_accepts_directions_within_the_tolerance():
    tilted = Geometry(
        OBLIQUE.spacing,
        OBLIQUE.origin,
        tuple((np.asarray(OBLIQUE.direction).reshape(3, 3) @ rotation([0, 0, 1], np.radians(0.5))).ravel()),
    )
    sequence = sequence_of(make_frames(2), geometries=[OBLIQUE, tilted])

    with pytest.warns(UserWarning):
        aligned = align_frames_to_first(sequence, max_direction_difference_deg=1.0)

    assert len(aligned) == 2


def test_refuses_frames_whose_directions_differ_by_more_than_the_tolerance():
    tilted = Geometry(
        OBLIQUE.spacing,
        OBLIQUE.origin,
        tuple((np.asarray(OBLIQUE.direction).reshape(3, 3) @ rotation([0, 0, 1], np.radians(5))).ravel()),
    )
    sequence = sequence_of(make_frames(3), geometries=[OBLIQUE, OBLIQUE, tilted])

    with pytest.raises(DataError, match=r"frame 2 \(/data/scan2.nii.gz\) is oriented 5.00° away from frame 0"):
        preprocess_sequence(sequence, PreprocessParams(grid=(2, 2, 2)))


def test_measures_a_flipped_axis_as_180_degrees():
    flipped = (1.0, 0, 0, 0, -1.0, 0, 0, 0, -1.0)
    assert direction_difference_deg(IDENTITY.direction, flipped) == pytest.approx(180.0)


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(grid=(32, 128)), "three positive sizes"),
        (dict(grid=(32, 0, 128)), "three positive sizes"),
        (dict(grid=(8, 8, 8), num_frames=1), "at least 2"),
        (dict(grid=(8, 8, 8), clip_percentiles=(99, 1)), "0 <= low < high <= 100"),
    ],
)
def test_refuses_nonsensical_preprocessing_parameters(params, message):
    with pytest.raises(ConfigError, match=message):
        PreprocessParams(**params)


def test_records_parameters_with_the_preprocessing_version():
    record = PreprocessParams(grid=(32, 128, 128), num_frames=12, clip_percentiles=(0.5, 99.5)).as_dict()

    assert record["grid"] == [32, 128, 128] and record["num_frames"] == 12
    assert record["clip_percentiles"] == [0.5, 99.5] and record["version"] >= 1


def test_a_given_intensity_window_is_used_instead_of_the_sequences_own():
    frames = [np.linspace(0, 100, 4 * 5 * 6).reshape(4, 5, 6) for _ in range(2)]
    brighter = [f * 2 for f in frames]
    reference = preprocess_sequence(sequence_of(frames), PreprocessParams(grid=(4, 5, 6)))
    shared = preprocess_sequence(sequence_of(brighter), PreprocessParams(grid=(4, 5, 6)), intensity=reference.intensity)
    own = preprocess_sequence(sequence_of(brighter), PreprocessParams(grid=(4, 5, 6)))

    assert shared.intensity == reference.intensity
    assert own.frames.max() == pytest.approx(1.0) and np.isclose(own.frames, reference.frames, atol=1e-6).all()
    np.testing.assert_allclose(shared.frames, np.clip(reference.frames * 2, 0, 1), atol=1e-5)
