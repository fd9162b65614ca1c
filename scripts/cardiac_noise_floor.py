#!/usr/bin/env python3
"""How close can a generative model get to the cardiac test frames on its own grid?

Renders the held-out cardiac phantoms (seed 1000) and their noise-free twins
(`cardiac_subject(..., noisy=False)`: the same subject without its Rician noise), prepares both on a
model's grid with the noisy sequence's intensity range, frames as acquired, and scores, as `sadm
evaluate` does, a perfect sampler against the noisy truth: the noise-free frame plus the noise of a
frame half the sequence away (a fresh draw of the same kind, as a sampler that knew the anatomy
exactly would produce). It also prints how many frames each subject has from ED to ES.

    .venv/bin/python scripts/cardiac_noise_floor.py [--model cardiac-demo] [--subjects 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from sadm.data.preprocess import preprocess_sequence
from sadm.evaluation.held_out import held_out_params
from sadm.evaluation.metrics import score
from sadm.generation.engine import Engine
from sadm.io.readers import discover_sequences
from sadm.phantoms import cardiac_subject, make_synthetic


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="cardiac-demo", help="the model whose grid and frame count to use")
    parser.add_argument("--subjects", type=int, default=8)
    args = parser.parse_args()
    config = Engine.load(args.model, device="cpu").config
    params = held_out_params(config)
    with tempfile.TemporaryDirectory() as work:
        data = make_synthetic("cardiac", Path(work) / "cardiac", subjects=args.subjects, seed=1000)
        sampler, native = [], []
        for index, source in enumerate(discover_sequences(data)):
            noisy_sequence = source.read()
            twin = cardiac_subject(1000, index, noisy=False).frames  # the same subject without its noise
            clean_sequence = replace(noisy_sequence, frames=[twin[t] for t in range(len(noisy_sequence.frames))])
            native.append(len(noisy_sequence.frames))
            prepared = preprocess_sequence(noisy_sequence, params)
            noisy = prepared.frames
            clean = preprocess_sequence(clean_sequence, params, intensity=prepared.intensity).frames
            later = list(range(1, len(noisy)))  # frame 1 is always given
            far = later[len(later) // 2 :] + later[: len(later) // 2]  # never the frame itself nor a neighbour
            sampler.append(
                np.mean([score(noisy[i], clean[i] + noisy[j] - clean[j])["psnr"] for i, j in zip(later, far)])
            )
    print(
        f"{len(sampler)} held-out cardiac subjects ({min(native)}-{max(native)} native frames ED->ES) "
        f"on the {tuple(config.grid)} grid: a perfect sampler scores PSNR "
        f"{np.mean(sampler):.2f} ± {np.std(sampler):.2f} dB against the noisy truth (mean ± std over subjects)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
