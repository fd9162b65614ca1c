"""Reusing an earlier `sadm evaluate` run: a model whose weights (sha256, the header's keys sorted) it
scored under the same protocol and resolved sampling is taken from its per-frame rows instead of being
run again; otherwise it says on stderr why not."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from sadm.errors import DataError
from sadm.evaluation.tables import METRICS

RECORD_FILE, ROWS_FILE = "evaluation.json", "per_frame.csv"  # what a `sadm evaluate` output holds

SCORING = "native and model grid, change correlation"
"""Recorded in the protocol: records scored otherwise (model grid only, before this) are not reused."""
DIGEST_SCHEME = "safetensors-sorted-header"  # how evaluation.json's "weights" were hashed


def weights_digest(model_folder: str) -> str:
    """sha256 of a model folder's weights: what identifies a model across moves and renames. The
    header is hashed with its keys sorted, because safetensors writes its metadata in no fixed order:
    the same weights saved twice (a run's last checkpoint and its model/) give one digest."""
    import hashlib
    import struct

    digest = hashlib.sha256()
    with open(Path(model_folder) / "model.safetensors", "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        digest.update(json.dumps(json.loads(handle.read(length)), sort_keys=True).encode("utf-8"))
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(model_folder: str) -> str:
    """sha256 of the weights file as it is: the digest of records written before DIGEST_SCHEME."""
    import hashlib

    with open(Path(model_folder) / "model.safetensors", "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def resolved_sampling(config, guidance: float | None, native: str | None) -> dict:
    """What a model was sampled with where the command left it to the model (its config.json, for
    `guidance` or `native` None): a model's own native path and guidance are part of what its rows mean."""
    return {"native": native or config.native, "guidance": config.diffusion.guidance if guidance is None else guidance}


def reusable_rows(
    previous: Path,
    weights: dict[str, str],
    sources: dict[str, str],
    protocol: dict,
    settings: Sequence[str],
    sampling: dict[str, dict] | None = None,
) -> dict[str, list[dict]]:
    """{current model name: its per-frame rows} for the models (`weights`: {name: weights_digest},
    `sources`: {name: folder}, to hash the file itself for older records) that `previous` already
    scored with the same weights, protocol and resolved sampling (`sampling`: {name: see
    `resolved_sampling`}; older records: what their protocol named); says on stderr why nothing could
    be reused where that is so."""
    import csv

    record_path, rows_path = previous / RECORD_FILE, previous / ROWS_FILE
    if not record_path.is_file() or not rows_path.is_file():
        raise DataError(f"--reuse {previous}: not a `sadm evaluate` output (no {RECORD_FILE} and {ROWS_FILE})")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    earlier = dict(record.get("protocol") or {})
    earlier.setdefault("data", str(Path(record.get("data", "")).expanduser().resolve()))
    earlier.setdefault("samples", record.get("samples", 1))  # records before --samples scored one sample
    earlier.setdefault("sampler_options", record.get("sampler_options", {}))  # before: the defaults
    for key in protocol:
        earlier.setdefault(key, record.get(key))
    different = [key for key in protocol if earlier.get(key) != protocol[key]]
    missing_settings = sorted(set(settings) - set(record.get("settings", [])))
    if different or missing_settings:
        why = ", ".join(different + [f"settings {missing_settings}"] * bool(missing_settings))
        print(
            f"sadm evaluate: --reuse {previous}: nothing reused ({why} differ{'s' if len(different) + bool(missing_settings) == 1 else ''})",
            file=sys.stderr,
        )
        return {}
    by_digest = {digest: name for name, digest in (record.get("weights") or {}).items()}
    if record.get("weights_digest") == DIGEST_SCHEME:
        current = weights
    else:
        current = {name: file_digest(folder) for name, folder in sources.items()}
    matches = {name: by_digest[digest] for name, digest in current.items() if digest in by_digest}
    for name, earlier_name in list(matches.items()):
        then = (record.get("sampling") or {}).get(earlier_name) or {
            key: earlier[key] for key in ("native", "guidance") if earlier.get(key) is not None
        }
        now = (sampling or {}).get(name, {})
        changed = [key for key in then if key in now and then[key] != now[key]]
        if changed:
            print(
                f"sadm evaluate: --reuse {previous}: {name} not reused (its {', '.join(changed)} differ{'s' * (len(changed) == 1)})",
                file=sys.stderr,
            )
            del matches[name]
    with open(rows_path, encoding="utf-8", newline="") as handle:
        stored = list(csv.DictReader(handle))
    reused = {}
    for name, earlier_name in matches.items():
        reused[name] = [
            {
                "method": name,
                "setting": row["setting"],
                "grid": row.get("grid") or "model",
                "subject": row["subject"],
                "frame": int(row["frame"]),
                **{metric: float(row[metric]) for metric in METRICS if row.get(metric) not in (None, "")},
            }
            for row in stored
            if row["method"] == earlier_name and row["setting"] in settings
        ]
    return reused
