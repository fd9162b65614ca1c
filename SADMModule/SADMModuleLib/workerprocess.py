"""Generation in a long-lived worker process (`python -m sadm.serving`), kept warm between runs.

Slicer's main thread holds Python's GIL (PythonQt runs without thread support), so a worker thread
only runs while the main thread waits; a separate process runs at full speed whatever the GUI does.
As SlicerMONAIAuto3DSeg's BackgroundProcess does (MONAIAuto3DSegLib/process.py: `sys.executable`,
i.e. PythonSlicer inside Slicer, and a thread that blocks in `readline` feeding a queue that a QTimer
drains), reader threads turn the worker's JSON lines into a queue; blocking reads release the GIL
and work on Windows, where pipes cannot be non-blocking. No Qt and no scene here: `WorkerRun.poll()`
yields the events of SADMModuleLib.generationrun.GenerationRun, and the main thread makes nodes.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import sadm
import sadm.errors
from sadm.errors import GenerationCancelled, SADMError
from sadm.serving import protocol
from SADMModuleLib.dependencies import SADMDependencyError, torchLoadProblem
from SADMModuleLib.resources import deviceProblem

STARTUP_TIMEOUT_S = 120.0
"""How long the worker may take to import torch and say `ready` (a cold start on a slow disk)."""
SHUTDOWN_GRACE_S = 5.0
"""How long a worker told to shut down may take before its process tree is killed (in the background)."""
STDERR_LINES = 20
"""The worker's last stderr lines kept for the message when it stops unexpectedly."""
LAUNCHER_CRASH = "exit abnormally"
"""What CTK's launcher (PythonSlicer) prints when the program it runs crashed or was killed; it then
exits with code 1 (CTK AppLauncher, Base/ctkAppLauncher.cpp, `applicationFinished`)."""


class WorkerError(SADMError, RuntimeError):
    """The worker reported an error that is not one of the engine's own (e.g. out of memory)."""


class WorkerCrashed(WorkerError):
    """The worker process ended during a run; the next run starts a new one."""


def findPython() -> str:
    """The interpreter that runs the worker: in Slicer `sys.executable` is PythonSlicer; it is empty when
    the application was started without its launcher (SlicerApp-real), then PythonSlicer is looked up on
    PATH, as slicer.util's pip helpers, SlicerTotalSegmentator and SlicerMONAIAuto3DSeg do."""
    if sys.executable:
        return sys.executable
    found = shutil.which("PythonSlicer")
    if found:
        return found
    raise WorkerError(
        "Slicer's Python (PythonSlicer) was not found: sys.executable is empty and PythonSlicer is not on PATH, "
        "as when SlicerApp-real is started directly. Start Slicer with its launcher (Slicer, or Slicer.exe on "
        "Windows), or add the folder that holds PythonSlicer (Slicer's bin folder) to PATH."
    )


def killProcessTree(process: subprocess.Popen | None, workerPid: int | None = None) -> None:
    """Kill the worker and whatever runs it. In Slicer the process started is PythonSlicer, a CTK launcher
    that runs python-real as its child and does not forward a kill (SlicerMONAIAuto3DSeg's process.py:
    "proc.kill() does not work, that would only stop the launcher"). POSIX: the worker was started in its
    own session, so its whole process group goes, and the pid the worker reported in `ready`; Windows:
    `taskkill /T` on the launcher's tree and on the worker."""
    pids = [pid for pid in (workerPid, None if process is None else process.pid) if pid]
    if os.name == "nt":
        for pid in pids:
            subprocess.run(
                ["taskkill", "/F", "/T", "/PID", str(pid)],
                capture_output=True,
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
                check=False,
            )
    else:
        if process is not None:
            with contextlib.suppress(OSError):  # the launcher's group: the launcher and python-real
                os.killpg(process.pid, signal.SIGKILL)
        if workerPid and (process is None or process.poll() is None or workerPid != process.pid):
            with contextlib.suppress(OSError):
                os.kill(workerPid, signal.SIGKILL)
    if process is not None:
        with contextlib.suppress(OSError):
            process.kill()


_stopping: set = set()  # (process, workerPid) of workers told to shut down and not yet gone


