"""Generation in the warm worker process (`python -m sadm.serving` driven by
SADMModuleLib.workerprocess): the same frames as the in-process engine, the model kept loaded, cancel,
a killed worker, the engine's own errors, and a stdout that carries only protocol lines."""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from SADMModuleLib import workerprocess
from SADMModuleLib.workerprocess import WorkerCrashed, WorkerError, WorkerGeneration, WorkerProcess, WorkerRun

from sadm.errors import GenerationCancelled, InvalidRolesError
from sadm.generation.engine import Engine
from sadm.generation.request import GenerationRequest, SamplingOptions
from slicerharness.launcher import alive, python_real, write_launcher

WAIT_S = 300  # a generous limit for a stuck worker, never a timing assertion


@dataclass
class Request:
    """What WorkerRun reads from the Logic's PreparedRequest."""

    request: GenerationRequest
    frames: list
    modelFolder: str
    device: str = "cpu"
    notes: list = field(default_factory=list)

    @property
    def targets(self) -> list[int]:
        return self.request.targets


def frames(count: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.normal(100.0, 20.0, (6, 12, 10)).astype(np.float32) for _ in range(count)]


def request_for(model: str, roles=("observed", "missing", "observed", "future"), steps: int = 3, **sampling) -> Request:
    request = GenerationRequest(tuple(roles), None, SamplingOptions(sampler="ddim", steps=steps, seed=5, **sampling))
    observed = frames(len(roles))
    return Request(request, [f if r == "observed" else None for f, r in zip(observed, roles)], model)


@pytest.fixture
def worker():
    """A worker on this interpreter, with the test process's thread count (same float reductions)."""
    process = WorkerProcess(sys.executable, env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())})
    yield process
    process.shutdown(wait=True)


def run(worker: WorkerProcess, request: Request) -> tuple[WorkerRun, list[tuple]]:
    generation = WorkerRun(worker, request).start()
    generation.wait(WAIT_S)
    assert generation.finished, "the worker did not answer"
    return generation, generation.poll()


def wait_for_progress(generation: WorkerRun) -> list[tuple]:
    events = []
    for _ in range(WAIT_S * 10):
        events += generation.poll()
        if events:
            return events
        generation.wait(0.1)
    raise AssertionError("no progress event came")


def test_the_worker_generates_the_in_process_engines_frames(worker, tiny_model):
    """Resampled up, so that every draw reaches the output (an untrained model's warp moves nothing)."""
    request = request_for(tiny_model, samples=2, native="resample")
    generation, events = run(worker, request)
    expected = Engine.load(tiny_model, "cpu").generate(request.frames, request.request)

    assert generation.outcome == "done", generation.error
    assert events[-1] == ("done", generation.result)
    assert isinstance(generation.result, WorkerGeneration)
    assert sorted(generation.result.mean) == [1, 3]
    for index in (1, 3):
        assert np.array_equal(generation.result.mean[index], expected.mean[index])
        assert np.array_equal(generation.result.std[index], expected.std[index])
    progress = [payload for kind, payload in events if kind == "progress"]
    assert progress[-1] == (6, 6, 3) and len(progress) == 6


def test_the_worker_stays_warm_between_runs(worker, tiny_model):
    first, _ = run(worker, request_for(tiny_model))
    pid = worker.pid
    second, _ = run(worker, request_for(tiny_model, steps=2))
    assert first.outcome == second.outcome == "done"
    assert worker.pid == pid and worker.starts == 1
    assert worker.loads == 1


def test_cancel_stops_a_long_run_and_the_worker_serves_the_next(worker, tiny_model):
    long = WorkerRun(worker, request_for(tiny_model, steps=100_000)).start()
    wait_for_progress(long)
    long.cancel()
    long.wait(WAIT_S)
    assert long.outcome == "cancelled" and long.cancelRequested
    assert isinstance(long.error, GenerationCancelled)
    assert long.poll()[-1][0] == "cancelled"

    pid = worker.pid
    after, _ = run(worker, request_for(tiny_model))
    assert after.outcome == "done" and worker.pid == pid


def test_a_killed_worker_is_reported_and_the_next_run_starts_a_new_one(worker, tiny_model):
    long = WorkerRun(worker, request_for(tiny_model, steps=100_000)).start()
    wait_for_progress(long)
    killed = worker.pid
    os.kill(killed, signal.SIGKILL)
    long.wait(WAIT_S)
    events = long.poll()

    assert long.outcome == "failed" and events[-1] == ("failed", long.error)
    assert isinstance(long.error, WorkerCrashed)
    assert "killed by SIGKILL" in str(long.error) and "Generate again" in str(long.error)

    after, _ = run(worker, request_for(tiny_model))
    assert after.outcome == "done"
    assert worker.pid != killed and worker.starts == 2


def test_a_request_the_engine_refuses_gives_its_own_error(worker, tiny_model):
    """Seven frames for a model built for six: the engine's type and words, the worker still up."""
    roles = ("observed",) * 6 + ("future",)
    request = request_for(tiny_model, roles=roles)
    with pytest.raises(InvalidRolesError) as in_process:
        Engine.load(tiny_model, "cpu").generate(request.frames, request.request)

    refused, events = run(worker, request)
    assert refused.outcome == "failed" and events[-1][0] == "failed"
    assert type(refused.error) is InvalidRolesError
    assert str(refused.error) == str(in_process.value)
    assert run(worker, request_for(tiny_model))[0].outcome == "done"


