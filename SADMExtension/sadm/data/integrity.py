"""Completeness checks for files that SimpleITK would otherwise read without complaint.

SimpleITK's NIfTI reader fills the missing voxels of a truncated .nii / .nii.gz with zeros and
raises nothing, so a half-copied ACDC file would train the model on black frames. NRRD, MetaImage
and DICOM readers do report short files themselves.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

from sadm.errors import DataError

_CHUNK_BYTES = 1 << 20


def is_nifti(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def check_nifti_complete(path: Path) -> None:
    """Raise DataError unless `path` holds every byte its NIfTI-1/-2 header promises."""
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as stream:
                header = stream.read(544)
                available = len(header) + _count_remaining_bytes(stream)
        else:
            with open(path, "rb") as stream:
                header = stream.read(544)
            available = path.stat().st_size
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path} is not a complete gzip-compressed NIfTI file ({error}); re-copy or re-export it") from None
    expected = _nifti_expected_bytes(header, path)
    if available < expected:
        raise DataError(
            f"{path} is truncated: its NIfTI header promises {expected} bytes (header + voxels) but the file holds "
            f"{available}; re-copy or re-export it"
        )


def _count_remaining_bytes(stream) -> int:
    total = 0
    while chunk := stream.read(_CHUNK_BYTES):
        total += len(chunk)
    return total


def _nifti_expected_bytes(header: bytes, path: Path) -> int:
    for endian in "<>":
        if len(header) >= 348 and struct.unpack(endian + "i", header[:4])[0] == 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            bitpix = struct.unpack(endian + "h", header[72:74])[0]
            vox_offset = max(int(struct.unpack(endian + "f", header[108:112])[0]), 348)
            break
        if len(header) >= 540 and struct.unpack(endian + "i", header[:4])[0] == 540:
            bitpix = struct.unpack(endian + "h", header[14:16])[0]
            dims = struct.unpack(endian + "8q", header[16:80])
            vox_offset = max(struct.unpack(endian + "q", header[168:176])[0], 540)
            break
    else:
        raise DataError(f"{path} does not start with a NIfTI-1 or NIfTI-2 header (sizeof_hdr 348 or 540)")
    voxels = 1
    for size in dims[1 : 1 + max(0, min(int(dims[0]), 7))]:
        voxels *= max(int(size), 1)
    return vox_offset + voxels * max(int(bitpix), 8) // 8
