"""Sequences are preprocessed once into a cache folder and rebuilt only when their source or the
preprocessing changes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from sequence_files import make_frames, write_4d

from sadm.data.cache import INDEX_FILE, build_cache, read_cache
from sadm.data.preprocess import PreprocessParams, preprocess_sequence
from sadm.errors import DataError
from sadm.io.readers import discover_sequences

PARAMS = PreprocessParams(grid=(2, 3, 3))


@pytest.fixture
def data_dir(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write_4d(folder / "alice.nii.gz", make_frames(3))
    write_4d(folder / "bob.nrrd", make_frames(4))
    return folder


def cached_files(cache_dir):
    return sorted(p.name for p in cache_dir.iterdir())


def test_preprocesses_every_sequence_once_into_memory_mappable_arrays(data_dir, tmp_path):
    cache_dir = tmp_path / "cache"

    update = build_cache(discover_sequences(data_dir), cache_dir, PARAMS)

    assert update.rebuilt == ("alice", "bob") and update.reused == ()
    alice, bob = update.entries
    frames = alice.load()
    assert isinstance(frames, np.memmap) and not frames.flags.writeable
    assert frames.shape == (3, 2, 3, 3) and frames.dtype == np.float32
    expected = preprocess_sequence(discover_sequences(data_dir)[0].read(), PARAMS).frames
    np.testing.assert_array_equal(frames, expected)
    assert bob.length == 4 and bob.times == (0.0, 1.0, 2.0, 3.0)
    index = json.loads((cache_dir / INDEX_FILE).read_text(encoding="utf-8"))
    record = index["entries"][0]
    stat = (data_dir / "alice.nii.gz").stat()
    assert record["source"]["files"] == [
        {"path": str(data_dir / "alice.nii.gz"), "mtime_ns": stat.st_mtime_ns, "size": stat.st_size}
    ]
    assert record["params"] == {
        "grid": [2, 3, 3],
        "num_frames": None,
        "clip_percentiles": None,
        "max_direction_difference_deg": 1.0,
        "version": 1,
    }
    assert [e.subject for e in read_cache(cache_dir)] == ["alice", "bob"]


def test_reuses_fresh_entries_without_touching_them(data_dir, tmp_path):
    cache_dir = tmp_path / "cache"
    first = build_cache(discover_sequences(data_dir), cache_dir, PARAMS)
    mtimes = {e.subject: e.array_path.stat().st_mtime_ns for e in first.entries}

    second = build_cache(discover_sequences(data_dir), cache_dir, PARAMS)

    assert second.rebuilt == () and second.reused == ("alice", "bob")
    assert {e.subject: e.array_path.stat().st_mtime_ns for e in second.entries} == mtimes


def test_rebuilds_the_entry_of_a_changed_source_and_drops_its_old_array(data_dir, tmp_path):
    cache_dir = tmp_path / "cache"
    first = build_cache(discover_sequences(data_dir), cache_dir, PARAMS)
    old_alice = first.entries[0].array_path
    frames = make_frames(3)
    frames[1] = np.zeros_like(frames[1])  # a corrected scan, same size on disk
    write_4d(data_dir / "alice.nii.gz", frames)
    os.utime(data_dir / "alice.nii.gz", ns=(1, 1))

    second = build_cache(discover_sequences(data_dir), cache_dir, PARAMS)

    assert second.rebuilt == ("alice",) and second.reused == ("bob",)
    assert not old_alice.exists()
    np.testing.assert_array_equal(second.entries[0].load()[1], 0.0)
    assert len([n for n in cached_files(cache_dir) if n.endswith(".npy")]) == 2


def test_rebuilds_everything_when_the_preprocessing_parameters_change(data_dir, tmp_path):
    cache_dir = tmp_path / "cache"
    build_cache(discover_sequences(data_dir), cache_dir, PARAMS)

    update = build_cache(discover_sequences(data_dir), cache_dir, PreprocessParams(grid=(2, 3, 3), num_frames=6))

    assert update.rebuilt == ("alice", "bob")
    assert [e.load().shape for e in update.entries] == [(6, 2, 3, 3), (6, 2, 3, 3)]
    assert len([n for n in cached_files(cache_dir) if n.endswith(".npy")]) == 2


def test_rebuilds_an_entry_whose_array_went_missing(data_dir, tmp_path):
    cache_dir = tmp_path / "cache"
    build_cache(discover_sequences(data_dir), cache_dir, PARAMS).entries[1].array_path.unlink()

    update = build_cache(discover_sequences(data_dir), cache_dir, PARAMS)

    assert update.rebuilt == ("bob",) and update.entries[1].load().shape == (4, 2, 3, 3)


def test_forgets_sequences_that_are_no_longer_in_the_data(data_dir, tmp_path):
    cache_dir = tmp_path / "cache"
    bob_array = build_cache(discover_sequences(data_dir), cache_dir, PARAMS).entries[1].array_path
    (data_dir / "bob.nrrd").unlink()

    update = build_cache(discover_sequences(data_dir), cache_dir, PARAMS)

    assert [e.subject for e in update.entries] == ["alice"] and not bob_array.exists()


def test_a_bad_source_leaves_the_cache_exactly_as_it_was(data_dir, tmp_path):
    cache_dir = tmp_path / "cache"
    build_cache(discover_sequences(data_dir), cache_dir, PARAMS)
    before = {name: (cache_dir / name).read_bytes() for name in cached_files(cache_dir)}
    write_4d(data_dir / "alice.nii.gz", make_frames(5))  # alice changes (would be rebuilt first) ...
    (data_dir / "carol.nii.gz").write_bytes((data_dir / "alice.nii.gz").read_bytes()[:300])  # ... carol is cut short

    with pytest.raises(DataError, match="carol.nii.gz"):
        build_cache(discover_sequences(data_dir), cache_dir, PARAMS)

    assert {name: (cache_dir / name).read_bytes() for name in cached_files(cache_dir)} == before


def test_a_crash_while_writing_an_array_leaves_no_partial_file(data_dir, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"

    def disk_full(stream, array, allow_pickle):
        stream.write(b"\x93NUMPY partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("sadm.data.cache.np.save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        build_cache(discover_sequences(data_dir), cache_dir, PARAMS)

    assert cached_files(cache_dir) == []


def test_an_unreadable_index_is_rebuilt_with_a_warning(data_dir, tmp_path):
    cache_dir = tmp_path / "cache"
    build_cache(discover_sequences(data_dir), cache_dir, PARAMS)
    (cache_dir / INDEX_FILE).write_text('{"format": "sadm-seq', encoding="utf-8")

    with pytest.warns(UserWarning, match="unreadable"):
        update = build_cache(discover_sequences(data_dir), cache_dir, PARAMS)

    assert update.rebuilt == ("alice", "bob")


def test_refuses_a_folder_whose_index_belongs_to_something_else(data_dir, tmp_path):
    cache_dir = tmp_path / "elsewhere"
    cache_dir.mkdir()
    (cache_dir / INDEX_FILE).write_text('{"name": "my web app"}', encoding="utf-8")

    with pytest.raises(DataError, match="not a SADM sequence cache"):
        build_cache(discover_sequences(data_dir), cache_dir, PARAMS)

    assert cached_files(cache_dir) == [INDEX_FILE]


def test_reading_a_cache_that_was_never_built_says_so(tmp_path):
    with pytest.raises(DataError, match="build the cache first"):
        read_cache(tmp_path)


def test_refuses_two_sources_for_one_subject(data_dir, tmp_path):
    alice = discover_sequences(data_dir)[0]

    with pytest.raises(DataError, match=r"subjects \['alice'\] appear more than once"):
        build_cache([alice, alice], tmp_path / "cache", PARAMS)

    assert not (tmp_path / "cache").exists()