# --- behind PythonSlicer (slicerharness/launcher.py models CTK's launcher) -------------------------


def behind_launcher(tmp_path, cold_start_s: float = 0.0) -> WorkerProcess:
    """A worker started as in Slicer: PythonSlicer, a launcher running python-real as its child."""
    launcher = write_launcher(tmp_path, cold_start_s)
    return WorkerProcess(launcher, env={**os.environ, "OMP_NUM_THREADS": "1"})


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def test_shutdown_kills_python_real_behind_the_launcher(tmp_path, tiny_model):
    """Defect 1: `process.kill()` stopped only the launcher; the real worker went on holding its memory."""
    worker = behind_launcher(tmp_path, cold_start_s=120)  # busy: it reads no command for two minutes
    WorkerRun(worker, request_for(tiny_model)).start()
    real = python_real(worker.pid)
    worker.shutdown(timeout=0.5)
    assert wait_gone(real, 20), "python-real outlived the shutdown of its launcher"


def test_the_startup_timeout_kills_python_real_behind_the_launcher(tmp_path, tiny_model, monkeypatch):
    monkeypatch.setattr(workerprocess, "STARTUP_TIMEOUT_S", 1.0)
    worker = behind_launcher(tmp_path, cold_start_s=120)
    generation = WorkerRun(worker, request_for(tiny_model)).start()
    real = python_real(worker.pid)
    generation.wait(WAIT_S)
    assert generation.outcome == "failed" and "did not start within 1 s" in str(generation.error)
    assert wait_gone(real, 20), "python-real outlived the startup timeout"


def test_a_worker_killed_behind_the_launcher_is_reported_as_killed(tmp_path, tiny_model):
    """Defect 6: through PythonSlicer a killed worker is the launcher's exit code 1 and 'exit abnormally'."""
    worker = behind_launcher(tmp_path)
    try:
        long = WorkerRun(worker, request_for(tiny_model, steps=100_000)).start()
        wait_for_progress(long)
        assert worker.workerPid not in (None, worker.pid)  # the pid `ready` gave: python-real's
        os.kill(worker.workerPid, signal.SIGKILL)  # as the out-of-memory killer does
        long.wait(WAIT_S)
        assert long.outcome == "failed" and isinstance(long.error, WorkerCrashed)
        message = str(long.error)
        assert "crashed or was killed (often the system running out of memory)" in message, message
        assert "exit abnormally" not in message and "Generate again" in message
    finally:
        worker.shutdown(wait=True)


def test_a_cancel_sent_during_a_cold_start_stops_the_run(tmp_path, tiny_model):
    """Defect 2: generate and cancel both wait in the pipe while the worker starts; the cancel was dropped
    (its id was not the current one yet) and the whole run went on behind "Cancelling…"."""
    worker = behind_launcher(tmp_path, cold_start_s=2.0)
    try:
        long = WorkerRun(worker, request_for(tiny_model, steps=100_000)).start()
        long.cancel()
        long.wait(90)
        assert long.outcome == "cancelled", f"the run went on after Cancel: {long.outcome}"
        after, _ = run(worker, request_for(tiny_model))  # the same warm worker serves the next run
        assert after.outcome == "done" and worker.starts == 1
    finally:
        worker.shutdown(wait=True)


def test_the_worker_writes_utf8_whatever_the_console_code_page(tmp_path, tiny_model):
    """Defect 10: on Windows the worker's stderr was written in the ANSI code page (modelled here by
    PYTHONIOENCODING=cp1252 in Slicer's environment) and read as UTF-8."""
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text('raise OSError("Überwachung: Gerät fehlt")\n', encoding="utf-8")
    env = {**os.environ, "PYTHONIOENCODING": "cp1252", "PYTHONPATH": str(tmp_path)}
    worker = WorkerProcess(sys.executable, env=env)
    try:
        generation = WorkerRun(worker, request_for(tiny_model)).start()
        generation.wait(WAIT_S)
        deadline = time.monotonic() + 10
        while not any("OSError: Überwachung" in line for line in worker._stderr) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any("OSError: Überwachung: Gerät fehlt" in line for line in worker._stderr), list(worker._stderr)
    finally:
        worker.shutdown(wait=True)


def test_python_slicer_is_found_on_path_when_sys_executable_is_empty(tmp_path, tiny_model, monkeypatch):
    """Defect 9: started without its launcher (SlicerApp-real), Slicer's sys.executable is ""."""
    launcher = write_launcher(tmp_path)
    monkeypatch.setattr(sys, "executable", "")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert workerprocess.findPython() == launcher

    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(WorkerError, match="PythonSlicer\\) was not found.*Start Slicer with its launcher"):
        workerprocess.findPython()
    generation = WorkerRun(WorkerProcess(), request_for(tiny_model)).start()  # reported as the run's failure
    assert generation.outcome == "failed" and "PythonSlicer) was not found" in str(generation.error)
