"""The ACDC cardiac cine layout: `<root>/patientNNN/Info.cfg` + `patientNNN_4d.nii.gz`.

The paper's cardiac sequences are the frames from end-diastole (ED) to end-systole (ES) inclusive;
Info.cfg gives both as 1-based frame numbers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from sadm.errors import DataError
from sadm.io.checks import check_sequence
from sadm.io.four_d import read_4d_image
from sadm.io.reader import SequenceReader, SequenceSource
from sadm.io.sequence import LongitudinalSequence

INFO_FILE = "Info.cfg"


class AcdcReader(SequenceReader):
    """An ACDC patient folder, or an ACDC root holding them (one sequence per patient)."""

    name = "acdc"
    describes = "an ACDC root (patientNNN/Info.cfg folders), an ACDC patient folder"

    def claims(self, path: Path) -> bool:
        return path.is_dir() and (is_acdc_patient(path) or bool(list_acdc_patients(path)))

    def sources(self, path: Path) -> list[SequenceSource]:
        folders = [path] if is_acdc_patient(path) else list_acdc_patients(path)
        return [SequenceSource(folder.name, self.name, (folder,)) for folder in folders]

    def read(self, source: SequenceSource) -> LongitudinalSequence:
        return read_acdc_patient(source.paths[0])

    def watched_files(self, source: SequenceSource) -> list[Path]:
        folder = source.paths[0]
        return [folder / INFO_FILE, acdc_cine_file(folder)]


@dataclass(frozen=True)
class AcdcInfo:
    """The fields of one patient's Info.cfg (ED/ES are 1-based frame numbers, as in the file)."""

    ed: int
    es: int
    group: str | None = None
    height_cm: float | None = None
    weight_kg: float | None = None
    frame_count: int | None = None


def read_acdc_info(path: Path) -> AcdcInfo:
    """Parse `Info.cfg` lines like `ED: 1`, `ES: 12`, `Group: NOR`, `NbFrame: 30`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise DataError(f"cannot read {path} ({error.strerror}); expected an ACDC Info.cfg") from None
    fields = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon:
            fields[key.strip().lower()] = value.strip()
    missing = [name for name in ("ed", "es") if name not in fields]
    if missing:
        names = " or ".join(name.upper() for name in missing)
        raise DataError(f"{path} has no {names} line; expected e.g. 'ED: 1' and 'ES: 12'")
    return AcdcInfo(
        ed=_number(fields, "ed", int, path),
        es=_number(fields, "es", int, path),
        group=fields.get("group"),
        height_cm=_number(fields, "height", float, path) if "height" in fields else None,
        weight_kg=_number(fields, "weight", float, path) if "weight" in fields else None,
        frame_count=_number(fields, "nbframe", int, path) if "nbframe" in fields else None,
    )


def _number(fields: dict, key: str, kind: type, path: Path):
    text = fields[key]
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}: '{key.upper()}: {text}' is not a number") from None
    if kind is int:
        if not value.is_integer():
            raise DataError(f"{path}: '{key.upper()}: {text}' is not a whole number")
        return int(value)
    return value


def is_acdc_patient(folder: Path) -> bool:
    return (Path(folder) / INFO_FILE).is_file()


def list_acdc_patients(root: Path) -> list[Path]:
    """Patient folders directly under `root` (those holding an Info.cfg), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; expected an ACDC root holding patientNNN/Info.cfg folders")
    return sorted(
        child
        for child in root.iterdir()
        if child.is_dir() and not child.name.startswith(".") and is_acdc_patient(child)  # not a folder being written
    )


def acdc_cine_file(folder: Path) -> Path:
    """`patientNNN/patientNNN_4d.nii.gz` (or .nii), the whole cardiac cycle."""
    folder = Path(folder)
    for suffix in (".nii.gz", ".nii"):
        candidate = folder / f"{folder.name}_4d{suffix}"
        if candidate.is_file():
            return candidate
    raise DataError(f"{folder} has no {folder.name}_4d.nii.gz; expected the ACDC 4D cine image next to {INFO_FILE}")


def read_acdc_patient(folder: Path) -> LongitudinalSequence:
    """Frames ED..ES (inclusive) of one patient, subject = folder name, Info.cfg fields in metadata."""
    folder = Path(folder)
    info_path = folder / INFO_FILE
    info = read_acdc_info(info_path)
    cine_path = acdc_cine_file(folder)
    cycle = read_4d_image(cine_path, subject=folder.name)
    frame_count = len(cycle)
    if not 1 <= info.ed <= frame_count or not 1 <= info.es <= frame_count:
        raise DataError(
            f"{info_path}: ED {info.ed} / ES {info.es} lie outside frames 1..{frame_count} of {cine_path.name}; "
            "expected 1-based frame numbers within the cine"
        )
    if info.es <= info.ed:
        raise DataError(
            f"{info_path}: ES {info.es} is not after ED {info.ed}; the ED→ES sequence needs ES > ED (1-based frames)"
        )
    if info.frame_count is not None and info.frame_count != frame_count:
        warnings.warn(
            f"{info_path} says NbFrame: {info.frame_count} but {cine_path.name} holds {frame_count} frames",
            stacklevel=2,
        )
    sequence = cycle.subset(range(info.ed - 1, info.es))
    # The paper positions cardiac frames by their order (ED→ES, resampled to 12 phases), not by ms.
    sequence.times = None
    sequence.metadata.update(
        reader="acdc",
        ed=info.ed,
        es=info.es,
        group=info.group,
        height_cm=info.height_cm,
        weight_kg=info.weight_kg,
        cine_frame_count=frame_count,
    )
    return check_sequence(sequence, str(folder))
