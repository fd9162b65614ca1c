"""CSV manifests: one row per scan, `subject,timepoint,path[,time]`, one sequence per subject; read by
`ManifestReader`, written by `write_manifest` (the one place the format is written).

`path` is relative to the CSV's folder unless absolute (a 3D file or a DICOM series folder);
`timepoint` orders a subject's rows; `time` (optional, e.g. age in years) is the frame's position.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sadm.errors import DataError
from sadm.io.frame_list import FrameFilesReader
from sadm.io.reader import SequenceReader, SequenceSource
from sadm.io.sequence import LongitudinalSequence
from sadm.storage.atomic import atomic_write_bytes

REQUIRED_COLUMNS = ("subject", "timepoint", "path")
COLUMNS = (*REQUIRED_COLUMNS, "time")


class ManifestReader(SequenceReader):
    """A CSV manifest: its subjects' rows become one ordered list of frame files each."""

    name = "manifest"
    describes = "a CSV manifest (subject,timepoint,path[,time])"

    def claims(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() == ".csv"

    def sources(self, path: Path) -> list[SequenceSource]:
        return [
            SequenceSource(entry.subject, FrameFilesReader.name, entry.paths, entry.times)
            for entry in read_manifest(path)
        ]

    def read(self, source: SequenceSource) -> LongitudinalSequence:
        return FrameFilesReader().read(source)


def write_manifest(path: Path, rows: Iterable[dict]) -> Path:
    """Write a manifest (header `subject,timepoint,path,time`, a row per scan) whole or not at all."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, text.getvalue().encode("utf-8"))
    return Path(path)


@dataclass(frozen=True)
class ManifestSubject:
    """One subject's scans in time order."""

    subject: str
    paths: tuple[Path, ...]
    timepoints: tuple[float, ...]
    times: tuple[float, ...] | None


def read_manifest(csv_path: Path) -> list[ManifestSubject]:
    """Every subject of the manifest, in order of first appearance; files are checked to exist."""
    csv_path = Path(csv_path)
    rows = _read_rows(csv_path)
    by_subject: dict[str, list[tuple[float, Path, float | None, int]]] = {}
    missing_files = []
    for line, row in rows:
        subject = (row["subject"] or "").strip()
        if not subject:
            raise DataError(f"{csv_path} line {line}: empty subject; every row needs a subject id")
        timepoint = _parse_number(row["timepoint"], "timepoint", csv_path, line)
        time = _parse_number(row["time"], "time", csv_path, line) if (row.get("time") or "").strip() else None
        raw_path = (row["path"] or "").strip()
        if not raw_path:
            raise DataError(f"{csv_path} line {line}: empty path; expected an image file or DICOM folder")
        path = Path(raw_path) if Path(raw_path).is_absolute() else csv_path.parent / raw_path
        if not path.exists():
            missing_files.append(f"line {line}: {path}")
        by_subject.setdefault(subject, []).append((timepoint, path, time, line))
    if missing_files:
        shown = "; ".join(missing_files[:5])
        if len(missing_files) > 5:
            shown += f"; and {len(missing_files) - 5} more"
        raise DataError(f"{csv_path} names {len(missing_files)} file(s) that do not exist: {shown}")
    return [_subject_of(subject, scans, csv_path) for subject, scans in by_subject.items()]


def _read_rows(csv_path: Path) -> list[tuple[int, dict]]:
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as stream:
            reader = csv.DictReader(stream)
            columns = [name.strip() for name in (reader.fieldnames or [])]
            reader.fieldnames = columns
            missing = [name for name in REQUIRED_COLUMNS if name not in columns]
            if missing:
                raise DataError(
                    f"{csv_path} lacks column(s) {', '.join(missing)} (it has: {', '.join(columns) or 'no header'}); "
                    "expected a header 'subject,timepoint,path[,time]'"
                )
            rows = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"cannot read {csv_path} as a CSV manifest ({error})") from None
    if not rows:
        raise DataError(f"{csv_path} has a header but no rows; expected one row per scan")
    return rows


def _parse_number(text: str | None, column: str, csv_path: Path, line: int) -> float:
    try:
        return float((text or "").strip())
    except ValueError:
        raise DataError(f"{csv_path} line {line}: {column} '{text}' is not a number") from None


def _subject_of(subject: str, scans: list, csv_path: Path) -> ManifestSubject:
    scans = sorted(scans, key=lambda scan: scan[0])
    timepoints = [scan[0] for scan in scans]
    for earlier, later in zip(scans, scans[1:]):
        if earlier[0] == later[0]:
            raise DataError(
                f"{csv_path} lines {earlier[3]} and {later[3]}: subject '{subject}' has timepoint {earlier[0]:g} "
                "twice; expected one scan per subject and timepoint"
            )
    times = [scan[2] for scan in scans]
    if any(t is None for t in times) and not all(t is None for t in times):
        lines = [str(scan[3]) for scan in scans if scan[2] is None]
        raise DataError(
            f"{csv_path}: subject '{subject}' has a time on some rows but not on line(s) {', '.join(lines)}; "
            "give every row of a subject a time, or none"
        )
    if times[0] is not None and any(later <= earlier for earlier, later in zip(times, times[1:])):
        raise DataError(
            f"{csv_path}: subject '{subject}' has times {[f'{t:g}' for t in times]} that do not increase with "
            "timepoint; expected later timepoints to have later times"
        )
    return ManifestSubject(
        subject=subject,
        paths=tuple(scan[1] for scan in scans),
        timepoints=tuple(timepoints),
        times=None if times[0] is None else tuple(times),
    )
