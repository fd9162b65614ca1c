"""The warm worker's loop: read requests on stdin, keep the loaded engine between them, write
protocol lines on stdout. Generation runs on the main thread; a reader thread takes stdin so that a
`cancel` line stops the current request within one denoising step without ending the process."""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import TextIO

from sadm.errors import GenerationCancelled
from sadm.serving import protocol
from sadm.storage.atomic import atomic_folder


def claim_stdout() -> TextIO:
    """Keep the real stdout for protocol lines only: file descriptor 1 (Python prints, C libraries,
    progress bars) is pointed at stderr, so nothing else can corrupt the protocol."""
    sys.stdout.flush()
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1, newline="\n")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel


class Worker:
    """Serves requests one at a time and keeps the last engine loaded (one model on one device:
    a second model would double the GPU memory held)."""

    def __init__(self, channel: TextIO) -> None:
        self._channel = channel
        self._write_lock = threading.Lock()
        self._commands: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._current: object = None  # the id of the request being generated
        self._engine = None
        self._engine_key: tuple | None = None
        self.loads = 0

    def send(self, event: str, **fields) -> None:
        with self._write_lock:
            self._channel.write(protocol.encode({"event": event, **fields}))
            self._channel.flush()

    def read_commands(self, stream: TextIO) -> None:
        """Reader thread: a cancel takes effect at once; everything else queues for the main thread."""
        for line in stream:
            if not line.strip():
                continue
            try:
                message = protocol.decode(line)
            except ValueError as error:
                self._commands.put({"command": "invalid", "message": str(error)})
                continue
            if message.get("command") == "cancel":
                if message.get("id") is None or message.get("id") == self._current:
                    self._cancel.set()
                continue
            self._commands.put(message)
        self._commands.put({"command": "shutdown"})  # the host closed our stdin (it ended or crashed)

    def cancel_current(self, *_signal) -> None:
        """SIGINT / SIGBREAK handler: stop the current request, keep the process."""
        self._cancel.set()

    def serve(self) -> int:
        self.send("ready", protocol=protocol.PROTOCOL_VERSION, pid=os.getpid(), loads=self.loads)
        while True:
            message = self._commands.get()
            command = message.get("command")
            if command == "shutdown":
                return 0
            if command == "generate":
                self._generate(message)
            elif command == "invalid":
                self.send("error", id=None, type="ProtocolError", message=message["message"])
            else:
                self.send(
                    "error",
                    id=message.get("id"),
                    type="ProtocolError",
                    message=f"unknown command {command!r}; send generate, cancel or shutdown",
                )

    def _engine_key_for(self, folder: Path, device: str) -> tuple:
        weights = folder / "model.safetensors"
        return (str(folder.resolve()), device, weights.stat().st_mtime_ns if weights.exists() else 0)

    def engine_for(self, model: str, device: str, samples: int = 1):
        """The loaded engine; loaded again only when the model folder, its weights or the device change.
        On CUDA the memory check runs first, so a run that cannot fit is refused before any work."""
        _load_torch()
        from sadm.devices import check_gpu_memory, resolve_device
        from sadm.generation.engine import Engine
        from sadm.storage.checkpoint import read_config
        from sadm.storage.registry import resolve_model

        folder = resolve_model(model)
        resolved = resolve_device(device)
        key = self._engine_key_for(folder, str(resolved))
        if resolved.type == "cuda":
            loaded = key == self._engine_key  # its weights already sit in the allocated memory
            check_gpu_memory(None if loaded else folder, read_config(folder), samples, resolved)
        if key != self._engine_key:
            self._engine, self._engine_key = None, None
            _free_device_memory()
            self._engine = Engine.load(folder, resolved)
            self._engine_key = key
            self.loads += 1
        return self._engine

    def _generate(self, message: dict) -> None:
        request_id = message.get("id")
        self._current = request_id
        self._cancel.clear()
        started = time.monotonic()
        try:
            request = protocol.request_from_json(message["request"])
            frames = [None if path is None else protocol.load_array(path) for path in message["frames"]]
            engine = self.engine_for(message["model"], message.get("device", "auto"), request.sampling.samples)

            def progress(done: int, total: int, frame: int) -> None:
                self.send("progress", id=request_id, done=done, total=total, frame=frame)

            generating = time.monotonic()
            result = engine.generate(frames, request, progress=progress, cancel=self._cancel)
            generate_seconds = time.monotonic() - generating
            paths = _write_result(result, Path(message["output"]))
        except GenerationCancelled as error:
            self.send("cancelled", id=request_id, message=str(error))
        except Exception as error:  # every failure is reported; the worker stays up for the next request
            self.send("error", id=request_id, **_describe_error(error, message))
            traceback.print_exc(file=sys.stderr)
        else:
            seconds = time.monotonic() - started
            from sadm.devices import device_facts

            release_cached_memory()  # before the facts, so the free memory they report is what Slicer gets
            self.send(
                "result",
                id=request_id,
                loads=self.loads,
                seconds=seconds,
                generate_seconds=generate_seconds,
                device=str(engine.device),
                facts=device_facts(),
                **paths,
            )
        finally:
            self._current = None
            release_cached_memory()


