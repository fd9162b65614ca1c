"""On-disk cache of preprocessed sequences: one float32 .npy per sequence plus a JSON index.

Preprocessing a 4D cine takes seconds; an epoch reads every sequence many times, so each source is
preprocessed once and later memory-mapped. The index records every source file's path, mtime and
size and the preprocessing parameters, so a changed source or changed parameters rebuild that entry.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from sadm.data.preprocess import PreprocessParams, preprocess_sequence
from sadm.errors import DataError
from sadm.io.readers import SequenceSource
from sadm.storage.atomic import atomic_path

INDEX_FILE = "index.json"
CACHE_FORMAT = "sadm-sequence-cache"
CACHE_VERSION = 2  # 2: frame_ranges


@dataclass(frozen=True)
class CacheEntry:
    """One cached sequence: (length, k, j, i) float32 in [0, 1] at `array_path`, and its times."""

    subject: str
    array_path: Path
    length: int
    times: tuple[float, ...]
    frame_ranges: tuple[tuple[float, float], ...]  # each frame's own [low, high] in the cached window

    def load(self) -> np.ndarray:
        """The frames, memory-mapped read-only (never unpickled)."""
        return np.load(self.array_path, mmap_mode="r", allow_pickle=False)


@dataclass(frozen=True)
class CacheUpdate:
    """What `build_cache` left in the cache, and which subjects it had to preprocess this time."""

    entries: tuple[CacheEntry, ...]
    rebuilt: tuple[str, ...]
    reused: tuple[str, ...]


def build_cache(
    sources: Sequence[SequenceSource],
    cache_dir: str | Path,
    params: PreprocessParams,
    progress: Callable[[int, int, str], None] | None = None,
) -> CacheUpdate:
    """Preprocess every source whose entry is missing or stale; reuse the others.

    All or nothing: if any source fails, the arrays written by this call are removed and the index
    is left as it was. Arrays of entries that are rebuilt or no longer discovered are deleted after
    the new index is in place.
    """
    subjects = [source.subject for source in sources]
    repeated = sorted({subject for subject in subjects if subjects.count(subject) > 1})
    if repeated:
        raise DataError(f"subjects {repeated} appear more than once; the cache keeps one sequence per subject")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    old_records = {record["subject"]: record for record in _read_index(cache_dir)}
    wanted_params = _as_json(params.as_dict())
    records, rebuilt, reused, written = [], [], [], []
    try:
        for done, source in enumerate(sources):
            fingerprint = _as_json(source_fingerprint(source))
            old = old_records.get(source.subject)
            if old is not None and _is_fresh(old, fingerprint, wanted_params, cache_dir):
                records.append(old)
                reused.append(source.subject)
            else:
                record = _preprocess_into(cache_dir, source, fingerprint, params, wanted_params)
                written.append(cache_dir / record["array"])
                records.append(record)
                rebuilt.append(source.subject)
            if progress is not None:
                progress(done + 1, len(sources), source.subject)
        _write_index(cache_dir, records)
    except BaseException:
        still_used = {record["array"] for record in old_records.values()}
        for path in written:
            if path.name not in still_used:
                path.unlink(missing_ok=True)
        raise
    in_use = {record["array"] for record in records}
    for record in old_records.values():
        if record["array"] not in in_use:
            (cache_dir / record["array"]).unlink(missing_ok=True)
    return CacheUpdate(tuple(_entry_of(cache_dir, r) for r in records), tuple(rebuilt), tuple(reused))


def read_cache(cache_dir: str | Path) -> list[CacheEntry]:
    """The entries of an existing cache, as last built (no staleness check)."""
    cache_dir = Path(cache_dir)
    if not (cache_dir / INDEX_FILE).is_file():
        raise DataError(f"{cache_dir} has no {INDEX_FILE}; build the cache first (build_cache / load_training_data)")
    return [_entry_of(cache_dir, record) for record in _read_index(cache_dir)]


def source_fingerprint(source: SequenceSource) -> dict:
    """What was read (layout, paths, times) and the path, mtime and size of every file it depends on."""
    files = []
    for path in source.watched_files():
        try:
            stat = Path(path).stat()
        except OSError as error:
            raise DataError(
                f"cannot read {path} ({error.strerror}); it is part of subject '{source.subject}'"
            ) from None
        files.append({"path": str(path), "mtime_ns": stat.st_mtime_ns, "size": stat.st_size})
    return {**source.describe(), "files": files}


def _preprocess_into(
    cache_dir: Path, source: SequenceSource, fingerprint: dict, params: PreprocessParams, wanted_params: dict
) -> dict:
    prepared = preprocess_sequence(source.read(), params)
    digest = hashlib.sha1(json.dumps([fingerprint, wanted_params], sort_keys=True).encode()).hexdigest()[:12]
    name = f"{re.sub(r'[^A-Za-z0-9._-]+', '_', source.subject)[:64]}-{digest}.npy"
    frames = np.ascontiguousarray(prepared.frames, dtype=np.float32)
    _write_atomically(cache_dir / name, lambda stream: np.save(stream, frames, allow_pickle=False))
    return {
        "subject": source.subject,
        "array": name,
        "shape": list(prepared.frames.shape),
        "times": [float(t) for t in prepared.times],
        "intensity_range": [prepared.intensity.low, prepared.intensity.high],
        "frame_ranges": prepared.frame_ranges.tolist(),
        "params": wanted_params,
        "source": fingerprint,
    }


def _is_fresh(record: dict, fingerprint: dict, wanted_params: dict, cache_dir: Path) -> bool:
    if record.get("source") != fingerprint or record.get("params") != wanted_params:
        return False
    try:
        return list(np.load(cache_dir / record["array"], mmap_mode="r", allow_pickle=False).shape) == record["shape"]
    except (OSError, ValueError, KeyError):
        return False  # array missing or damaged: rebuild it


def _read_index(cache_dir: Path) -> list[dict]:
    path = cache_dir / INDEX_FILE
    if not path.is_file():
        return []
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        warnings.warn(f"{path} is unreadable ({error}); every entry will be rebuilt", stacklevel=3)
        return []
    if not isinstance(index, dict) or index.get("format") != CACHE_FORMAT:
        found = index.get("format") if isinstance(index, dict) else None
        raise DataError(
            f"{path} is not a SADM sequence cache index (format {found!r}); choose an empty or SADM cache folder"
        )
    if index.get("version") != CACHE_VERSION:
        return []  # written by another cache version: rebuild everything
    return list(index.get("entries", []))


def _write_index(cache_dir: Path, records: list[dict]) -> None:
    index = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "entries": records}
    text = json.dumps(index, indent=1).encode("utf-8")
    _write_atomically(cache_dir / INDEX_FILE, lambda stream: stream.write(text))


def _write_atomically(path: Path, write: Callable) -> None:
    """Readers see the old file or the complete new one, never half of it."""
    with atomic_path(path) as staging, open(staging, "wb") as stream:
        write(stream)


def _entry_of(cache_dir: Path, record: dict) -> CacheEntry:
    return CacheEntry(
        record["subject"],
        cache_dir / record["array"],
        int(record["shape"][0]),
        tuple(record["times"]),
        tuple((float(low), float(high)) for low, high in record["frame_ranges"]),
    )


def _as_json(value: dict) -> dict:
    """Round-trip through JSON so tuples compare equal to the lists read back from the index."""
    return json.loads(json.dumps(value))
