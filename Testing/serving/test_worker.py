"""The warm worker (`python -m sadm.serving`) on its own, fed protocol lines: stdout carries only
protocol lines, the engine's errors travel with its words, cancel (read early, or the end of stdin)
stops a request. SADMModuleLib.workerprocess, the client, is tested with it in Testing/module."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sadm.errors import InvalidRolesError
from sadm.generation.request import GenerationRequest, SamplingOptions
from sadm.serving import protocol
from sadm.serving import worker as worker_module

WAIT_S = 300  # a generous limit for a stuck worker, never a timing assertion


def worker_lines(tiny_model, tmp_path, commands: list[dict], prelude: str = "") -> tuple[list[str], str]:
    """The raw stdout lines and stderr of a worker fed `commands` (then shutdown)."""
    code = f"from sadm.serving import worker\nchannel = worker.claim_stdout()\n{prelude}\n"
    code += "import sys, threading\nw = worker.Worker(channel)\n"
    code += "threading.Thread(target=w.read_commands, args=(sys.stdin,), daemon=True).start()\nsys.exit(w.serve())\n"
    feed = "".join(protocol.encode(c) for c in [*commands, {"command": "shutdown"}])
    done = subprocess.run(
        [sys.executable, "-c", code], input=feed, capture_output=True, text=True, timeout=WAIT_S, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines(), done.stderr


def generate_command(tiny_model, tmp_path, steps: int = 3, **options) -> dict:
    """A worker's `generate` line for frame 1 from frame 0 (SamplingOptions `options`)."""
    sampling = SamplingOptions(sampler="ddim", steps=steps, seed=5, **options)
    frame = protocol.save_array(tmp_path / "frame0.npy", np.random.default_rng(7).normal(100.0, 20.0, (6, 12, 10)))
    return {
        "command": "generate",
        "id": 1,
        "model": tiny_model,
        "device": "cpu",
        "request": protocol.request_to_json(GenerationRequest(("observed", "future"), None, sampling)),
        "frames": [frame, None],
        "output": str(tmp_path / "out"),
    }


def test_stdout_carries_only_protocol_lines(tiny_model, tmp_path):
    """Prints, C-level writes and warnings of the engine go to stderr; stdout stays parseable."""
    generate = generate_command(tiny_model, tmp_path)
    prelude = "print('a stray print')\nimport os\nos.write(1, b'a C-level write\\n')"
    stdout, stderr = worker_lines(tiny_model, tmp_path, [generate, {"command": "nonsense", "id": 2}], prelude)

    events = [json.loads(line) for line in stdout]
    assert [e["event"] for e in events] == ["ready", "progress", "progress", "progress", "result", "error"]
    assert "a stray print" in stderr and "a C-level write" in stderr
    assert events[-2]["loads"] == 1 and np.load(events[-2]["mean"]["1"], allow_pickle=False).shape == (6, 12, 10)
    assert events[-1]["type"] == "ProtocolError"


def test_bad_roles_on_the_wire_get_the_engines_message(tiny_model, tmp_path):
    generate = {"command": "generate", "id": 1, "model": tiny_model, "request": {"roles": ["missing"]}, "frames": []}
    stdout, _ = worker_lines(tiny_model, tmp_path, [generate])
    error = json.loads(stdout[-1])
    with pytest.raises(InvalidRolesError) as engine:
        GenerationRequest(("missing",))
    assert error == {"event": "error", "id": 1, "type": "InvalidRolesError", "message": str(engine.value)}


def test_a_cancel_read_before_its_generate_is_taken_cancels_it():
    """Defect 2, deterministic: the reader thread has read both lines before the main thread takes the
    generate command."""
    channel = io.StringIO()
    served = worker_module.Worker(channel)
    generate = {"command": "generate", "id": 7, "model": "never-loaded", "request": {}, "frames": [], "output": ""}
    served.read_commands(io.StringIO(protocol.encode(generate) + protocol.encode({"command": "cancel", "id": 7})))
    assert served.serve() == 0
    events = [json.loads(line) for line in channel.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["ready", "cancelled"] and events[1]["id"] == 7


def test_the_end_of_stdin_cancels_the_running_request(tiny_model, tmp_path):
    """Defect 3: Slicer gone (its end of the pipe closed) queued a shutdown behind the running request,
    so an orphan worker finished its whole run."""
    generate = generate_command(tiny_model, tmp_path, steps=100_000)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "sadm.serving"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        process.stdin.write(protocol.encode(generate))
        process.stdin.flush()
        while json.loads(process.stdout.readline())["event"] != "progress":
            pass
        process.stdin.close()  # Slicer ended
        assert process.wait(60) == 0
    finally:
        process.kill()
        process.wait()
