"""Training data for Alg. 1: a torch Dataset over the sequence cache, batching, and subject splits."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from sadm.data.cache import CacheEntry, build_cache, read_cache
from sadm.data.preprocess import PreprocessParams
from sadm.errors import ConfigError
from sadm.io.readers import discover_sequences


class SequenceDataset(Dataset):
    """Cached sequences as dict(frames=(L, k, j, i) float32 in [0, 1], length=L, times=(L,),
    frame_ranges=(L, 2), subject)."""

    def __init__(self, entries: Sequence[CacheEntry]) -> None:
        self.entries = list(entries)

    @classmethod
    def from_cache(cls, cache_dir: str | Path, subjects: Iterable[str] | None = None) -> SequenceDataset:
        """The cache's sequences, optionally only those of `subjects` (e.g. one side of `split_subjects`)."""
        entries = read_cache(cache_dir)
        return cls(entries).restricted_to(subjects) if subjects is not None else cls(entries)

    @property
    def subjects(self) -> list[str]:
        return [entry.subject for entry in self.entries]

    def restricted_to(self, subjects: Iterable[str]) -> SequenceDataset:
        """The sequences of `subjects` only, in the dataset's order; unknown subjects are an error."""
        wanted = set(subjects)
        unknown = wanted - set(self.subjects)
        if unknown:
            raise ConfigError(f"subjects {sorted(unknown)[:5]} are not in this dataset (it has {len(self)} sequences)")
        return SequenceDataset([entry for entry in self.entries if entry.subject in wanted])

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        entry = self.entries[index]
        frames = torch.from_numpy(np.array(entry.load(), dtype=np.float32))  # copy out of the read-only map
        return {
            "frames": frames,
            "length": int(frames.shape[0]),
            "times": torch.tensor(entry.times, dtype=torch.float32),
            "frame_ranges": torch.tensor(entry.frame_ranges, dtype=torch.float32).reshape(-1, 2),
            "subject": entry.subject,
        }


def collate_sequences(items: Sequence[dict], max_frames: int | None = None) -> dict:
    """Pad sequences of different lengths into one batch.

    Returns frames (B, Lmax, k, j, i) zero-padded, lengths (B,) int64, times (B, Lmax) (padding repeats
    each sequence's last time), frame_ranges (B, Lmax, 2) (padding [0, 1]), subjects list[str]. Sequences longer than `max_frames` keep their first
    `max_frames` frames (frame 1 conditions everything after it, so the start is what matters).
    """
    if not items:
        raise ConfigError("collate_sequences got an empty batch; expected at least one sequence")
    lengths = [min(item["length"], max_frames) if max_frames else item["length"] for item in items]
    grids = {tuple(item["frames"].shape[1:]) for item in items}
    if len(grids) != 1:
        raise ConfigError(
            f"sequences of one batch must share a grid; got {sorted(grids)} (preprocess them with one grid)"
        )
    longest = max(lengths)
    frames = items[0]["frames"].new_zeros((len(items), longest, *grids.pop()))
    times = torch.zeros(len(items), longest, dtype=torch.float32)
    ranges = torch.tensor([0.0, 1.0]).repeat(len(items), longest, 1)
    for b, (item, length) in enumerate(zip(items, lengths)):
        frames[b, :length] = item["frames"][:length]
        times[b, :length] = item["times"][:length]
        times[b, length:] = item["times"][length - 1]
        if "frame_ranges" in item:
            ranges[b, :length] = item["frame_ranges"][:length]
    return {
        "frames": frames,
        "lengths": torch.tensor(lengths, dtype=torch.int64),
        "times": times,
        "frame_ranges": ranges,
        "subjects": [item["subject"] for item in items],
    }


def split_subjects(subjects: Iterable[str], val_fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """Deterministic (train, validation) split by subject, independent of the input order, so that no
    subject's scans leak across the split. At least one subject stays on each side when there are two
    or more and `val_fraction` > 0."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction {val_fraction} must be in [0, 1)")
    unique = sorted(set(subjects))
    random.Random(seed).shuffle(unique)
    count = round(len(unique) * val_fraction)
    if val_fraction > 0 and len(unique) >= 2:
        count = min(max(count, 1), len(unique) - 1)
    validation = sorted(unique[:count])
    train = sorted(unique[count:])
    return train, validation


def load_training_data(
    data_path: str | Path,
    cache_dir: str | Path,
    grid: Sequence[int],
    num_frames: int | None = None,
    clip_percentiles: Sequence[float] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> SequenceDataset:
    """Discover every sequence under `data_path`, bring the cache up to date, and return the dataset."""
    params = PreprocessParams(
        grid=tuple(grid),
        num_frames=num_frames,
        clip_percentiles=None if clip_percentiles is None else tuple(clip_percentiles),
    )
    update = build_cache(discover_sequences(data_path), cache_dir, params, progress)
    return SequenceDataset(update.entries)