def _reap(process: subprocess.Popen, workerPid: int | None, grace: float) -> None:
    """Background: wait for a worker told to shut down; kill its tree when it does not go in time."""
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        killProcessTree(process, workerPid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    _stopping.discard((process, workerPid))


@atexit.register
def _killStopping() -> None:
    """Slicer quits: workers still shutting down are killed, not waited for."""
    for process, workerPid in list(_stopping):
        if process.poll() is None:
            killProcessTree(process, workerPid)


class WorkerProcess:
    """One warm `python -m sadm.serving` process. Start runs with `WorkerRun(worker, request).start()`;
    call `shutdown()` when the scene closes or Slicer quits."""

    def __init__(self, python: str | None = None, env: dict[str, str] | None = None) -> None:
        """python: the interpreter (default `findPython()`: in Slicer, PythonSlicer). env: the worker's
        environment (default: this process's), with the `sadm` engine put on PYTHONPATH."""
        self.python = python
        self.env = dict(os.environ if env is None else env)
        engineRoot = str(Path(sadm.__file__).resolve().parent.parent)
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (engineRoot, self.env.get("PYTHONPATH")) if p)
        self.env["PYTHONUNBUFFERED"] = "1"
        # The pipes are read as UTF-8; on Windows Python would write them in the ANSI code page.
        self.env["PYTHONIOENCODING"] = "utf-8"
        self._process: subprocess.Popen | None = None
        self._events: queue.Queue = queue.Queue()
        self._stderr: collections.deque = collections.deque(maxlen=STDERR_LINES)
        self._ready = False
        self._writeLock = threading.Lock()
        self._nextId = 0
        self.activeRun: WorkerRun | None = None
        self.starts = 0
        self.workerPid: int | None = None
        """The pid of the Python running the worker, from its `ready` (behind PythonSlicer, not `pid`)."""
        self.loads = 0  # model loads by the current worker, as its last `ready` / `result` said
        self.deviceFacts: dict | None = None
        """What the worker's torch runs on (sadm.devices.device_facts), from its last result: the panel
        describes the device from these, so Slicer's own process never imports torch."""

    @property
    def pid(self) -> int | None:
        """The process started (in Slicer the PythonSlicer launcher; the worker itself is `workerPid`)."""
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def ensureStarted(self) -> None:
        """Start the worker unless a live one is there (after a crash, a fresh one)."""
        if self.running:
            return
        self._discard()
        python = self.python or findPython()
        newGroup = {"start_new_session": True} if os.name != "nt" else {}
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        self._process = subprocess.Popen(
            [python, "-m", "sadm.serving"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            creationflags=flags,
            **newGroup,
        )
        self._events = queue.Queue()
        self._stderr.clear()
        self._ready = False
        self.workerPid = None
        self.starts += 1
        process, events = self._process, self._events
        stderrReader = threading.Thread(target=self._readStderr, args=(process,), name="SADM worker log", daemon=True)
        stderrReader.start()
        threading.Thread(
            target=self._readStdout, args=(process, events, stderrReader), name="SADM worker", daemon=True
        ).start()

    def newId(self) -> int:
        self._nextId += 1
        return self._nextId

    def send(self, message: dict) -> None:
        """Write one command line; a worker that has gone is reported by the reader as `exited`."""
        process = self._process
        if process is None or process.stdin is None:
            return
        with self._writeLock:
            try:
                process.stdin.write(protocol.encode(message))
                process.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                pass  # the stdout reader sees the end of the process and reports it

    def nextEvent(self, timeout: float | None) -> dict | None:
        """The next protocol event (None when none came within `timeout`; 0: do not block)."""
        try:
            if timeout is not None and timeout <= 0:
                event = self._events.get_nowait()
            else:
                event = self._events.get(timeout=timeout)
        except queue.Empty:
            return None
        if event.get("event") == "ready":
            self._ready = True
            if isinstance(event.get("pid"), int):
                self.workerPid = event["pid"]
        if "loads" in event:
            self.loads = event["loads"]
        if isinstance(event.get("facts"), dict):
            self.deviceFacts = event["facts"]
        return event

    def crashMessage(self, returncode: int | None) -> str:
        """What happened to the worker, in words, with its last stderr lines. Through PythonSlicer a worker
        killed by a signal (the out-of-memory killer) or crashed shows as the launcher's exit code 1 and
        its "exit abnormally" line."""
        lines = [line for line in self._stderr if line.strip()]
        if returncode is not None and returncode < 0:
            try:
                how = f"was killed by {signal.Signals(-returncode).name}"
            except ValueError:
                how = f"was killed by signal {-returncode}"
            if -returncode == getattr(signal, "SIGKILL", 9):
                how += " (often the system running out of memory)"
        elif returncode == 1 and any(LAUNCHER_CRASH in line for line in lines[-3:]):
            how = "crashed or was killed (often the system running out of memory)"
            lines = [line for line in lines if LAUNCHER_CRASH not in line]
        else:
            how = f"stopped with exit code {returncode}"
        text = f"the SADM worker process {how}; no node was added. Press Generate again to start a new one."
        tail = lines[-5:]
        return text + ("\nIts last messages:\n" + "\n".join(tail) if tail else "")

    def shutdown(self, timeout: float | None = None, wait: bool = False) -> None:
        """End the worker without blocking the GUI: cancel its run, ask it to go and close its stdin; a
        background thread kills its process tree if it has not gone within `timeout`. wait=True: block
        until it has gone (tests, scripts)."""
        process, workerPid = self._process, self.workerPid
        if process is None:
            return
        if self.activeRun is not None and not self.activeRun.finished:
            self.activeRun.cancel()
        self.send({"command": "shutdown"})
        try:
            if process.stdin is not None:
                process.stdin.close()
        except OSError:
            pass
        self._discard()
        if process.poll() is not None:
            return
        _stopping.add((process, workerPid))
        timeout = SHUTDOWN_GRACE_S if timeout is None else timeout
        reaper = threading.Thread(
            target=_reap, args=(process, workerPid, timeout), name="SADM worker stop", daemon=True
        )
        reaper.start()
        if wait:
            reaper.join()

    def kill(self) -> None:
        """Kill the worker's whole process tree now (it did not start in time)."""
        process, workerPid = self._process, self.workerPid
        self._discard()
        killProcessTree(process, workerPid)

    def _discard(self) -> None:
        self._process = None
        self._ready = False

    def _readStdout(self, process: subprocess.Popen, events: queue.Queue, stderrReader: threading.Thread) -> None:
        for line in process.stdout:
            if not line.strip():
                continue
            try:
                events.put(protocol.decode(line))
            except ValueError:
                logging.warning(f"SADM worker: not a protocol line: {line.rstrip()[:200]}")
        returncode = process.wait()
        stderrReader.join(2.0)  # its last lines (the launcher's "exit abnormally") belong to the message
        events.put({"event": "exited", "returncode": returncode})

    def _readStderr(self, process: subprocess.Popen) -> None:
        for line in process.stderr:
            self._stderr.append(line.rstrip())
            logging.debug(f"SADM worker: {line.rstrip()}")


class WorkerGeneration:
    """The worker's result as the Logic reads it (`mean`, `std`, {frame: array} on the input grid)."""

    def __init__(self, request, mean: dict[int, object], std: dict[int, object] | None) -> None:
        self.request = request
        self.mean = mean
        self.std = std

    def __getitem__(self, index: int):
        return self.mean[index]

    def __iter__(self):
        return iter(self.mean)

    def __len__(self) -> int:
        return len(self.mean)


class WorkerRun:
    """One generation in the warm worker, with GenerationRun's interface: `start()`, `cancel()`,
    `wait(timeout)`, `finished`, `cancelRequested`, `outcome`, `result`, `error`, `seconds`, and
    `poll()` -> [("progress", (done, total, frame)) ..., ("done" | "cancelled" | "failed", payload)]."""

    def __init__(self, worker: WorkerProcess, request) -> None:
        """request: the Logic's PreparedRequest (frames, engine request, modelFolder, device)."""
        self.request = request
        self.outcome: str | None = None
        self.result: WorkerGeneration | None = None
        self.error: BaseException | None = None
        self.seconds = 0.0
        self.device: str | None = None  # what the worker resolved the request's device to
        self.generateSeconds: float | None = None  # the engine's own time, without a model load
        self._worker = worker
        self._cancelRequested = False
        self._pending: list[tuple] = []
        self._id: int | None = None
        self._folder: Path | None = None
        self._started = 0.0
        self._startDeadline = 0.0

    def start(self) -> WorkerRun:
        worker = self._worker
        if worker.activeRun is not None and not worker.activeRun.finished:
            raise RuntimeError("a generation is already running in the SADM worker; cancel it or wait for it")
        worker.activeRun = self
        self._started = time.monotonic()
        try:
            worker.ensureStarted()
            self._startDeadline = self._started + STARTUP_TIMEOUT_S
            self._folder = Path(tempfile.mkdtemp(prefix="SADMWorker"))
            framePaths = []
            for index, frame in enumerate(self.request.frames):
                if frame is None:
                    framePaths.append(None)
                else:
                    framePaths.append(protocol.save_array(self._folder / f"frame{index}.npy", frame))
            self._id = worker.newId()
            worker.send(
                {
                    "command": "generate",
                    "id": self._id,
                    "model": str(self.request.modelFolder),
                    "device": str(self.request.device),
                    "request": protocol.request_to_json(self.request.request),
                    "frames": framePaths,
                    "output": str(self._folder / "result"),
                }
            )
        except Exception as error:
            self._finish("failed", error)
        return self

    def cancel(self) -> None:
        """Stop the run within one denoising step; the worker stays warm."""
        if self._cancelRequested or self.finished:
            self._cancelRequested = True
            return
        self._cancelRequested = True
        self._worker.send({"command": "cancel", "id": self._id})

    def wait(self, timeout: float | None = None) -> None:
        """Block until the run has finished or `timeout` seconds passed (None: until finished)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            self._pump(0.5 if left is None else min(left, 0.5))

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def cancelRequested(self) -> bool:
        return self._cancelRequested

    def poll(self) -> list[tuple]:
        """Events since the last poll (never blocks)."""
        while not self.finished and self._pump(0):
            pass
        events, self._pending = self._pending, []
        return events

    def _pump(self, timeout: float) -> bool:
        """Handle at most one worker event; False when none came."""
        event = self._worker.nextEvent(timeout)
        if event is None:
            if not self._worker._ready and time.monotonic() > self._startDeadline and not self.finished:
                self._worker.kill()
                self._finish(
                    "failed",
                    WorkerCrashed(f"the SADM worker did not start within {STARTUP_TIMEOUT_S:.0f} s; it was stopped"),
                )
            return False
        kind = event.get("event")
        if kind == "exited":
            self._worker._discard()
            self._finish("failed", WorkerCrashed(self._worker.crashMessage(event.get("returncode"))))
            return True
        if event.get("id") != self._id:
            return True  # ready, or the end of an earlier run
        if kind == "progress":
            self._pending.append(("progress", (event["done"], event["total"], event["frame"])))
        elif kind == "result":
            try:
                self.result = self._readResult(event)
                self.seconds = time.monotonic() - self._started
                self.device = event.get("device")
                self.generateSeconds = event.get("generate_seconds")
                self._finish("done", self.result)
            except Exception as error:
                self._finish("failed", WorkerError(f"the worker's result could not be read: {error}"))
        elif kind == "cancelled":
            self._finish("cancelled", GenerationCancelled(event.get("message", "generation was cancelled")))
        elif kind == "error":
            self._finish("failed", _exceptionFor(event))
        return True

    def _readResult(self, event: dict) -> WorkerGeneration:
        mean = {int(index): protocol.load_array(path) for index, path in event["mean"].items()}
        std = event.get("std")
        if std is not None:
            std = {int(index): protocol.load_array(path) for index, path in std.items()}
        return WorkerGeneration(self.request.request, mean, std)

    def _finish(self, outcome: str, payload) -> None:
        if self.finished:
            return
        self.outcome = outcome
        if outcome == "done":
            self.result = payload
        else:
            self.error = payload
        self._pending.append((outcome, payload))
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
        if self._worker.activeRun is self:
            self._worker.activeRun = None


def _exceptionFor(event: dict) -> BaseException:
    """The exception the in-process path raises for the same failure (the engine's own type and
    message; the Slicer advice for devices and PyTorch); else WorkerError."""
    message = event.get("message", "the SADM worker failed")
    if event.get("type") == "TorchLoadError":
        return SADMDependencyError(torchLoadProblem(message))
    errorType = getattr(sadm.errors, str(event.get("type")), None)
    if isinstance(errorType, type) and issubclass(errorType, sadm.errors.DeviceError):
        return deviceProblem(errorType(message))
    if isinstance(errorType, type) and issubclass(errorType, sadm.errors.SADMError):
        return errorType(message)
    if event.get("type") in ("ValueError", "TypeError"):
        return ValueError(message)
    return WorkerError(message)
