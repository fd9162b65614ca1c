"""Device choice and mixed precision, in one place so the CLI, the engine and training agree."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import torch

from sadm.errors import DeviceError, InsufficientDeviceMemoryError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Map "auto" to CUDA, else Apple MPS, else CPU; validate an explicit request."""
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(
            f"device {device!r} was requested but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); "
            "install a CUDA build of PyTorch or use device='cpu'"
        )
    try:
        return torch.device(name)
    except RuntimeError as error:
        raise DeviceError(
            f"device {device!r} is unknown; choose 'auto', 'cuda', 'cuda:<index>', 'mps' or 'cpu'"
        ) from error


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA (the fast path); a no-op context elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe_device(device: torch.device) -> str:
    """One line for logs and the Slicer panel: what will run and how much memory it has."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        free, total = torch.cuda.mem_get_info(index)
        return f"CUDA: {torch.cuda.get_device_name(index)}, {free / 2**30:.1f} GB free of {total / 2**30:.1f} GB"
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"


def usable_gpu_memory(index: int) -> tuple[int, int]:
    """(free, total) bytes of GPU `index` for this process. cudaMemGetInfo counts the blocks PyTorch's
    caching allocator keeps reserved from an earlier run as used, yet this process reuses them, so they
    are added back (without it a second run of the same size is refused)."""
    driver_free, total = torch.cuda.mem_get_info(index)
    return driver_free + torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index), total


def device_facts(used: str | torch.device | None = None) -> dict:
    """What this process's PyTorch can run on, as JSON-able facts: the warm worker sends them so the
    Slicer panel can describe the device without importing torch (or creating a CUDA context) itself.
    Free memory is read of the `used` GPU only (mem_get_info creates a context of hundreds of MB on the
    GPU it asks, which a warm worker keeps); the others give their name and total from their properties
    ("free": None)."""
    used = None if used is None else torch.device(used)
    current = (used.index or 0) if used is not None and used.type == "cuda" else None
    cuda = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            properties = torch.cuda.get_device_properties(index)
            free, total = usable_gpu_memory(index) if index == current else (None, properties.total_memory)
            cuda.append({"name": properties.name, "free": None if free is None else int(free), "total": int(total)})
    mps = getattr(torch.backends, "mps", None)
    return {
        "torch": str(torch.__version__),
        "cuda_build": torch.version.cuda,
        "cuda": cuda,
        "mps": bool(mps is not None and mps.is_available()),
        "threads": int(torch.get_num_threads()),
    }


def estimate_gpu_memory_bytes(model_folder: str | os.PathLike | None, config, samples: int) -> int:
    """A deliberately low estimate (weights + the largest live activations) so it never refuses a run
    that would fit; running out of memory later is still reported clearly."""
    weights = Path(model_folder) / "model.safetensors" if model_folder is not None else None
    weight_bytes = weights.stat().st_size if weights is not None and weights.exists() else 0
    voxels = int(np.prod(config.grid))
    batch = 2 * samples  # conditional + unconditional pass of classifier-free guidance
    activations = batch * voxels * config.unet.channels[0] * 2 * 6  # bf16, a few full-resolution maps alive
    frames = samples * config.max_frames * voxels * 4
    return int(weight_bytes + activations + frames + 200 * 2**20)  # + CUDA kernels and allocator slack


def check_gpu_memory(model_folder, config, samples: int, device: str | torch.device) -> None:
    """Refuse before any work when even a low estimate does not fit, saying how many samples would."""
    index = torch.device(device).index or 0
    free, total = usable_gpu_memory(index)
    needed = estimate_gpu_memory_bytes(model_folder, config, samples)
    if needed <= free:
        return
    per_sample = estimate_gpu_memory_bytes(model_folder, config, 2) - estimate_gpu_memory_bytes(model_folder, config, 1)
    fitting = int((free - estimate_gpu_memory_bytes(model_folder, config, 0)) // max(per_sample, 1))
    advice = (
        f"Lower Samples to {fitting} or less, close other programs that use the GPU, or set Device to 'cpu' (slower)."
        if fitting >= 1
        else "Even one sample does not fit: close other programs that use the GPU, or set Device to 'cpu' (slower)."
    )
    raise InsufficientDeviceMemoryError(
        f"this run needs about {needed / 2**30:.1f} GB of GPU memory but {torch.cuda.get_device_name(index)} has "
        f"{free / 2**30:.1f} GB free of {total / 2**30:.1f} GB. {advice}"
    )
