"""Peak memory of a block of work: CUDA's own counter, and the process's resident set sampled in a
background thread (the OS keeps only a lifetime peak, useless for comparing runs in one process)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch


@dataclass
class PeakMemory:
    cuda_gib: float | None = None
    rss_gib: float | None = None


class track_peak_memory:
    """with track_peak_memory(device) as peak: ...  → peak.cuda_gib, peak.rss_gib after the block."""

    def __init__(self, device: torch.device, interval_s: float = 0.02) -> None:
        self.device = device
        self.interval_s = interval_s
        self.peak = PeakMemory()
        self._stop = threading.Event()
        self._rss = 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        try:
            import psutil
        except ImportError:  # pragma: no cover - psutil is a dependency; keep the numbers optional
            self._thread = None
            return self.peak
        process = psutil.Process()
        self._rss = process.memory_info().rss

        def sample() -> None:
            while not self._stop.wait(self.interval_s):
                self._rss = max(self._rss, process.memory_info().rss)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self.peak

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak.rss_gib = self._rss / 2**30
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak.cuda_gib = torch.cuda.max_memory_allocated(self.device) / 2**30
