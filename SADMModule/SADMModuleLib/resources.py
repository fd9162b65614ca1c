"""What the chosen device can do: resolving it, describing it for the panel, the expected run time,
the GPU memory a run needs, and recovering from running out of it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from slicer.i18n import tr as _

from sadm.errors import CheckpointError, SADMError
from SADMModuleLib.dependencies import installedVersion, missingPackages, torchProblem
from SADMModuleLib.models import DEFAULT_MODEL, resolveModel

DEVICES = ("auto", "cuda", "cpu")
REGISTERED_SECONDS = 1.0
"""A frame the observed frames' registration makes: demons between two observed frames and a warp
(about 0.85 s a frame of a 12×128×128 cine on 2 CPU threads, the pair's field shared by its frames)."""


class SADMResourceError(SADMError, RuntimeError):
    """The chosen device cannot run the request (no CUDA, too little GPU memory)."""


def checkDeviceName(device: str) -> str:
    """The device name, normalised; an unknown one raises (no torch needed: the worker resolves it)."""
    name = str(device).strip().lower()
    if name not in DEVICES and not re.fullmatch(r"cuda:\d+|mps", name):
        raise SADMResourceError(f"device {device!r} is unknown; choose 'auto', 'cuda', 'cuda:<index>' or 'cpu'")
    return name


def resolveDevice(device: str) -> str:
    """ "auto" -> cuda / mps / cpu in this process (imports torch); an unusable choice raises with what to do."""
    from sadm.devices import resolve_device
    from sadm.errors import DeviceError

    name = checkDeviceName(device)
    try:
        return str(resolve_device(name))
    except DeviceError as error:
        raise deviceProblem(error) from error


def deviceProblem(error: BaseException) -> SADMResourceError:
    """The engine's device error with what to do about it in Slicer."""
    from sadm.errors import InsufficientDeviceMemoryError

    if isinstance(error, InsufficientDeviceMemoryError):
        return SADMResourceError(str(error))
    return SADMResourceError(
        f"{error}. In Slicer, open the PyTorch Util module and reinstall PyTorch with the CUDA computation "
        "backend that matches your NVIDIA driver (check the driver with nvidia-smi), or set Device to 'auto' "
        "or 'cpu'."
    )


def resolveWithFacts(device: str, facts: dict) -> str | None:
    """What `device` resolves to in a process whose torch reported `facts` (sadm.devices.device_facts);
    None when that process cannot run it."""
    name = checkDeviceName(device)
    if name == "auto":
        return "cuda" if facts.get("cuda") else "mps" if facts.get("mps") else "cpu"
    if name.startswith("cuda"):
        index = int(name.partition(":")[2] or 0)
        return name if index < len(facts.get("cuda") or []) else None
    if name == "mps":
        return name if facts.get("mps") else None
    return name


def describeDevice(
    device: str = "auto",
    model: str = DEFAULT_MODEL,
    targets: int = 1,
    steps: int = 50,
    samples: int = 1,
    measured: dict | None = None,
    facts: dict | None = None,
    registered: int = 0,
) -> str:
    """One line for the panel: what will run, with free GPU memory or the expected CPU time. Imports
    no torch: facts (sadm.devices.device_facts) come from the process that runs the engine, the warm
    worker; before its first run the line says what the installed PyTorch is and what is checked when.
    measured: seconds per step by (model folder, device), from earlier runs. targets: the frames the
    model draws; registered: those the observed frames' registration makes (`models.frameCounts`)."""
    problem = torchProblem()  # too old, or it failed to load in this process: say which, never raise here
    if problem is not None:
        return problem
    if "torch" in missingPackages():
        return _("PyTorch is not installed: Generate will offer to install it (PyTorch extension).")
    try:
        name = checkDeviceName(device)
    except SADMResourceError as error:
        return str(error)
    if facts is None:
        version = installedVersion("torch")
        if name.startswith("cuda") and version.endswith("+cpu"):  # the local tag of PyTorch's CPU wheels
            return _(
                "CUDA is not available to PyTorch {version} (a CPU build): reinstall PyTorch with CUDA in the "
                "PyTorch Util module, or choose auto / cpu."
            ).format(version=version)
        if name != "cpu":
            return _(
                "PyTorch {version}: the {device} device and its free memory are checked when Generate starts the SADM "
                "worker."
            ).format(version=version, device=name)
        resolved = "cpu"
    else:
        resolved = resolveWithFacts(name, facts)
    if resolved is None:
        return _(
            "{device} is not available to PyTorch {version} (CUDA build: {build}): reinstall PyTorch with CUDA in the "
            "PyTorch Util module, or choose auto / cpu."
        ).format(device=name, version=facts.get("torch"), build=facts.get("cuda_build") or "none")
    if resolved.startswith("cuda"):
        gpu = facts["cuda"][int(resolved.partition(":")[2] or 0)]
        if gpu.get("free") is None:  # a GPU the worker did not run on: its free memory was not read
            return _("CUDA: {name}, {total:.1f} GB; its free memory is checked when Generate starts").format(
                name=gpu["name"], total=gpu["total"] / 2**30
            )
        return _("CUDA: {name}, {free:.1f} GB free").format(name=gpu["name"], free=gpu["free"] / 2**30)
    if resolved == "mps":
        return _("Apple MPS")
    threads = (facts or {}).get("threads")
    seconds = estimateSeconds(model, resolved, targets, steps, samples, measured, threads, registered)
    expected = (
        _("expect ~{seconds}").format(seconds=formatDuration(seconds)) if seconds is not None else _("time unknown")
    )
    if threads is None:
        return _("CPU — slow, {expected}").format(expected=expected)
    return _("CPU ({threads} threads) — slow, {expected}").format(threads=threads, expected=expected)


def estimateSeconds(
    model: str,
    device: str,
    targets: int,
    steps: int,
    samples: int,
    measured: dict | None = None,
    threads: int | None = None,
    registered: int = 0,
) -> float | None:
    """Rough run time: measured speed of this model on this device, else a CPU cost model, for `targets`
    drawn frames and `registered` frames registration makes (no denoising step: about a second each).
    threads: the engine process's torch threads (default: PyTorch's own default, the physical cores)."""
    try:
        folder, config = resolveModel(model)
    except (CheckpointError, ImportError):
        return None
    perStep = (measured or {}).get((str(Path(folder).resolve()), device))
    if perStep is None:
        threads = threads or max(1, (os.cpu_count() or 2) // 2)
        # warp (and register's frames with one observed frame) also draws at observed frames' positions in the
        # same batch: about twice the work
        redraw = 1.0 if config.native == "resample" else 2.0
        perStep = redraw * cpuSecondsPerStep(config, threads)
    return perStep * steps * targets * samples + REGISTERED_SECONDS * registered


def checkGpuMemory(modelFolder, config, samples: int, device: str) -> None:
    """Refuse before starting when even a low estimate does not fit (the engine's check, in this process)."""
    from sadm.devices import check_gpu_memory
    from sadm.errors import InsufficientDeviceMemoryError

    try:
        check_gpu_memory(modelFolder, config, samples, device)
    except InsufficientDeviceMemoryError as error:
        raise SADMResourceError(str(error)) from error


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
