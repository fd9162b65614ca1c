"""Project-wide test settings: CPU only, a small thread count so parallel suites share the machine.

OMP_NUM_THREADS, when set, is the thread count (so `OMP_NUM_THREADS=1 pytest` really runs on one
thread); otherwise at most 2.
"""

import os

import pytest

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import torch

_requested = os.environ.get("OMP_NUM_THREADS", "")
torch.set_num_threads(
    int(_requested) if _requested.isdigit() and int(_requested) > 0 else max(1, min(2, os.cpu_count() or 1))
)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """An untrained tiny SADM model folder (grid 8×16×16, up to 6 frames): fast, and enough to test
    everything but image quality (the command, worker and module tests; the engine tests have their own)."""
    from sadm.config import preset
    from sadm.networks.sadm import SADM
    from sadm.storage.checkpoint import save_model

    torch.manual_seed(0)
    return str(save_model(tmp_path_factory.mktemp("models") / "tiny", SADM(preset("tiny"))))
