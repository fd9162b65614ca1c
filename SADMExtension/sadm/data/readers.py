"""Finding and reading longitudinal sequences in whichever layout they are stored.

`read_sequence(path)` reads one sequence; `discover_sequences(path)` lists every sequence under a data
path as cheap `SequenceSource`s (nothing is decoded until `.read()`), which is what the cache needs to
tell whether an entry is stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sadm.data.acdc import INFO_FILE, acdc_cine_file, is_acdc_patient, list_acdc_patients, read_acdc_patient
from sadm.data.frame_list import read_frame_files
from sadm.data.images import IMAGE_SUFFIXES, dicom_series_files, has_image_suffix
from sadm.data.manifest import read_manifest
from sadm.data.sequence import LongitudinalSequence
from sadm.data.timeseries import read_4d_image, subject_of_file
from sadm.errors import DataError

FOUR_D = "4d"  # one file holding every frame: 4D NIfTI / NRRD / MetaImage, Slicer .seq.nrrd
ACDC = "acdc"  # an ACDC patient folder: Info.cfg + patientNNN_4d.nii.gz, frames ED..ES
FRAMES = "frames"  # one 3D file or DICOM folder per frame, in time order

_EXPECTED_DATA = (
    "expected an ACDC root (patientNNN/Info.cfg folders), an ACDC patient folder, a CSV manifest "
    "(subject,timepoint,path[,time]), a 4D image / Slicer .seq.nrrd, or a folder of those "
    f"({', '.join(IMAGE_SUFFIXES)})"
)


@dataclass(frozen=True)
class SequenceSource:
    """One sequence found on disk: its subject, the layout it is stored in and the paths the reader takes."""

    subject: str
    layout: str
    paths: tuple[Path, ...]
    times: tuple[float, ...] | None = None

    def read(self) -> LongitudinalSequence:
        if self.layout == FOUR_D:
            return read_4d_image(self.paths[0], subject=self.subject)
        if self.layout == ACDC:
            return read_acdc_patient(self.paths[0])
        if self.layout == FRAMES:
            return read_frame_files(self.paths, subject=self.subject, times=self.times)
        raise ValueError(f"unknown layout {self.layout!r}; expected '{FOUR_D}', '{ACDC}' or '{FRAMES}'")

    def watched_files(self) -> list[Path]:
        """Every file whose change changes this sequence (for cache staleness)."""
        if self.layout == ACDC:
            folder = self.paths[0]
            return [folder / INFO_FILE, acdc_cine_file(folder)]
        files = []
        for path in self.paths:
            files.extend(sorted(Path(name) for name in dicom_series_files(path)) if path.is_dir() else [path])
        return files

    def describe(self) -> dict:
        """A JSON-able record of what is read and how (part of a cache entry's identity)."""
        return {
            "subject": self.subject,
            "layout": self.layout,
            "paths": [str(p) for p in self.paths],
            "times": None if self.times is None else list(self.times),
        }


def read_sequence(path: str | Path | Sequence[str | Path]) -> LongitudinalSequence:
    """The one sequence at `path`: a 4D file, a .seq.nrrd, an ACDC patient folder, a one-subject CSV
    manifest, or an ordered list of 3D files / DICOM folders."""
    if isinstance(path, (list, tuple)):
        return read_frame_files(path)
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; {_EXPECTED_DATA}")
    if path.is_dir() and not is_acdc_patient(path):
        if dicom_series_files(path):
            raise DataError(
                f"{path} holds one DICOM series, which is a single 3D volume; pass the DICOM folders of all "
                "timepoints in order (or list them in a CSV manifest)"
            )
        raise DataError(f"{path} is a folder of several sequences (or none); use discover_sequences() to list them")
    sources = discover_sequences(path)
    if len(sources) != 1:
        names = ", ".join(source.subject for source in sources[:5])
        raise DataError(f"{path} holds {len(sources)} sequences ({names}, ...); use discover_sequences() to list them")
    return sources[0].read()


def discover_sequences(path: str | Path) -> list[SequenceSource]:
    """Every sequence under a data path, in a stable order, with unique subjects."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; {_EXPECTED_DATA}")
    if path.is_file():
        sources = _sources_of_file(path)
    elif is_acdc_patient(path):
        sources = [SequenceSource(path.name, ACDC, (path,))]
    else:
        sources = [SequenceSource(folder.name, ACDC, (folder,)) for folder in list_acdc_patients(path)]
        if not sources:
            sources = [
                SequenceSource(subject_of_file(file), FOUR_D, (file,))
                for file in sorted(path.iterdir())
                if file.is_file() and has_image_suffix(file) and not file.name.startswith(".")
            ]
    if not sources:
        raise DataError(f"found no sequences under {path}; {_EXPECTED_DATA}")
    _check_unique_subjects(sources, path)
    return sources


def _sources_of_file(path: Path) -> list[SequenceSource]:
    if path.suffix.lower() == ".csv":
        return [SequenceSource(entry.subject, FRAMES, entry.paths, entry.times) for entry in read_manifest(path)]
    if has_image_suffix(path):
        return [SequenceSource(subject_of_file(path), FOUR_D, (path,))]
    raise DataError(f"{path} is neither a CSV manifest nor an image file; {_EXPECTED_DATA}")


def _check_unique_subjects(sources: list[SequenceSource], where: Path) -> None:
    seen: dict[str, SequenceSource] = {}
    for source in sources:
        if source.subject in seen:
            raise DataError(
                f"{where}: {seen[source.subject].paths[0]} and {source.paths[0]} both give subject '{source.subject}'; "
                "expected one sequence per subject (rename one of them)"
            )
        seen[source.subject] = source
