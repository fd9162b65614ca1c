"""Issue 19 item 8: the worker releases PyTorch's cached CUDA memory after every request (the model
stays loaded), so Slicer's volume rendering on the same GPU gets it back between runs."""

from __future__ import annotations

import io
import json
import sys
import types

import pytest
from SADMModuleLib import resources

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


def test_device_facts_read_the_free_memory_of_the_used_gpu_only(monkeypatch) -> None:
    """Issue 29 defect 8: `mem_get_info` on every GPU made a CUDA context (hundreds of MB) on each one,
    kept by the warm worker. The other GPUs give their name and total memory from their properties."""
    import torch

    asked = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"GPU {index}")
    monkeypatch.setattr(
        torch.cuda,
        "get_device_properties",
        lambda index: types.SimpleNamespace(name=f"GPU {index}", total_memory=8 << 30),
    )
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index: asked.append(index) or (5 << 30, 8 << 30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda index: 0)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda index: 0)
    request = types.SimpleNamespace(sampling=types.SimpleNamespace(samples=1))
    monkeypatch.setattr(worker_module.protocol, "request_from_json", lambda payload: request)
    monkeypatch.setattr(worker_module, "_write_result", lambda result, output: {"mean": {}, "std": None})
    engine = _FakeEngine(False)
    engine.device = torch.device("cuda:1")
    channel = io.StringIO()
    worker = worker_module.Worker(channel)
    monkeypatch.setattr(worker, "engine_for", lambda *args: engine)
    worker._generate({"id": 1, "request": {}, "frames": [], "model": "m", "output": "unused"})

    result = json.loads(channel.getvalue().splitlines()[-1])
    assert result["event"] == "result", result
    assert asked == [1]
    assert result["facts"]["cuda"] == [
        {"name": "GPU 0", "free": None, "total": 8 << 30},
        {"name": "GPU 1", "free": 5 << 30, "total": 8 << 30},
        {"name": "GPU 2", "free": None, "total": 8 << 30},
    ]
    line = resources.describeDevice("cuda:2", facts=result["facts"])
    assert line == "CUDA: GPU 2, 8.0 GB; its free memory is checked when Generate starts"
