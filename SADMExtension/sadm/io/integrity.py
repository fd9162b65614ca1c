"""Checks of NIfTI files that SimpleITK would otherwise read without complaint.

SimpleITK's NIfTI reader fills the missing voxels of a truncated .nii / .nii.gz with zeros and turns
NaN/Inf voxels into 0, raising nothing, so a half-copied ACDC file would train the model on black
frames. One streaming pass over the file checks both. (NRRD, MetaImage and DICOM readers report
short files themselves and keep NaN/Inf, which the readers then refuse.)
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sadm.errors import DataError

_CHUNK_BYTES = 1 << 22
_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype codes of float32 / float64


@dataclass(frozen=True)
class _NiftiHeader:
    endian: str
    dims: tuple[int, ...]  # sizes along the used axes (x, y, z, t, ...)
    datatype: int
    bitpix: int
    vox_offset: int

    @property
    def voxel_count(self) -> int:
        return int(np.prod([max(size, 1) for size in self.dims], dtype=np.int64))


def is_nifti(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def check_nifti(path: Path) -> None:
    """Raise DataError unless `path` holds every voxel its header promises, none of them NaN/Inf."""
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as stream:
            start = stream.read(544)
            header = _parse_header(start, path)
            available, first_bad, bad_count = _scan_voxels(stream, start, header)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path} is not a complete NIfTI file ({error}); re-copy or re-export it") from None
    expected = header.vox_offset + header.voxel_count * header.bitpix // 8
    if available < expected:
        raise DataError(
            f"{path} is truncated: its NIfTI header promises {expected} bytes (header + voxels) but the file holds "
            f"{available}; re-copy or re-export it"
        )
    if bad_count:
        frame_voxels = int(np.prod([max(size, 1) for size in header.dims[:3]]))
        raise DataError(
            f"{path} holds {bad_count} NaN/Inf voxels (the first in frame {first_bad // frame_voxels}); replace them "
            "(e.g. with 0) before training"
        )


def _parse_header(start: bytes, path: Path) -> _NiftiHeader:
    for endian in "<>":
        if len(start) >= 348 and struct.unpack(endian + "i", start[:4])[0] == 348:
            dims = struct.unpack(endian + "8h", start[40:56])
            datatype, bitpix = struct.unpack(endian + "2h", start[70:74])
            vox_offset = max(int(struct.unpack(endian + "f", start[108:112])[0]), 348)
            break
        if len(start) >= 540 and struct.unpack(endian + "i", start[:4])[0] == 540:
            datatype, bitpix = struct.unpack(endian + "2h", start[12:16])
            dims = struct.unpack(endian + "8q", start[16:80])
            vox_offset = max(struct.unpack(endian + "q", start[168:176])[0], 540)
            break
    else:
        raise DataError(f"{path} does not start with a NIfTI-1 or NIfTI-2 header (sizeof_hdr 348 or 540)")
    used = tuple(int(size) for size in dims[1 : 1 + max(0, min(int(dims[0]), 7))])
    return _NiftiHeader(endian, used, int(datatype), max(int(bitpix), 8), int(vox_offset))


def _scan_voxels(stream, start: bytes, header: _NiftiHeader) -> tuple[int, int, int]:
    """Bytes available in the file, and the index of the first and the count of non-finite voxels."""
    dtype = np.dtype(header.endian + _FLOAT_TYPES[header.datatype]) if header.datatype in _FLOAT_TYPES else None
    available = len(start)
    pending = start[header.vox_offset :]
    if len(start) < header.vox_offset:
        skipped = stream.read(header.vox_offset - len(start))
        available += len(skipped)
        pending = b""
    voxels_seen, first_bad, bad_count = 0, -1, 0
    while True:
        if dtype is not None and voxels_seen < header.voxel_count:
            usable = len(pending) // dtype.itemsize * dtype.itemsize
            values = np.frombuffer(pending[:usable], dtype=dtype)[: header.voxel_count - voxels_seen]
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size and first_bad < 0:
                first_bad = voxels_seen + int(bad[0])
            bad_count += int(bad.size)
            voxels_seen += values.size
            pending = pending[usable:]
        chunk = stream.read(_CHUNK_BYTES)
        if not chunk:
            return available, first_bad, bad_count
        available += len(chunk)
        pending = pending + chunk if dtype is not None else b""
