"""Reading one file that holds a whole sequence: 4D NIfTI / NRRD / MetaImage and Slicer's .seq.nrrd.

SimpleITK returns such a file in one of two shapes: a 4D scalar image (time = 4th axis, e.g. NIfTI
dim[4], a NRRD whose four axes are all "domain"), or a 3D image with one vector component per frame
(a NRRD with a "list" axis, which is what Slicer's Sequences module writes). Both are split into
3D frames that keep the 3D spacing, origin and direction.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sadm.errors import DataError
from sadm.io.checks import check_sequence
from sadm.io.images import describe, read_image
from sadm.io.reader import SequenceReader, SequenceSource, subject_of_file
from sadm.io.sequence import Geometry, LongitudinalSequence

# NRRD axis kinds whose components are parts of one value (a colour, a vector, a tensor), not frames.
_NON_TEMPORAL_KINDS = re.compile(r"color|tensor|symmetric|complex|quaternion|gradient|normal|point|[234]-vector")


class FourDImageReader(SequenceReader):
    """One file holding every frame: 4D NIfTI / NRRD / MetaImage or Slicer's .seq.nrrd."""

    name = "4d"
    describes = "a 4D image / Slicer .seq.nrrd"
    suffixes = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")

    def claims(self, path: Path) -> bool:
        return path.is_file() and self.has_suffix(path)

    def read(self, source: SequenceSource) -> LongitudinalSequence:
        return read_4d_image(source.paths[0], subject=source.subject)


def read_4d_image(path: Path, subject: str | None = None) -> LongitudinalSequence:
    """All frames of a 4D image or Slicer sequence file, with times when the file declares them."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder; expected a 4D image file (.nii.gz, .nrrd, .seq.nrrd, .mha)")
    image = read_image(path)
    if image.GetDimension() == 4 and image.GetNumberOfComponentsPerPixel() == 1:
        frames, geometry, times, metadata = _split_4d_scalar(image, path)
    elif image.GetDimension() == 3 and image.GetNumberOfComponentsPerPixel() > 1:
        frames, geometry, times, metadata = _split_components(image, path)
    elif _declares_one_frame(image):
        raise DataError(f"{path} is a sequence of 1 frame; a longitudinal sequence needs at least 2")
    else:
        raise DataError(
            f"{path} is {describe(image)}; expected a 4D image with time as the 4th axis (or a Slicer .seq.nrrd). "
            "For one 3D file per timepoint, list the files in order (or in a CSV manifest)"
        )
    sequence = LongitudinalSequence(
        frames=frames,
        geometries=[geometry] * len(frames),
        sources=[str(path)] * len(frames),
        subject=subject if subject is not None else subject_of_file(path),
        times=times,
        metadata=metadata,
    )
    return check_sequence(sequence, str(path))


def _split_4d_scalar(image: sitk.Image, path: Path):
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(4, 4)
    coupling = max(np.abs(direction[:3, 3]).max(), np.abs(direction[3, :3]).max())
    if coupling > 1e-6:
        raise DataError(
            f"{path} has a 4D direction matrix that mixes space and time (off-block entries up to {coupling:.3g}); "
            "expected a time axis independent of the three spatial axes"
        )
    geometry = Geometry(
        spacing=tuple(float(s) for s in image.GetSpacing()[:3]),
        origin=tuple(float(o) for o in image.GetOrigin()[:3]),
        direction=tuple(float(d) for d in direction[:3, :3].ravel()),
    )
    volumes = sitk.GetArrayViewFromImage(image)  # (t, k, j, i)
    frames = [np.array(volumes[t], dtype=np.float32) for t in range(volumes.shape[0])]
    time_step, time_origin = float(image.GetSpacing()[3]), float(image.GetOrigin()[3])
    times = [time_origin + time_step * t for t in range(len(frames))] if time_step > 0 else None
    return frames, geometry, times, {"reader": "4d", "time_step": time_step, "time_origin": time_origin}


def _split_components(image: sitk.Image, path: Path):
    kind = image.GetMetaData("NRRD_kinds[pixel]") if image.HasMetaDataKey("NRRD_kinds[pixel]") else ""
    if _NON_TEMPORAL_KINDS.search(kind.lower()):
        raise DataError(
            f"{path} is {describe(image)} of NRRD kind '{kind}' (the components form one value, not frames); "
            "expected a 'list' axis of frames as Slicer's .seq.nrrd files have"
        )
    volumes = sitk.GetArrayViewFromImage(image)  # (k, j, i, t)
    frames = [np.array(volumes[..., t], dtype=np.float32) for t in range(volumes.shape[-1])]
    metadata = {"reader": "seq.nrrd" if kind == "list" else "4d"}
    times = None
    index_type, index_values = _sequence_index(image)
    if index_values is not None:
        metadata.update(index_type=index_type, index_values=index_values)
        if len(index_values) != len(frames):
            raise DataError(
                f"{path} lists {len(index_values)} sequence index values for {len(frames)} frames; "
                "expected one index value per frame"
            )
        if index_type != "text":
            try:
                times = [float(value) for value in index_values]
            except ValueError:
                raise DataError(
                    f"{path} has numeric sequence index values that are not numbers ({' '.join(index_values)})"
                ) from None
    for key in ("NRRD_labels[pixel]", "NRRD_units[pixel]"):
        if image.HasMetaDataKey(key):
            metadata["index_name" if "labels" in key else "index_unit"] = image.GetMetaData(key)
    return frames, Geometry.of_image(image), times, metadata


def _declares_one_frame(image: sitk.Image) -> bool:
    """SimpleITK drops a time axis of size 1: a 4D NIfTI with dim[4] = 1, a .seq.nrrd of one item."""
    if image.HasMetaDataKey("dim[0]") and image.HasMetaDataKey("dim[4]"):
        return int(image.GetMetaData("dim[0]")) >= 4 and int(image.GetMetaData("dim[4]")) == 1
    return _sequence_index(image)[1] is not None


def _sequence_index(image: sitk.Image) -> tuple[str, list[str] | None]:
    """Slicer's `axis <A> index type:=numeric|text` and `axis <A> index values:=v0 v1 ...` fields.

    The list axis is 0 in files from Slicer ≤ 5.8 and 3 in later ones; either is accepted.
    """
    index_type, index_values = "numeric", None
    for key in image.GetMetaDataKeys():
        match = re.fullmatch(r"axis (\d+) index (type|values)", key)
        if match and match.group(2) == "type":
            index_type = image.GetMetaData(key).strip()
        elif match:
            index_values = image.GetMetaData(key).split()
    return index_type, index_values
