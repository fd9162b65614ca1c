"""What the chosen device can do: resolving it, describing it for the panel, the expected run time,
the GPU memory a run needs, and recovering from running out of it."""

from __future__ import annotations

import gc
import re
import sys
from pathlib import Path

import numpy as np
from slicer.i18n import tr as _

from sadm.defaults import DEFAULT_NATIVE_PATH
from sadm.errors import CheckpointError
from SADMModuleLib.dependencies import missingPackages, torchProblem
from SADMModuleLib.models import DEFAULT_MODEL, resolveModel

DEVICES = ("auto", "cuda", "cpu")


class SADMResourceError(RuntimeError):
    """The chosen device cannot run the request (no CUDA, too little GPU memory)."""


def resolveDevice(device: str) -> str:
    """ "auto" -> cuda / mps / cpu; an unusable explicit choice raises with what to do."""
    from sadm.devices import resolve_device

    name = str(device).strip().lower()
    if name not in DEVICES and not re.fullmatch(r"cuda:\d+|mps", name):
        raise SADMResourceError(f"device {device!r} is unknown; choose 'auto', 'cuda', 'cuda:<index>' or 'cpu'")
    try:
        return str(resolve_device(name))
    except RuntimeError as error:
        raise SADMResourceError(
            f"{error}. In Slicer, open the PyTorch Util module and reinstall PyTorch with the CUDA computation "
            "backend that matches your NVIDIA driver (check the driver with nvidia-smi), or set Device to 'auto' "
            "or 'cpu'."
        ) from error


def describeDevice(
    device: str = "auto",
    model: str = DEFAULT_MODEL,
    targets: int = 1,
    steps: int = 50,
    samples: int = 1,
    measured: dict | None = None,
) -> str:
    """One line for the panel: what will run, with free GPU memory or the expected CPU time.
    measured: seconds per step by (model folder, device), from earlier runs."""
    if "torch" in missingPackages():
        problem = torchProblem()  # too old, or its DLLs fail to load: say which, never raise here
        if problem is not None:
            return problem
        return _("PyTorch is not installed: Generate will offer to install it (PyTorch extension).")
    import torch

    try:
        resolved = resolveDevice(device)
    except SADMResourceError as error:
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            return _(
                "CUDA is not available to PyTorch {version} (CUDA build: {build}): reinstall PyTorch with CUDA in "
                "the PyTorch Util module, or choose auto / cpu."
            ).format(version=torch.__version__, build=torch.version.cuda or "none")
        return str(error)

    if resolved.startswith("cuda"):
        index = torch.device(resolved).index or 0
        free, _total = torch.cuda.mem_get_info(index)
        return _("CUDA: {name}, {free:.1f} GB free").format(name=torch.cuda.get_device_name(index), free=free / 2**30)
    if resolved == "mps":
        return _("Apple MPS")
    seconds = estimateSeconds(model, resolved, targets, steps, samples, measured)
    expected = _("expect ~{seconds}").format(seconds=formatDuration(seconds)) if seconds else _("time unknown")
    return _("CPU ({threads} threads) — slow, {expected}").format(threads=torch.get_num_threads(), expected=expected)


def estimateSeconds(
    model: str, device: str, targets: int, steps: int, samples: int, measured: dict | None = None
) -> float | None:
    """Rough run time: measured speed of this model on this device, else a CPU cost model."""
    try:
        folder, config = resolveModel(model)
    except (CheckpointError, ImportError):
        return None
    perStep = (measured or {}).get((str(Path(folder).resolve()), device))
    if perStep is None:
        import torch

        # the default native path also redraws each target's anchor in the same batch: about twice the work
        redraw = 2.0 if DEFAULT_NATIVE_PATH == "warp" else 1.0
        perStep = redraw * cpuSecondsPerStep(config, torch.get_num_threads())
    return perStep * steps * targets * samples


def checkGpuMemory(modelFolder, config, samples: int, device: str) -> None:
    """Refuse before starting when even a low estimate does not fit in the free GPU memory."""
    import torch

    index = torch.device(device).index or 0
    driverFree, total = torch.cuda.mem_get_info(index)
    # cudaMemGetInfo counts what PyTorch's caching allocator keeps reserved from an earlier run as used,
    # yet this process reuses it: without adding it back a second run is refused (torch.cuda memory docs).
    free = driverFree + torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
    needed = estimateGpuMemoryBytes(modelFolder, config, samples)
    if needed > free:
        perSample = estimateGpuMemoryBytes(modelFolder, config, 2) - estimateGpuMemoryBytes(modelFolder, config, 1)
        fitting = int((free - estimateGpuMemoryBytes(modelFolder, config, 0)) // max(perSample, 1))
        advice = (
            f"Lower Samples to {fitting} or less, close other programs that use the GPU, or set Device to "
            "'cpu' (slower)."
            if fitting >= 1
            else "Even one sample does not fit: close other programs that use the GPU, or set Device to 'cpu' (slower)."
        )
        raise SADMResourceError(
            f"this run needs about {needed / 2**30:.1f} GB of GPU memory but {torch.cuda.get_device_name(index)} has "
            f"{free / 2**30:.1f} GB free of {total / 2**30:.1f} GB. {advice}"
        )


def estimateGpuMemoryBytes(modelFolder, config, samples: int) -> int:
    """A deliberately low estimate (weights + the largest live activations) so it never refuses a run
    that would fit; the OOM handler covers the rest."""
    weights = Path(modelFolder) / "model.safetensors"
    weightBytes = weights.stat().st_size if weights.exists() else 0
    voxels = int(np.prod(config.grid))
    batch = 2 * samples  # conditional + unconditional pass of classifier-free guidance
    activations = batch * voxels * config.unet.channels[0] * 2 * 6  # bf16, a few full-resolution maps alive
    frames = samples * config.max_frames * voxels * 4
    return int(weightBytes + activations + frames + 200 * 2**20)  # + CUDA kernels and allocator slack


def cpuSecondsPerStep(config, threads: int) -> float:
    """Cost model of one guided denoising step on a CPU: the UNet's 3×3×3 convolutions, two passes
    (classifier-free guidance), ~2 GMAC/s per thread (measured with the tiny preset on 2 threads)."""
    voxels = float(np.prod(config.grid))
    macs = 0.0
    for level, channels in enumerate(config.unet.channels):
        macs += (voxels / 8**level) * channels * channels * 27 * (2 * config.unet.num_res_blocks + 1)
    return 0.02 + 2 * macs / (2e9 * max(1, threads))


def formatDuration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def isOutOfMemory(error: BaseException) -> bool:
    name = type(error).__name__
    return name == "OutOfMemoryError" or ("out of memory" in str(error).lower() and isinstance(error, RuntimeError))


def freeGpuMemory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
