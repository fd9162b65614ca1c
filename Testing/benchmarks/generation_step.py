"""Parameter counts and the time of one guided denoising step (one batched CFG forward pass)
for a model config at one or more grids. Usage:

    python Testing/benchmarks/generation_step.py --preset paper --grid 16,32,32 --grid 32,128,128
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from sadm.config import preset
from sadm.devices import autocast, resolve_device
from sadm.diffusion.gaussian import guided_eps_fn
from sadm.networks.sadm import SADM, parameter_count


def time_step(
    name: str,
    grid: tuple[int, int, int],
    device: torch.device,
    repeats: int,
    context: int,
    channels_last: bool = False,
    compile: bool = False,
) -> dict:
    config = preset(name).updated({"grid": list(grid)})
    model = SADM(config).to(device).eval().use_channels_last(channels_last)
    if compile:
        model.unet.compile()
    frames = torch.rand(1, context, *grid, device=device)
    mask = torch.ones(1, context, dtype=torch.bool, device=device)
    positions = torch.arange(context, dtype=torch.float32, device=device)[None]
    with torch.no_grad(), autocast(device):
        start = time.perf_counter()
        conditioning = model.condition(frames, mask, positions, torch.tensor([float(context)], device=device))
        attention_seconds = time.perf_counter() - start
        eps_fn = guided_eps_fn(model.denoise, conditioning, guidance=0.1)
        z = torch.randn(1, 1, *grid, device=device)
        log_snr = torch.zeros(1, device=device)
        eps_fn(z, log_snr)  # warm-up
        times = []
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            eps_fn(z, log_snr)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return {
        "preset": name,
        "grid": list(grid),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "attention_params": parameter_count(model.attention),
        "unet_params": parameter_count(model.unet),
        "attention_seconds": round(attention_seconds, 4),
        "step_seconds_median": round(statistics.median(times), 4),
        "repeats": repeats,
        "channels_last": channels_last,
        "compile": compile,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--grid", action="append", default=None, help="k,j,i (repeatable)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--context", type=int, default=11, help="frames before the target (paper: up to 11)")
    parser.add_argument("--channels-last", action="store_true", help="UNet in channels-last 3D layout")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet (the first call compiles)")
    args = parser.parse_args()
    grids = [tuple(int(n) for n in g.split(",")) for g in (args.grid or ["16,32,32", "32,128,128"])]
    device = resolve_device(args.device)
    for grid in grids:
        print(
            json.dumps(
                time_step(args.preset, grid, device, args.repeats, args.context, args.channels_last, args.compile)
            )
        )


if __name__ == "__main__":
    main()
