"""The worker's wire format: one JSON object per line. Requests on stdin carry a `command`
("generate", "cancel", "shutdown"); replies on stdout carry an `event` ("ready", "progress",
"result", "cancelled", "error"). Arrays travel as `.npy` files in a temporary folder, never pickled.
Torch-free: the Slicer client imports it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from sadm.generation.request import GenerationRequest, SamplingOptions
from sadm.storage.atomic import atomic_path

PROTOCOL_VERSION = 1
OUT_OF_MEMORY = "OutOfMemoryError"
"""The `type` of an error event when the device ran out of memory (the worker stays up)."""


def encode(message: dict) -> str:
    """One protocol line (no newline inside: json.dumps escapes them)."""
    return json.dumps(message, separators=(",", ":")) + "\n"


def decode(line: str) -> dict:
    """A protocol line as a dict; a line that is not a JSON object raises ValueError naming it."""
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError(f"a protocol line must be a JSON object; got {line.strip()[:200]!r}")
    return message


def request_to_json(request: GenerationRequest) -> dict:
    """The request's fields as JSON (the worker builds and validates the request again from them)."""
    return {
        "roles": list(request.roles),
        "times": None if request.times is None else list(request.times),
        "sampling": asdict(request.sampling),
    }


def request_from_json(fields: dict) -> GenerationRequest:
    """The engine's own request from JSON fields: the engine's validation and messages apply."""
    sampling = fields.get("sampling") or {}
    if not isinstance(sampling, dict):
        raise TypeError(f"sampling must be an object of SamplingOptions fields; got {sampling!r}")
    return GenerationRequest(tuple(fields["roles"]), fields.get("times"), SamplingOptions(**sampling))


def save_array(path: Path | str, array: np.ndarray) -> str:
    """Write `array` as `.npy`, whole or not at all (a reader never sees half a file)."""
    with atomic_path(path, ".npy") as staging, open(staging, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
    return os.fspath(path)


def load_array(path: Path | str) -> np.ndarray:
    """An array written by `save_array`; pickled objects are refused."""
    return np.load(path, allow_pickle=False)
