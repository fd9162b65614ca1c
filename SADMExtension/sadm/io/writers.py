"""Writing generated volumes and sequences to files that Slicer (and every reader here) loads back with
the right geometry; every write is atomic, so an interrupted run never leaves a half file.

`write_volume` writes one 3D volume (NRRD, NIfTI or MetaImage by extension, through SimpleITK).
`write_sequence` writes a Slicer volume sequence file (.seq.nrrd) in the layout that Slicer ≥ 5.9's
vtkMRMLVolumeSequenceStorageNode writes: a gzip NRRD with three spatial "domain" axes (LPS space
directions) and a fourth "list" axis of frames whose `axis 3 index type` / `axis 3 index values`
fields and axis label / unit become the sequence's index in the Sequences module.
"""

from __future__ import annotations

import contextlib
import gzip
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sadm.errors import DataError
from sadm.io.images import sitk_reason
from sadm.io.sequence import Geometry
from sadm.storage.atomic import atomic_path

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")  # single-file formats: one rename makes them whole
SEQUENCE_SUFFIX = ".seq.nrrd"

# numpy dtype -> NRRD "type" field (the names Slicer writes).
_NRRD_TYPES = {
    "int8": "signed char",
    "uint8": "unsigned char",
    "int16": "short",
    "uint16": "unsigned short",
    "int32": "int",
    "uint32": "unsigned int",
    "int64": "long long int",
    "uint64": "unsigned long long int",
    "float32": "float",
    "float64": "double",
}
# Level 1 compresses image data nearly as well as the default level at a fraction of the time.
_GZIP_LEVEL = 1


def write_volume(path: str | Path, array: np.ndarray, geometry: Geometry) -> Path:
    """Write one (k, j, i) volume with its geometry, compressed; the format follows the extension."""
    path = Path(path)
    suffix = _volume_suffix(path)
    volume = _as_writable(np.asarray(array), f"the volume for {path}")
    if volume.ndim != 3:
        raise DataError(f"cannot write {path}: the volume has shape {volume.shape}; expected a 3D (k, j, i) array")
    image = geometry.apply_to(sitk.GetImageFromArray(volume))
    with _atomic_path(path, suffix) as staging:
        try:
            sitk.WriteImage(image, str(staging), useCompression=True)
        except RuntimeError as error:
            reason = sitk_reason(error)
            raise DataError(f"cannot write {path} ({reason}); check the folder exists and is writable") from None
    return path


def write_sequence(
    path: str | Path,
    frames: Sequence[np.ndarray],
    geometries: Geometry | Sequence[Geometry],
    times: Sequence[float] | None = None,
    time_unit: str | None = None,
    index_name: str | None = None,
) -> Path:
    """Write frames (each (k, j, i), one shared grid) as a Slicer .seq.nrrd.

    `times` become the numeric index values (e.g. ms in the cardiac cycle, named "time"); without them
    the index is the frame number, named "frame". A .seq.nrrd has one geometry for every frame, so
    frames on different grids are refused rather than silently misplaced.
    """
    path = Path(path)
    if not path.name.lower().endswith(SEQUENCE_SUFFIX):
        raise DataError(f"cannot write {path}: a Slicer sequence file must end in '{SEQUENCE_SUFFIX}'; rename it")
    volumes = _stack_frames(frames, path)
    geometry = _shared_geometry(geometries, len(volumes), path)
    index_values, index_name = _sequence_index(times, len(volumes), index_name, path)
    header = _sequence_header(volumes, geometry, index_values, index_name, time_unit)
    with _atomic_path(path, SEQUENCE_SUFFIX) as staging, open(staging, "xb") as handle:
        handle.write(header.encode("utf-8"))
        with gzip.GzipFile(fileobj=handle, mode="wb", compresslevel=_GZIP_LEVEL, mtime=0) as stream:
            for volume in volumes:  # NRRD order: i fastest, then j, k, frame = C order of (t, k, j, i)
                stream.write(np.ascontiguousarray(volume, dtype=volume.dtype.newbyteorder("<")).tobytes())
    return path


def _volume_suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in VOLUME_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    raise DataError(
        f"cannot write {path}: unknown or multi-file image extension; use one of {', '.join(VOLUME_SUFFIXES)}"
    )


def _as_writable(array: np.ndarray, what: str) -> np.ndarray:
    """Booleans become uint8 (no image format stores bits); other types must be ones NRRD knows."""
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if array.dtype.name not in _NRRD_TYPES:
        raise DataError(f"{what} has dtype {array.dtype}; expected an integer or float32/float64 array")
    return array


