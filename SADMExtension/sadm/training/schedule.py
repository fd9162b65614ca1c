"""The training schedule: the learning rate at each step and which sequences each micro-batch holds
(the same on every rank count and across resumes)."""

from __future__ import annotations

import math

import torch

from sadm.config import TrainConfig
from sadm.errors import ConfigError
from sadm.training.distributed import Distributed


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up to `lr`, then cosine decay to `lr × min_lr_ratio` at the last step."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)


class BatchSchedule:
    """Which sequences each micro-batch holds, as a pure function of (seed, step, micro-batch, rank):
    every rank sees a disjoint slice of one shuffled epoch (a DistributedSampler without state), and
    a resumed run sees exactly the batches an uninterrupted one would."""

    def __init__(self, dataset_size: int, config: TrainConfig, world: Distributed) -> None:
        if dataset_size < 1:
            raise ConfigError("the training set is empty; check --data and the validation split")
        self.size = dataset_size
        self.config = config
        self.world = world
        self._epoch, self._order = -1, None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.config.seed * 100003 + epoch)
            self._epoch, self._order = epoch, torch.randperm(self.size, generator=generator)
        return self._order

    def indices(self, step: int, micro: int) -> list[int]:
        c = self.config
        per_step = c.batch_size * c.grad_accumulation * self.world.world_size
        start = step * per_step + (micro * self.world.world_size + self.world.rank) * c.batch_size
        out = []
        for position in range(start, start + c.batch_size):
            out.append(int(self._permutation(position // self.size)[position % self.size]))
        return out
