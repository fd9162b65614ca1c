"""The one engine host: keeps the last loaded engine (one model on one device) and turns running out of
device memory into what to do about it. The warm worker (`sadm.serving.worker`) and Slicer's console
path (SADMModuleLogic.generate) both run the engine through it, so they load, cache and recover alike.
Imports no torch until an engine is asked for (the Slicer panel imports this module)."""

from __future__ import annotations

import gc
import sys
import threading
from pathlib import Path

from sadm.errors import SADMError


class TorchLoadError(RuntimeError):
    """PyTorch is installed but cannot be imported (on Windows, a DLL that fails to load is an OSError)."""


def load_torch() -> None:
    try:
        import torch  # noqa: F401
    except (ImportError, OSError) as error:
        raise TorchLoadError(f"{type(error).__name__}: {error}") from error


def is_out_of_memory(error: BaseException) -> bool:
    """PyTorch's OutOfMemoryError, or an older build's RuntimeError saying so."""
    name = type(error).__name__
    return name == "OutOfMemoryError" or ("out of memory" in str(error).lower() and isinstance(error, RuntimeError))


def out_of_memory_message(samples: int) -> str:
    return (
        f"the device ran out of memory while generating {samples} sample(s); the memory was freed. Lower "
        f"Samples (now {samples}), close other programs that use the GPU, or set Device to 'cpu' (slower)."
    )


def free_device_memory() -> None:
    """Drop unreachable tensors and hand PyTorch's cached CUDA blocks back."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def engine_key(folder: Path | str, device: str) -> tuple:
    """What identifies a loaded engine: the model folder, its weights' modification time (ns) and the device."""
    folder = Path(folder)
    weights = folder / "model.safetensors"
    return (str(folder.resolve()), str(device), weights.stat().st_mtime_ns if weights.exists() else 0)


class EngineHost:
    """Keeps the last engine loaded; loads again only when the model folder, its weights or the device change."""

    def __init__(self) -> None:
        self._engine = None
        self._key: tuple | None = None
        self._lock = threading.Lock()
        self.loads = 0

    @property
    def engine(self):
        return self._engine

    def engine_for(self, model: str, device: str, samples: int = 1, check_memory: bool = True):
        """The loaded engine for `model` (a name or folder) on `device` ("auto" resolves here). On CUDA the
        memory check runs first (check_memory), so a run that cannot fit is refused before any work."""
        load_torch()
        from sadm.devices import check_gpu_memory, resolve_device
        from sadm.generation.engine import Engine
        from sadm.storage.checkpoint import read_config
        from sadm.storage.registry import resolve_model

        folder = resolve_model(model)
        resolved = resolve_device(device)
        key = engine_key(folder, str(resolved))
        with self._lock:
            if check_memory and resolved.type == "cuda":
                loaded = key == self._key  # its weights already sit in the allocated memory
                check_gpu_memory(None if loaded else folder, read_config(folder), samples, resolved)
            if key != self._key:
                self._engine, self._key = None, None
                free_device_memory()
                self._engine = Engine.load(folder, resolved)
                self._key = key
                self.loads += 1
            return self._engine

    def generate(self, engine, frames, request, progress=None, cancel=None):
        """engine.generate; running out of device memory frees it and raises OutOfDeviceMemory."""
        try:
            return engine.generate(frames, request, progress=progress, cancel=cancel)
        except Exception as error:
            if is_out_of_memory(error):
                free_device_memory()
                raise OutOfDeviceMemory(out_of_memory_message(request.sampling.samples)) from error
            raise


class OutOfDeviceMemory(SADMError, RuntimeError):
    """The device ran out of memory during a run; the memory was freed and the host stays usable."""
