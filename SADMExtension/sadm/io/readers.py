"""Finding and reading longitudinal sequences in whichever format they are stored: the one list of
readers (`READERS`) and what reads through it.

`read_sequence(path)` reads one sequence; `discover_sequences(path)` lists every sequence under a data
path as cheap `SequenceSource`s (nothing is decoded until `.read()`), which is what the cache needs to
tell whether an entry is stale; `read_input(paths)` is `sadm generate`'s input, where one 3D volume
alone is a one-frame sequence. A new format is one `SequenceReader` subclass added with
`register_reader`; the dispatch, the watched files, the expected-data message and the suffixes a data
folder is scanned for all follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sadm.errors import DataError
from sadm.io.acdc import AcdcReader
from sadm.io.dicom_multiframe import MultiFrameDicomReader
from sadm.io.dicom_series import DicomCineReader, DicomVolumeReader
from sadm.io.four_d import FourDImageReader
from sadm.io.frame_list import FrameFilesReader, VolumeFileReader
from sadm.io.manifest import ManifestReader
from sadm.io.reader import SequenceReader, SequenceSource
from sadm.io.sequence import LongitudinalSequence

__all__ = [
    "READERS",
    "SequenceReader",
    "SequenceSource",
    "discover_sequences",
    "expected_data",
    "read_input",
    "read_sequence",
    "reader_named",
    "register_reader",
    "sequence_suffixes",
]

READERS: list[SequenceReader] = [
    AcdcReader(),
    DicomCineReader(),
    DicomVolumeReader(),
    ManifestReader(),
    MultiFrameDicomReader(),
    FourDImageReader(),
    VolumeFileReader(),
    FrameFilesReader(),
]
"""In the order they are asked: the first reader that claims a path reads it."""

# Kept for callers that name the layouts of the first readers.
FOUR_D, ACDC, FRAMES = FourDImageReader.name, AcdcReader.name, FrameFilesReader.name


def register_reader(reader: SequenceReader, before: str | None = None) -> SequenceReader:
    """Add a reader (last, or before the reader named `before`); its name must be new."""
    if any(known.name == reader.name for known in READERS):
        raise ValueError(f"a reader named {reader.name!r} is already registered")
    position = len(READERS) if before is None else READERS.index(reader_named(before))
    READERS.insert(position, reader)
    return reader


def reader_named(name: str) -> SequenceReader:
    for reader in READERS:
        if reader.name == name:
            return reader
    raise ValueError(f"unknown layout {name!r}; expected one of {', '.join(r.name for r in READERS)}")


def sequence_suffixes() -> tuple[str, ...]:
    """The file endings of every reader: the files of a data folder that are read as sequences."""
    suffixes: list[str] = []
    for reader in READERS:
        suffixes += [suffix for suffix in reader.suffixes if suffix not in suffixes]
    return tuple(suffixes)


def expected_data() -> str:
    """What a data path may be, in the words of every registered reader."""
    kinds = [reader.describes for reader in READERS if reader.describes and not reader.one_volume]
    return f"expected {', '.join(kinds)}, or a folder of those ({', '.join(sequence_suffixes())})"


def read_sequence(path: str | Path | Sequence[str | Path]) -> LongitudinalSequence:
    """The one sequence at `path` (any registered format), or an ordered list of 3D files / DICOM folders."""
    if isinstance(path, (list, tuple)):
        paths = tuple(Path(p) for p in path)
        return SequenceSource("", FRAMES, paths).read()
    path = _existing(path)
    reader = _claiming(path)
    if reader is None and path.is_dir():
        raise DataError(f"{path} is a folder of several sequences (or none); use discover_sequences() to list them")
    sources = _sources(path, reader)
    if len(sources) != 1:
        names = ", ".join(source.subject for source in sources[:5])
        raise DataError(f"{path} holds {len(sources)} sequences ({names}, ...); use discover_sequences() to list them")
    return sources[0].read()


def read_input(paths: Sequence[str | Path]) -> LongitudinalSequence:
    """`sadm generate`'s input: as `read_sequence`, but one 3D volume alone (a 3D file, a DICOM series
    folder) is a one-frame sequence (the paper's single-image setting: a baseline scan plus --future)."""
    if len(paths) != 1:
        return read_sequence(list(paths))
    path = _existing(paths[0])
    volume_readers = [reader for reader in READERS if reader.one_volume]
    reader = next((r for r in volume_readers if r.claims(path)), None) or _claiming(path)
    if reader is not None:
        sources = reader.sources(path)
        if len(sources) == 1:
            return sources[0].read(min_frames=1)
    return read_sequence(path)


def discover_sequences(path: str | Path) -> list[SequenceSource]:
    """Every sequence under a data path, in a stable order, with unique subjects."""
    path = _existing(path)
    return _sources(path, _claiming(path))


def _sources(path: Path, reader: SequenceReader | None) -> list[SequenceSource]:
    """The sequences at `path`, given the reader that claims it (None: a file of no known kind, or a
    folder whose files are read one by one)."""
    if reader is not None and reader.one_volume:
        raise DataError(reader.not_a_sequence(path))
    if reader is not None:
        sources = reader.sources(path)
    elif path.is_file():
        raise DataError(f"{path} is neither a CSV manifest nor an image file of a known kind; {expected_data()}")
    else:
        sources = []
        for file in sorted(path.iterdir()):
            if file.is_file() and not file.name.startswith("."):
                file_reader = next((r for r in READERS if r.has_suffix(file) and r.claims(file)), None)
                sources += file_reader.sources(file) if file_reader is not None else []
    if not sources:
        raise DataError(f"found no sequences under {path}; {expected_data()}")
    _check_unique_subjects(sources, path)
    return sources


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; {expected_data()}")
    return path


def _claiming(path: Path) -> SequenceReader | None:
    return next((reader for reader in READERS if reader.claims(path)), None)


def _check_unique_subjects(sources: list[SequenceSource], where: Path) -> None:
    seen: dict[str, SequenceSource] = {}
    for source in sources:
        if source.subject in seen:
            raise DataError(
                f"{where}: {seen[source.subject].paths[0]} and {source.paths[0]} both give subject '{source.subject}'; "
                "expected one sequence per subject (rename one of them)"
            )
        seen[source.subject] = source
