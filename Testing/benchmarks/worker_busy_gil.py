"""Generation speed while the main thread keeps the GIL busy, as Slicer's main thread does: the
same request (bundled cardiac-demo, CPU) timed (a) by the engine in a process of its own, (b) through
the warm worker process (SADMModuleLib.workerprocess) and (c) through the thread-based GenerationRun,
both polled the way the panel's QTimer polls them between stretches of pure-Python work. The model
load is outside every timing. Usage (the issue asks for b/a <= 1.1):

    OMP_NUM_THREADS=1 python Testing/benchmarks/worker_busy_gil.py --steps 5 --repeats 3 [--hold c]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "Testing" / "module"), str(ROOT / "SADMModule")]

POLL_INTERVAL_S = 0.1  # the panel's QTimer interval
HOLD = {"mode": "python", "c_call_size": 0}
"""How the main thread is busy: "python", a pure-Python loop (the eval loop lets other threads in at
every switch interval), or "c", one long C call per poll that keeps the GIL throughout, as Slicer's
main thread does while Qt runs its event loop (PythonQt without thread support)."""


def stay_busy(seconds: float) -> None:
    """Keep the GIL busy for about `seconds`, the way HOLD says."""
    until = time.perf_counter() + seconds
    if HOLD["mode"] == "c":
        while time.perf_counter() < until:
            sum(range(HOLD["c_call_size"]))  # a C loop: no thread switch until it returns
        return
    while time.perf_counter() < until:
        pass  # pure Python


def calibrate_c_call(seconds: float) -> int:
    """The size of `sum(range(n))` that keeps the GIL about `seconds` on this machine."""
    size = 100_000
    while True:
        started = time.perf_counter()
        sum(range(size))
        if time.perf_counter() - started >= seconds / 2:
            return size
        size *= 2


WORKER_SLICE_S = 0.02  # the panel's run.wait() per poll (SADMModuleWidget.WORKER_SLICE_S)
ROLES = ("observed", "missing", "observed", "future")


def frames(shape: tuple[int, int, int]) -> list[np.ndarray | None]:
    rng = np.random.default_rng(0)
    return [rng.normal(100.0, 20.0, shape).astype(np.float32) if r == "observed" else None for r in ROLES]


def own_process(model: str, steps: int, shape: tuple[int, int, int], repeats: int, busy: bool = False) -> list[float]:
    """(a) The engine alone in a fresh interpreter (what `sadm generate` does, minus file I/O).
    busy: this process runs the pure-Python loop meanwhile, so that (a) shares the CPU cores as (b)
    does and only the GIL and the protocol differ (the control on a machine with few cores)."""
    code = f"""
import json, sys, time
sys.path[:0] = {[str(ROOT / "Testing" / "benchmarks")]!r}
from worker_busy_gil import frames, request
from sadm.generation.engine import Engine
engine = Engine.load({model!r}, "cpu")
engine.generate(frames({shape!r}), request({steps}))  # warm-up, as the worker's first run
times = []
for _ in range({repeats}):
    started = time.perf_counter()
    engine.generate(frames({shape!r}), request({steps}))
    times.append(time.perf_counter() - started)
print(json.dumps(times))
"""
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    while busy and child.poll() is None:
        stay_busy(POLL_INTERVAL_S)
    stdout, _ = child.communicate()
    if child.returncode:
        raise RuntimeError(f"the engine process failed with exit code {child.returncode}")
    return json.loads(stdout.splitlines()[-1])


def request(steps: int):
    from sadm.generation.request import GenerationRequest, SamplingOptions

    return GenerationRequest(ROLES, None, SamplingOptions(sampler="ddim", steps=steps, seed=0))


@dataclass
class Prepared:
    """The fields of the Logic's PreparedRequest that a run reads."""

    request: object
    frames: list
    modelFolder: str
    device: str = "cpu"
    notes: list = field(default_factory=list)

    @property
    def targets(self) -> list[int]:
        return self.request.targets


def busy_until_finished(run, slice_s: float) -> float:
    """Poll `run` as the panel does, keeping the GIL busy with pure Python in between; wall seconds."""
    started = time.perf_counter()
    while not run.finished:
        stay_busy(POLL_INTERVAL_S)
        if slice_s:
            run.wait(timeout=slice_s)
        run.poll()
    if run.outcome != "done":
        raise RuntimeError(f"the run ended {run.outcome}: {run.error}")
    return time.perf_counter() - started


def through_worker(model: str, steps: int, shape: tuple[int, int, int], repeats: int, slice_s: float) -> list[float]:
    """(b) The warm worker process; its first run (the model load) is not timed."""
    from SADMModuleLib.workerprocess import WorkerProcess, WorkerRun

    worker = WorkerProcess(sys.executable)
    try:
        busy_until_finished(WorkerRun(worker, Prepared(request(steps), frames(shape), model)).start(), slice_s)
        return [
            busy_until_finished(WorkerRun(worker, Prepared(request(steps), frames(shape), model)).start(), slice_s)
            for _ in range(repeats)
        ]
    finally:
        worker.shutdown()


def through_thread(model: str, steps: int, shape: tuple[int, int, int], repeats: int) -> list[float]:
    """(c) The thread-based GenerationRun in this process, polled with the panel's worker slice."""
    import slicerharness

    slicerharness.install()
    import torch
    from SADMModuleLib.generationrun import GenerationRun

    from sadm.generation.engine import Engine

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    engine = Engine.load(model, "cpu")

    class Logic:
        def runRequest(self, prepared, progress=None, cancel: threading.Event | None = None):
            return engine.generate(prepared.frames, prepared.request, progress=progress, cancel=cancel)

    engine.generate(frames(shape), request(steps))  # warm-up
    return [
        busy_until_finished(
            GenerationRun(Logic(), Prepared(request(steps), frames(shape), model)).start(), WORKER_SLICE_S
        )
        for _ in range(repeats)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cardiac-demo")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--shape", default="10,64,64", help="input frame shape k,j,i")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-thread", action="store_true", help="skip (c), the slow one")
    parser.add_argument("--hold", choices=("python", "c"), default="python", help="how the main thread keeps the GIL")
    args = parser.parse_args()
    HOLD["mode"] = args.hold
    HOLD["c_call_size"] = calibrate_c_call(POLL_INTERVAL_S)
    shape = tuple(int(n) for n in args.shape.split(","))

    results = {"model": args.model, "steps": args.steps, "shape": shape, "roles": ROLES}
    results["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS")
    results["hold"] = args.hold
    timings = {"a_own_process": own_process(args.model, args.steps, shape, args.repeats)}
    timings["a_own_process_beside_busy_loop"] = own_process(args.model, args.steps, shape, args.repeats, busy=True)
    timings["b_worker_busy_gil"] = through_worker(args.model, args.steps, shape, args.repeats, 0.0)
    timings["b_worker_busy_gil_with_panel_slice"] = through_worker(
        args.model, args.steps, shape, args.repeats, WORKER_SLICE_S
    )
    if not args.skip_thread:
        timings["c_thread_busy_gil"] = through_thread(args.model, args.steps, shape, args.repeats)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    results["seconds"] = timings
    results["median_s"] = medians
    results["ratio_to_a"] = {name: value / medians["a_own_process"] for name, value in medians.items()}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
