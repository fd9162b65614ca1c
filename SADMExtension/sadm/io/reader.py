"""The interface every input format implements, and the record of one sequence found on disk.

A format is one `SequenceReader` subclass: it says which paths it `claims`, lists the sequences a
claimed path holds as cheap `SequenceSource`s (`sources`), reads one (`read`) and names the files a
cache must watch (`watched_files`). `sadm.io.readers.READERS` lists them; everything that reads
input (`read_sequence`, `discover_sequences`, `read_input`, the expected-data message, the file
suffixes a data folder is scanned for) goes through that list.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from sadm.io.checks import check_sequence
from sadm.io.sequence import LongitudinalSequence

_SEQUENCE_SUFFIXES = (".seq.nrrd", ".seq.nhdr")
_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


class SequenceReader(ABC):
    """One input format. Subclasses set the class attributes and implement `claims` and `read`."""

    name: ClassVar[str]
    """The layout recorded in a `SequenceSource` (and so in cache entries): never rename one."""
    describes: ClassVar[str] = ""
    """What a user passes, for the expected-data message, e.g. 'a CSV manifest (subject,timepoint,path[,time])';
    empty for readers that no path selects (an ordered list of frame files)."""
    suffixes: ClassVar[tuple[str, ...]] = ()
    """File endings this reader takes (lower case); a data folder's files with them are read as sequences."""
    one_volume: ClassVar[bool] = False
    """A reader of one 3D volume: `sadm generate`'s single-image input, refused where a sequence is needed."""

    @abstractmethod
    def claims(self, path: Path) -> bool:
        """Whether `path` (an existing file or folder) is in this format; cheap, and never raises for
        a path of another format."""

    def sources(self, path: Path) -> list[SequenceSource]:
        """The sequences a claimed path holds; by default the one sequence the path is."""
        return [SequenceSource(subject_of_file(path), self.name, (path,))]

    @abstractmethod
    def read(self, source: SequenceSource) -> LongitudinalSequence:
        """The frames of `source` in time order, each with its geometry (and times when the data give them)."""

    def watched_files(self, source: SequenceSource) -> list[Path]:
        """Every file whose change changes the sequence (a cache entry is stale when one does)."""
        return list(source.paths)

    def not_a_sequence(self, path: Path) -> str:
        """Why a `one_volume` path alone is no sequence, and what to pass instead."""
        return (
            f"{path} is one 3D volume ({self.describes}); a sequence needs at least 2 frames: pass the volumes of "
            "all timepoints in order (or list them in a CSV manifest)"
        )

    def has_suffix(self, path: Path) -> bool:
        return path.name.lower().endswith(self.suffixes) if self.suffixes else False


@dataclass(frozen=True)
class SequenceSource:
    """One sequence found on disk: its subject, the reader (`layout`) that reads it and the paths it takes."""

    subject: str
    layout: str
    paths: tuple[Path, ...]
    times: tuple[float, ...] | None = None

    @property
    def reader(self) -> SequenceReader:
        from sadm.io.readers import reader_named

        return reader_named(self.layout)

    def read(self, min_frames: int = 2) -> LongitudinalSequence:
        """The sequence, checked: at least `min_frames` 3D frames of finite voxels."""
        where = f"the sequence of subject '{self.subject}'" if self.subject else str(self.paths[0])
        return check_sequence(self.reader.read(self), where, min_frames=min_frames)

    def watched_files(self) -> list[Path]:
        """Every file whose change changes this sequence (for cache staleness)."""
        return self.reader.watched_files(self)

    def describe(self) -> dict:
        """A JSON-able record of what is read and how (part of a cache entry's identity)."""
        return {
            "subject": self.subject,
            "layout": self.layout,
            "paths": [str(p) for p in self.paths],
            "times": None if self.times is None else list(self.times),
        }


def subject_of_file(path: Path) -> str:
    """'patient001_4d.nii.gz' -> 'patient001_4d'; 'cine.seq.nrrd' -> 'cine'."""
    name = path.name
    for suffix in (*_SEQUENCE_SUFFIXES, *_IMAGE_SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem
