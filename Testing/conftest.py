"""Project-wide test settings: CPU only, a small thread count so parallel suites share the machine.

OMP_NUM_THREADS, when set, is the thread count (so `OMP_NUM_THREADS=1 pytest` really runs on one
thread); otherwise at most 2.
"""

import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import torch

_requested = os.environ.get("OMP_NUM_THREADS", "")
torch.set_num_threads(
    int(_requested) if _requested.isdigit() and int(_requested) > 0 else max(1, min(2, os.cpu_count() or 1))
)
