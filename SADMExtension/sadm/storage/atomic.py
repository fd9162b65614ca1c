"""Whole-or-nothing writes of files and folders (temp beside the target + one rename), shared by
checkpoints, the data cache, image writers and command outputs. Torch-free."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_path(path: Path | str, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside `path` (same folder, so the rename is atomic; ending in `suffix`,
    so format-by-extension writers such as SimpleITK pick the right format). When the block
    succeeds the temp file is synced and renamed onto `path`; on failure it is removed and `path`
    is untouched, so readers see the old file or the complete new one, never half of it."""
    path = Path(path)
    stem = path.name[: -len(suffix)] if suffix and path.name.lower().endswith(suffix) else path.name
    staging = path.parent / f".{stem}.{secrets.token_hex(4)}.tmp{suffix}"
    try:
        yield staging
        _fsync(staging)
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write a file so that a reader sees the old content or the new one, never a half."""
    with atomic_path(path) as staging:
        staging.write_bytes(data)


@contextlib.contextmanager
def atomic_folder(folder: Path | str) -> Iterator[Path]:
    """Yield an empty staging folder beside `folder`; on success it replaces `folder` in one
    rename (an existing folder is retired first and restored if the swap fails), so a reader sees
    the previous folder or the new one whole. On failure the staging folder is removed."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.{secrets.token_hex(4)}.tmp"
    staging.mkdir()
    try:
        yield staging
        _replace_folder(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _replace_folder(staging: Path, folder: Path) -> None:
    if not folder.exists():
        os.replace(staging, folder)
        return
    retired = folder.parent / f".{folder.name}.{secrets.token_hex(4)}.old"
    os.replace(folder, retired)
    try:
        os.replace(staging, folder)
    except BaseException:
        os.replace(retired, folder)
        raise
    shutil.rmtree(retired, ignore_errors=True)
