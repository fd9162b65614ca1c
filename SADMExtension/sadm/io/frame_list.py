"""Reading a sequence given as one 3D file (NIfTI, NRRD, MetaImage) or DICOM folder per timepoint, and
reading one such volume alone (`sadm generate`'s single-image input)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import SimpleITK as sitk

from sadm.errors import DataError
from sadm.io.checks import check_sequence
from sadm.io.dicom import dicom_series_files
from sadm.io.images import read_volume
from sadm.io.reader import SequenceReader, SequenceSource
from sadm.io.sequence import LongitudinalSequence

_VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


class FrameFilesReader(SequenceReader):
    """An ordered list of 3D files / DICOM series folders, one per timepoint (a CSV manifest's rows, or
    several `--input` paths); no single path selects it."""

    name = "frames"

    def claims(self, path: Path) -> bool:
        return False

    def read(self, source: SequenceSource) -> LongitudinalSequence:
        return read_frame_files(source.paths, subject=source.subject, times=source.times)

    def watched_files(self, source: SequenceSource) -> list[Path]:
        return [file for path in source.paths for file in files_of(path)]


class OneVolumeReader(SequenceReader):
    """A path holding one 3D volume (`read_volume` reads it): a one-frame sequence named by the path."""

    one_volume = True

    def sources(self, path: Path) -> list[SequenceSource]:
        return [SequenceSource(path.name, self.name, (path,))]

    def read(self, source: SequenceSource) -> LongitudinalSequence:
        volume, geometry = read_volume(source.paths[0])
        return LongitudinalSequence([volume], [geometry], [str(source.paths[0])], subject=source.subject)


class VolumeFileReader(OneVolumeReader):
    """One 3D scalar image file (NIfTI, NRRD, MetaImage)."""

    name = "volume"
    describes = "a 3D image file"

    def claims(self, path: Path) -> bool:
        if not (path.is_file() and path.name.lower().endswith(_VOLUME_SUFFIXES)):
            return False
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            return False  # the sequence readers report what is wrong with it
        return reader.GetDimension() == 3 and reader.GetNumberOfComponents() == 1


def read_frame_files(
    paths: Sequence[str | Path], subject: str = "", times: Sequence[float] | None = None
) -> LongitudinalSequence:
    """Frames in the order given; each keeps its own geometry (grids are reconciled in preprocessing)."""
    paths = [Path(p) for p in paths]
    if times is not None and len(times) != len(paths):
        raise DataError(f"got {len(times)} times for {len(paths)} frame files; give one time per file or none")
    frames, geometries = [], []
    for path in paths:
        volume, geometry = read_volume(path)
        frames.append(volume)
        geometries.append(geometry)
    sequence = LongitudinalSequence(
        frames=frames,
        geometries=geometries,
        sources=[str(p) for p in paths],
        subject=subject,
        times=None if times is None else [float(t) for t in times],
        metadata={"reader": "frames"},
    )
    where = f"the sequence of subject '{subject}'" if subject else f"the sequence {[str(p) for p in paths]}"
    return check_sequence(sequence, where)


def files_of(path: Path) -> list[Path]:
    """The file, or the slice files of the DICOM series in a folder (what a cache watches)."""
    return sorted(Path(name) for name in dicom_series_files(path)) if path.is_dir() else [path]
