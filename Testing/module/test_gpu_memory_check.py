"""The GPU memory check before a run (sadm.devices.check_gpu_memory, which the worker and the
in-process Logic both call): memory PyTorch's caching allocator keeps reserved from an earlier run is
free for this process, so a second run of the same size is not refused."""

from __future__ import annotations

import pytest
import torch
from SADMModuleLib import resources

from sadm import devices
from sadm.errors import InsufficientDeviceMemoryError

GB = 2**30


@pytest.fixture
def card(monkeypatch):
    """torch.cuda as it reports after a run: mem_get_info is cudaMemGetInfo (the allocator's reserved
    blocks count as used), memory_reserved / memory_allocated are the caching allocator's own figures;
    a run needs 1 GB plus 1 GB per sample."""

    def install(driver_free: int, total: int, reserved: int, allocated: int) -> None:
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index=0: (driver_free, total))
        monkeypatch.setattr(torch.cuda, "memory_reserved", lambda index=0: reserved)
        monkeypatch.setattr(torch.cuda, "memory_allocated", lambda index=0: allocated)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Fake GPU")

    monkeypatch.setattr(devices, "estimate_gpu_memory_bytes", lambda folder, config, samples: (1 + samples) * GB)
    return install


def test_second_run_reuses_the_memory_pytorch_cached_from_the_first(card):
    card(1 * GB, 8 * GB, reserved=5 * GB, allocated=0)
    devices.check_gpu_memory(None, None, samples=2, device="cuda")  # 1 + 5 GB free for this process


def test_memory_other_programs_hold_still_refuses_the_run(card):
    card(1 * GB, 8 * GB, reserved=1 * GB, allocated=1 * GB)
    with pytest.raises(InsufficientDeviceMemoryError, match=r"needs about 3\.0 GB .* has 1\.0 GB free of 8\.0 GB"):
        devices.check_gpu_memory(None, None, samples=2, device="cuda")


def test_the_in_process_logic_says_the_same_as_its_own_error(card):
    card(1 * GB, 8 * GB, reserved=1 * GB, allocated=1 * GB)
    with pytest.raises(resources.SADMResourceError, match=r"needs about 3\.0 GB .* Even one sample does not fit"):
        resources.checkGpuMemory(None, None, samples=2, device="cuda")
