"""The GPU memory check before a run: memory PyTorch's caching allocator keeps reserved from an earlier
run is free for this process, so a second run of the same size is not refused."""

from __future__ import annotations

import sys
import types

import pytest
from SADMModuleLib import resources

GB = 2**30


def fake_torch(driver_free: int, total: int, reserved: int, allocated: int) -> types.ModuleType:
    """torch.cuda as it reports after a run: mem_get_info is cudaMemGetInfo (the allocator's reserved
    blocks count as used), memory_reserved / memory_allocated are the caching allocator's own figures."""
    torch = types.ModuleType("torch")
    torch.device = lambda name: types.SimpleNamespace(index=0)
    torch.cuda = types.SimpleNamespace(
        mem_get_info=lambda index=0: (driver_free, total),
        memory_reserved=lambda index=0: reserved,
        memory_allocated=lambda index=0: allocated,
        get_device_name=lambda index=0: "Fake GPU",
    )
    return torch


@pytest.fixture
def estimate(monkeypatch):
    """A run needs 1 GB plus 1 GB per sample."""
    monkeypatch.setattr(resources, "estimateGpuMemoryBytes", lambda folder, config, samples: (1 + samples) * GB)


def test_second_run_reuses_the_memory_pytorch_cached_from_the_first(monkeypatch, estimate):
    monkeypatch.setitem(sys.modules, "torch", fake_torch(1 * GB, 8 * GB, reserved=5 * GB, allocated=0))
    resources.checkGpuMemory(None, None, samples=2, device="cuda")  # 1 + 5 GB free for this process


def test_memory_other_programs_hold_still_refuses_the_run(monkeypatch, estimate):
    monkeypatch.setitem(sys.modules, "torch", fake_torch(1 * GB, 8 * GB, reserved=1 * GB, allocated=1 * GB))
    with pytest.raises(resources.SADMResourceError, match=r"needs about 3\.0 GB .* has 1\.0 GB free of 8\.0 GB"):
        resources.checkGpuMemory(None, None, samples=2, device="cuda")
