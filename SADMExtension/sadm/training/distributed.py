"""DistributedDataParallel under torchrun: where this process stands, gathering every rank's RNG
states onto rank 0 for a checkpoint, and the end-of-run check that every rank holds the same weights."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Distributed:
    """Where this process stands in a torchrun job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device: torch.device) -> Distributed:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _gather_bytes(parts: list[torch.Tensor], state: torch.Tensor, device: torch.device) -> None:
    """all_gather for CPU byte tensors on the NCCL backend (which only moves CUDA tensors)."""
    on_device = [torch.empty_like(p, device=device) for p in parts]
    dist.all_gather(on_device, state.to(device))
    for part, gathered in zip(parts, on_device):
        part.copy_(gathered.cpu())


def gather_states(local: dict[str, torch.Tensor], world: Distributed, device: torch.device) -> dict[str, torch.Tensor]:
    """{f"rng.{name}.rank{r}": state} of every rank, from each rank's `local` {name: state} (a collective:
    every rank calls it)."""
    if world.world_size == 1:
        return {f"rng.{name}.rank0": state for name, state in local.items()}
    gathered = {}
    for name, state in local.items():
        parts = [torch.empty_like(state) for _ in range(world.world_size)]
        dist.all_gather(parts, state) if device.type != "cuda" else _gather_bytes(parts, state, device)
        gathered.update({f"rng.{name}.rank{r}": part for r, part in enumerate(parts)})
    return gathered


def weight_checksums(model: torch.nn.Module, world: Distributed) -> list[float]:
    """Every rank's cheap fingerprint of its live weights (a collective), to check that all agree."""
    local = torch.tensor([weights_checksum(model)], dtype=torch.float64)
    parts = [torch.zeros_like(local) for _ in range(world.world_size)]
    dist.all_gather(parts, local)
    return [float(part) for part in parts]


def weights_checksum(model: torch.nn.Module) -> float:
    """A cheap fingerprint of the live weights."""
    return float(sum(p.detach().double().sum() for p in model.parameters()))


def shut_down() -> None:
    """Tear the process group down once no rank is still inside a collective."""
    dist.barrier()
    dist.destroy_process_group()
