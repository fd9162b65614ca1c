"""Training throughput of a config: optimiser steps per second, sequences per second and peak memory
for Algorithm 1 steps (partition, target, loss, backward, AdamW) on random sequences of the config's
grid and length, so the number reflects the model and not the disk. Usage:

    python Testing/benchmarks/training_throughput.py configs/cardiac-demo.json --steps 10
    python Testing/benchmarks/training_throughput.py --preset paper --batch-size 2 --device cuda
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import torch

from sadm.devices import autocast, resolve_device
from sadm.networks.sadm import SADM, parameter_count
from sadm.training.batches import make_batch
from sadm.training.experiment import model_config_from, read_experiment


def measure(
    model_spec,
    batch_size: int,
    frames: int,
    steps: int,
    device: torch.device,
    bf16: bool = True,
    channels_last: bool = False,
) -> dict:
    config = model_config_from(model_spec)
    config.validate()
    model = SADM(config).to(device).train().use_channels_last(channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    sequences = torch.rand(batch_size, frames, *config.grid, generator=generator).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = []
    for step in range(steps + 1):  # step 0 warms up (allocator, kernels)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        batch = make_batch(sequences, generator=generator, context=config.attention.context)
        with autocast(device, bf16):
            loss = model(batch, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step:
            seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    return {
        "grid": list(config.grid),
        "frames": frames,
        "batch_size": batch_size,
        "parameters": parameter_count(model),
        "device": str(device),
        "channels_last": channels_last,
        "threads": torch.get_num_threads(),
        "step_seconds_median": round(median, 4),
        "steps_per_second": round(1.0 / median, 3),
        "sequences_per_second": round(batch_size / median, 3),
        "peak_cuda_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if device.type == "cuda" else None,
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", help="training config JSON (model + training.batch_size/num_frames)")
    parser.add_argument("--preset", help="a model preset instead of a config file")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--frames", type=int, help="sequence length (default: the model's max_frames)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--channels-last", action="store_true", help="UNet in channels-last 3D layout")
    args = parser.parse_args()
    experiment = read_experiment(args.config)
    spec = args.preset or experiment.get("model", "demo")
    training = experiment.get("training", {})
    batch_size = args.batch_size or training.get("batch_size", 4)
    frames = args.frames or training.get("num_frames") or model_config_from(spec).max_frames
    print(
        json.dumps(
            measure(spec, batch_size, frames, args.steps, resolve_device(args.device), channels_last=args.channels_last)
        )
    )


if __name__ == "__main__":
    main()
