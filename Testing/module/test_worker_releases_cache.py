"""Issue 19 item 8: the worker releases PyTorch's cached CUDA memory after every request (the model
stays loaded), so Slicer's volume rendering on the same GPU gets it back between runs."""

from __future__ import annotations

import io
import sys
import types

import pytest

from sadm.serving import worker as worker_module


class _FakeCuda:
    def __init__(self) -> None:
        self.emptied = 0

    def is_available(self) -> bool:
        return True

    def is_initialized(self) -> bool:
        return True

    def empty_cache(self) -> None:
        self.emptied += 1


class _FakeEngine:
    device = "cuda"

    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def generate(self, frames, request, progress=None, cancel=None):
        if self.fail:
            raise ValueError("bad request")
        return object()


@pytest.mark.parametrize("fail", [False, True])
def test_cache_emptied_after_each_request_and_engine_kept(monkeypatch, fail: bool) -> None:
    cuda = _FakeCuda()
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    monkeypatch.setattr(worker_module.protocol, "request_from_json", lambda payload: payload)
    monkeypatch.setattr(worker_module, "_write_result", lambda result, output: {"mean": {}, "std": None})
    engine = _FakeEngine(fail)
    worker = worker_module.Worker(io.StringIO())
    monkeypatch.setattr(worker, "engine_for", lambda model, device: engine)
    message = {"id": 1, "request": {}, "frames": [], "model": "m", "output": "unused"}
    for expected in (1, 2):
        worker._generate(message)
        assert cuda.emptied == expected