class TorchLoadError(RuntimeError):
    """PyTorch is installed but cannot be imported (on Windows, a DLL that fails to load is an OSError)."""


def _load_torch() -> None:
    try:
        import torch  # noqa: F401
    except (ImportError, OSError) as error:
        raise TorchLoadError(f"{type(error).__name__}: {error}") from error


def release_cached_memory() -> None:
    """Hand PyTorch's cached CUDA blocks back after each request, keeping the model loaded, so that
    Slicer's volume rendering on the same GPU gets the memory while the worker waits."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _write_result(result, output: Path) -> dict:
    """The means (and std maps) as .npy files in `output`, which appears whole or not at all."""
    std = result.std
    with atomic_folder(output) as staging:
        mean_names = {index: f"t{index}_mean.npy" for index in result}
        for index, name in mean_names.items():
            protocol.save_array(staging / name, result.mean[index])
        std_names = {index: f"t{index}_std.npy" for index in result} if std is not None else None
        for index, name in (std_names or {}).items():
            protocol.save_array(staging / name, std[index])
    return {
        "mean": {str(index): str(output / name) for index, name in mean_names.items()},
        "std": None if std_names is None else {str(index): str(output / name) for index, name in std_names.items()},
    }


def _describe_error(error: BaseException, message: dict) -> dict:
    """type + message of an error event; out-of-memory gets what to do about it."""
    name = type(error).__name__
    if name == "OutOfMemoryError" or ("out of memory" in str(error).lower() and isinstance(error, RuntimeError)):
        _free_device_memory()
        samples = (message.get("request") or {}).get("sampling", {}).get("samples", 1)
        return {
            "type": protocol.OUT_OF_MEMORY,
            "message": (
                f"the device ran out of memory while generating {samples} sample(s); the memory was freed. Lower "
                f"Samples (now {samples}), close other programs that use the GPU, or set Device to 'cpu' (slower)."
            ),
        }
    if isinstance(error, KeyError):
        return {"type": "ProtocolError", "message": f"the generate command lacks the field {error}"}
    return {"type": name, "message": str(error)}


def _free_device_memory() -> None:
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def main() -> int:
    """Entry point of `python -m sadm.serving`: serve until `shutdown` or the end of stdin."""
    channel = claim_stdout()
    worker = Worker(channel)
    signal.signal(signal.SIGINT, worker.cancel_current)
    if hasattr(signal, "SIGBREAK"):  # Windows: CTRL_BREAK_EVENT reaches a process group
        signal.signal(signal.SIGBREAK, worker.cancel_current)
    threading.Thread(target=worker.read_commands, args=(sys.stdin,), name="SADM worker stdin", daemon=True).start()
    return worker.serve()
