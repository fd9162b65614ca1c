"""A new input format is one `SequenceReader` subclass and one `register_reader` call (ARCHITECTURE.md,
'Where to add — a reader'): `sadm generate`'s input, data discovery, cache watching and the
expected-data message pick it up without other edits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sadm.errors import DataError
from sadm.io import readers
from sadm.io.reader import SequenceReader, SequenceSource
from sadm.io.sequence import Geometry, LongitudinalSequence


class ToyReader(SequenceReader):
    """`.toy` text files: one frame a line, its time then the four voxels of a 1×2×2 volume."""

    name = "toy"
    describes = "a .toy text file"
    suffixes = (".toy",)

    def claims(self, path: Path) -> bool:
        return path.is_file() and self.has_suffix(path)

    def read(self, source: SequenceSource) -> LongitudinalSequence:
        rows = np.loadtxt(source.paths[0], ndmin=2)
        frames = [row[1:].reshape(1, 2, 2).astype(np.float32) for row in rows]
        geometry = Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
        return LongitudinalSequence(
            frames=frames,
            geometries=[geometry] * len(frames),
            sources=[str(source.paths[0])] * len(frames),
            subject=source.subject,
            times=[float(t) for t in rows[:, 0]],
        )


@pytest.fixture
def toy_registered(monkeypatch):
    monkeypatch.setattr(readers, "READERS", list(readers.READERS))  # the registration ends with the test
    return readers.register_reader(ToyReader())


def write_toy(path: Path, lines: str) -> Path:
    path.write_text(lines, encoding="utf-8")
    return path


def test_a_registered_reader_is_read_where_sadm_generate_reads_its_input(tmp_path, toy_registered):
    path = write_toy(tmp_path / "cine.toy", "0 1 2 3 4\n40 5 6 7 8\n")

    sequence = readers.read_input([path])  # what `sadm generate --input cine.toy` calls

    assert len(sequence) == 2 and sequence.subject == "cine" and sequence.times == [0.0, 40.0]
    np.testing.assert_array_equal(sequence.frames[1], [[[5, 6], [7, 8]]])


def test_a_registered_reader_is_found_in_a_data_folder_and_watched(tmp_path, toy_registered):
    write_toy(tmp_path / "a.toy", "0 1 2 3 4\n1 5 6 7 8\n")
    write_toy(tmp_path / "b.toy", "0 1 2 3 4\n1 5 6 7 8\n2 9 9 9 9\n")

    sources = readers.discover_sequences(tmp_path)

    assert [(s.subject, s.layout, len(s.read())) for s in sources] == [("a", "toy", 2), ("b", "toy", 3)]
    assert sources[0].watched_files() == [tmp_path / "a.toy"]


def test_the_expected_data_message_names_a_registered_reader(tmp_path, toy_registered):
    (tmp_path / "empty").mkdir()

    with pytest.raises(DataError, match=r"a \.toy text file, or a folder of those \(.*\.toy\)"):
        readers.discover_sequences(tmp_path / "empty")


def test_the_reader_checks_apply_to_a_registered_reader(tmp_path, toy_registered):
    write_toy(tmp_path / "short.toy", "0 1 2 3 4\n")

    with pytest.raises(DataError, match=r"holds 1 frame\(s\); a longitudinal sequence needs at least 2"):
        readers.read_sequence(tmp_path / "short.toy")


def test_a_reader_name_is_registered_once(toy_registered):
    with pytest.raises(ValueError, match="already registered"):
        readers.register_reader(ToyReader())