def _stack_frames(frames: Sequence[np.ndarray], path: Path) -> list[np.ndarray]:
    """Every frame 3D, of one shape, converted to one common dtype (a NRRD has a single voxel type)."""
    volumes = [np.asarray(frame) for frame in frames]
    if not volumes:
        raise DataError(f"cannot write {path}: no frames given; a sequence needs at least one")
    for index, volume in enumerate(volumes):
        if volume.ndim != 3:
            raise DataError(
                f"cannot write {path}: frame {index} has shape {volume.shape}; expected a 3D (k, j, i) array"
            )
        if volume.shape != volumes[0].shape:
            raise DataError(
                f"cannot write {path}: frame {index} has shape {volume.shape} but frame 0 has {volumes[0].shape}; "
                "resample every frame onto frame 0's grid first (sadm.data.preprocess.align_frames_to_first)"
            )
    dtype = np.result_type(*volumes)
    return [
        _as_writable(volume.astype(dtype, copy=False), f"frame {index} for {path}")
        for index, volume in enumerate(volumes)
    ]


def _shared_geometry(geometries: Geometry | Sequence[Geometry], count: int, path: Path) -> Geometry:
    if isinstance(geometries, Geometry):
        return geometries
    geometries = list(geometries)
    if len(geometries) != count:
        raise DataError(
            f"cannot write {path}: {len(geometries)} geometries for {count} frames; give one per frame or one for all"
        )
    for index, geometry in enumerate(geometries):
        if not geometry.is_close(geometries[0]):
            raise DataError(
                f"cannot write {path}: frame {index} lies on another grid than frame 0 (spacing {geometry.spacing} vs "
                f"{geometries[0].spacing}, origin {geometry.origin} vs {geometries[0].origin}); a .seq.nrrd holds one "
                "grid — resample the frames onto frame 0's grid first (sadm.data.preprocess.align_frames_to_first)"
            )
    return geometries[0]


def _sequence_index(
    times: Sequence[float] | None, count: int, index_name: str | None, path: Path
) -> tuple[list[str], str]:
    """(numeric index values, index name): the given times, else frame numbers."""
    if times is None:
        return [str(index) for index in range(count)], index_name or "frame"
    values = [float(t) for t in times]
    if len(values) != count:
        raise DataError(f"cannot write {path}: {len(values)} times for {count} frames; give one time per frame or none")
    if not all(np.isfinite(values)):
        raise DataError(f"cannot write {path}: times {values} hold NaN/Inf; give finite times or none")
    return [format(value, ".17g") for value in values], index_name or "time"


def _sequence_header(
    volumes: list[np.ndarray],
    geometry: Geometry,
    index_values: list[str],
    index_name: str,
    index_unit: str | None,
) -> str:
    """The NRRD header Slicer writes for a volume sequence (LPS space, list axis last)."""
    direction = np.asarray(geometry.direction, dtype=np.float64).reshape(3, 3)
    axes = [direction[:, axis] * geometry.spacing[axis] for axis in range(3)]  # columns are the i, j, k axes
    depth, rows, columns = volumes[0].shape
    lines = [
        "NRRD0004",
        "# Complete NRRD file format specification at:",
        "# http://teem.sourceforge.net/nrrd/format.html",
        f"type: {_NRRD_TYPES[volumes[0].dtype.name]}",
        "dimension: 4",
        "space: left-posterior-superior",
        f"sizes: {columns} {rows} {depth} {len(volumes)}",
        "space directions: " + " ".join(_vector(axis) for axis in axes) + " none",
        "kinds: domain domain domain list",
        f'labels: "" "" "" {_quoted(index_name)}',
        f'units: "" "" "" {_quoted(index_unit or "")}',
        "endian: little",
        "encoding: gzip",
        f"space origin: {_vector(geometry.origin)}",
        "DataNodeClassName:=vtkMRMLScalarVolumeNode",
        "axis 3 index type:=numeric",
        "axis 3 index values:=" + " ".join(index_values),
    ]
    return "\n".join(lines) + "\n\n"


def _vector(values: Sequence[float]) -> str:
    return "(" + ",".join(format(float(v), ".17g") for v in values) + ")"


def _quoted(text: str) -> str:
    if any(c in text for c in '"\n\\'):
        raise DataError(f"sequence index name/unit {text!r} holds a quote, backslash or newline; use plain text")
    return f'"{text}"'


@contextlib.contextmanager
def _atomic_path(path: Path, suffix: str) -> Iterator[Path]:
    """`sadm.storage.atomic.atomic_path`, refusing a missing folder with a message that says what to do."""
    if not path.parent.is_dir():
        raise DataError(f"cannot write {path}: folder {path.parent} does not exist; create it first")
    with atomic_path(path, suffix) as staging:
        yield staging
