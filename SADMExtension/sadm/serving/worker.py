"""The warm worker's loop: read requests on stdin, keep the loaded engine between them, write
protocol lines on stdout. Generation runs on the main thread; a reader thread takes stdin so that a
`cancel` line stops the current request within one denoising step without ending the process."""

from __future__ import annotations

import collections
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
from sadm.serving.host import (
    EngineHost,
    OutOfDeviceMemory,
    TorchLoadError,
    free_device_memory,
    is_out_of_memory,
    out_of_memory_message,
)
from sadm.storage.atomic import atomic_folder

__all__ = ["TorchLoadError", "Worker", "claim_stdout", "main"]


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

    CANCELLED_IDS_KEPT = 64

    def __init__(self, channel: TextIO) -> None:
        self._channel = channel
        self._write_lock = threading.Lock()
        self._commands: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._state_lock = threading.Lock()  # _current, _cancelled and _host_gone change together
        self._current: object = None  # the id of the request being generated
        self._cancelled: collections.deque = collections.deque(maxlen=self.CANCELLED_IDS_KEPT)
        self._host_gone = False
        self.host = EngineHost()

    @property
    def loads(self) -> int:
        return self.host.loads

    def send(self, event: str, **fields) -> None:
        with self._write_lock:
            try:
                self._channel.write(protocol.encode({"event": event, **fields}))
                self._channel.flush()
            except (OSError, ValueError):
                pass  # the host has gone: nobody reads; the run stops at the end of stdin

    def read_commands(self, stream: TextIO) -> None:
        """Reader thread: a cancel takes effect at once, also for a request not taken yet (a cold start:
        generate and cancel both wait in the pipe); everything else queues for the main thread."""
        told_to_stop = False
        for line in stream:
            if not line.strip():
                continue
            try:
                message = protocol.decode(line)
            except ValueError as error:
                self._commands.put({"command": "invalid", "message": str(error)})
                continue
            if message.get("command") == "cancel":
                self.cancel(message.get("id"))
                continue
            told_to_stop = told_to_stop or message.get("command") == "shutdown"
            self._commands.put(message)
        if told_to_stop:
            self._commands.put({"command": "shutdown"})  # the host said what it wanted before it closed stdin
        else:
            self.host_gone()

    def cancel(self, request_id: object = None) -> None:
        """Stop request `request_id` (None: the current one); one not started yet is cancelled when taken."""
        with self._state_lock:
            if request_id is None or request_id == self._current:
                self._cancel.set()
            elif request_id not in self._cancelled:
                self._cancelled.append(request_id)

    def host_gone(self) -> None:
        """The host closed our stdin without a `shutdown` (Slicer ended or crashed): stop the running
        request and take no more, so that an orphan does not finish its run."""
        with self._state_lock:
            self._host_gone = True
            self._cancel.set()
        self._commands.put({"command": "shutdown"})

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

    def engine_for(self, model: str, device: str, samples: int = 1):
        """The loaded engine (sadm.serving.host.EngineHost): loaded again only when the model folder, its
        weights or the device change; on CUDA the memory check runs first."""
        return self.host.engine_for(model, device, samples)

    def _take(self, request_id: object) -> bool:
        """Make `request_id` the current request; False when it was cancelled before it was taken."""
        with self._state_lock:
            if self._host_gone or request_id in self._cancelled:
                if request_id in self._cancelled:
                    self._cancelled.remove(request_id)
                return False
            self._cancel.clear()
            self._current = request_id
            return True

    def _generate(self, message: dict) -> None:
        request_id = message.get("id")
        if not self._take(request_id):
            self.send("cancelled", id=request_id, message="generation was cancelled before it started")
            return
        started = time.monotonic()
        try:
            request = protocol.request_from_json(message["request"])
            frames = [None if path is None else protocol.load_array(path) for path in message["frames"]]
            engine = self.engine_for(message["model"], message.get("device", "auto"), request.sampling.samples)

            def progress(done: int, total: int, frame: int) -> None:
                self.send("progress", id=request_id, done=done, total=total, frame=frame)

            generating = time.monotonic()
            result = self.host.generate(engine, frames, request, progress=progress, cancel=self._cancel)
            generate_seconds = time.monotonic() - generating
            paths = _write_result(result, Path(message["output"]))
        except GenerationCancelled as error:
            self.send("cancelled", id=request_id, message=str(error))
        except Exception as error:  # every failure is reported; the worker stays up for the next request
            self.send("error", id=request_id, **_describe_error(error, message))
            traceback.print_exc(file=sys.stderr)
        else:
            from sadm.devices import device_facts  # torch is loaded by now: the engine ran

            seconds = time.monotonic() - started
            release_cached_memory()  # before the facts, so the free memory they report is what Slicer gets
            self.send(
                "result",
                id=request_id,
                loads=self.loads,
                seconds=seconds,
                generate_seconds=generate_seconds,
                device=str(engine.device),
                facts=device_facts(engine.device),
                **paths,
            )
        finally:
            with self._state_lock:
                self._current = None
            release_cached_memory()


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
    if isinstance(error, OutOfDeviceMemory) or is_out_of_memory(error):
        free_device_memory()
        samples = (message.get("request") or {}).get("sampling", {}).get("samples", 1)
        text = str(error) if isinstance(error, OutOfDeviceMemory) else out_of_memory_message(samples)
        return {"type": protocol.OUT_OF_MEMORY, "message": text}
    if isinstance(error, KeyError):
        return {"type": "ProtocolError", "message": f"the generate command lacks the field {error}"}
    return {"type": type(error).__name__, "message": str(error)}


def main() -> int:
    """Entry point of `python -m sadm.serving`: serve until `shutdown` or the end of stdin."""
    channel = claim_stdout()
    worker = Worker(channel)
    signal.signal(signal.SIGINT, worker.cancel_current)
    if hasattr(signal, "SIGBREAK"):  # Windows: CTRL_BREAK_EVENT reaches a process group
        signal.signal(signal.SIGBREAK, worker.cancel_current)
    threading.Thread(target=worker.read_commands, args=(sys.stdin,), name="SADM worker stdin", daemon=True).start()
    return worker.serve()
