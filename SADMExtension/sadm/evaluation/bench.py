"""`sadm bench`: speed, memory and quality of every sampler and step count on held-out sequences,
against the paper's 1000-step ancestral sampler measured in the same run.

Per case: per-frame latency (one future frame from all true frames before it, median of repeats
after a warm-up), whole-sequence time (the single setting: frame 0 given, all later frames generated
autoregressively), peak memory, and SSIM / PSNR against the truth plus the SSIM gap to the reference.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from sadm.diffusion.catalogue import sampler_spec
from sadm.evaluation.memory import track_peak_memory
from sadm.evaluation.runner import HeldOutSequence, ModelMethod, evaluate
from sadm.evaluation.tables import summarize


@dataclass(frozen=True)
class BenchCase:
    """One sampler setting; `guidance` None is the model's own w (classifier-free guidance doubles
    the UNet's batch, so w = 0 halves its work)."""

    sampler: str
    steps: int
    guidance: float | None = None
    options: tuple[tuple[str, float], ...] = ()  # the sampler's settings that differ from its defaults

    @property
    def label(self) -> str:
        settings = "".join(f" {name}={value:g}" for name, value in self.options)
        return f"{self.sampler} {self.steps}{settings}" + ("" if self.guidance is None else f" w={self.guidance:g}")


def bench_cases(
    samplers: Sequence[str],
    steps: Sequence[int],
    reference: BenchCase,
    guidances: Sequence[float | None] = (None,),
    options: Mapping[str, float] | None = None,
) -> list[BenchCase]:
    """The reference first (every gap is measured to it), then every sampler × steps × guidance; each
    sampler with those of `options` that are its own settings (sadm.diffusion.catalogue)."""
    cases = [reference]
    for sampler in samplers:
        names = {setting.name for setting in sampler_spec(sampler).settings}
        own = tuple(sorted((name, value) for name, value in (options or {}).items() if name in names))
        for count in steps:
            for guidance in guidances:
                case = BenchCase(sampler, count, guidance, own)
                if case not in cases:
                    cases.append(case)
    return cases


def _synchronize(engine) -> None:
    if engine.device.type == "cuda":
        import torch

        torch.cuda.synchronize(engine.device)


def measure_case(
    engine, case: BenchCase, sequences: Sequence[HeldOutSequence], repeats: int, seed: int
) -> tuple[dict, list[dict]]:
    """Timings and memory of one case, and its per-frame score rows (single setting)."""
    method = ModelMethod(
        case.label, engine, case.sampler, case.steps, case.guidance, sampler_options=dict(case.options)
    )
    first = sequences[0]
    one_frame_roles = ["observed"] * (len(first.frames) - 1) + ["future"]
    with track_peak_memory(engine.device) as peak:
        # Warm-up (allocator, kernels, caches): a few steps of the same sampler prime what the whole
        # frame uses, without paying 1000 reference steps twice.
        replace(method, steps=min(case.steps, 2)).predict(first.frames, one_frame_roles, first.times, seed)
        latencies = []
        for repeat in range(repeats):
            _synchronize(engine)
            started = time.perf_counter()
            method.predict(first.frames, one_frame_roles, first.times, seed + repeat)
            _synchronize(engine)
            latencies.append(time.perf_counter() - started)
        sequence_seconds = []

        class Timed:
            name = method.name

            def predict(self, frames, roles, times, run_seed, grid_frames=None):
                _synchronize(engine)
                started = time.perf_counter()
                result = method.predict(frames, roles, times, run_seed, grid_frames)
                _synchronize(engine)
                sequence_seconds.append(time.perf_counter() - started)
                return result

        rows = evaluate([Timed()], sequences, ["single"], seed).rows
    record = {
        "sampler": case.sampler,
        "steps": case.steps,
        "sampler_options": dict(case.options),
        "guidance": engine.config.diffusion.guidance if case.guidance is None else case.guidance,
        "frame_seconds": statistics.median(latencies),
        "sequence_seconds": statistics.median(sequence_seconds),
        "generated_frames": len(first.frames) - 1,
        "peak_cuda_gib": peak.cuda_gib,
        "peak_rss_gib": peak.rss_gib,
    }
    return record, rows


def run_bench(
    engine,
    sequences: Sequence[HeldOutSequence],
    cases: Sequence[BenchCase],
    repeats: int = 3,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """One record per case (the reference first) with timings, memory, quality and the gaps to the
    reference: ssim_gap = reference SSIM − case SSIM (mean over frames and subjects), speed-up."""
    records, scores = [], {}
    for case in cases:
        record, rows = measure_case(engine, case, sequences, repeats, seed)
        summary = {s["metric"]: s for s in summarize(rows)}
        record.update({metric: summary[metric]["mean"] for metric in ("ssim", "psnr", "nrmse", "change")})
        scores[case] = {(r["subject"], r["frame"]): r["ssim"] for r in rows}
        records.append(record)
        if progress is not None:
            progress(case.label)
    reference = records[0]
    reference_scores = scores[cases[0]]
    for case, record in zip(cases, records):
        paired = [reference_scores[key] - value for key, value in scores[case].items()]
        record["ssim_gap"] = float(np.mean(paired))
        record["speedup_per_frame"] = reference["frame_seconds"] / record["frame_seconds"]
    return records


def fastest_within(records: Sequence[dict], tolerance: float = 0.01) -> dict | None:
    """The quickest case (per frame) whose mean SSIM is within `tolerance` of the reference's."""
    eligible = [r for r in records[1:] if r["ssim_gap"] <= tolerance]
    return min(eligible, key=lambda r: r["frame_seconds"]) if eligible else None


def markdown(records: Sequence[dict]) -> str:
    """The bench table: one row per case, the reference first."""
    lines = [
        "| sampler | steps | w | s/frame | s/sequence | speed-up | SSIM | PSNR | change r | SSIM gap to reference "
        "| peak GPU GiB | peak RSS GiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        gpu = "–" if r["peak_cuda_gib"] is None else f"{r['peak_cuda_gib']:.2f}"
        rss = "–" if r["peak_rss_gib"] is None else f"{r['peak_rss_gib']:.2f}"
        lines.append(
            f"| {r['sampler']} | {r['steps']} | {r.get('guidance', float('nan')):g} | {r['frame_seconds']:.3f} | {r['sequence_seconds']:.2f} | "
            f"{r['speedup_per_frame']:.1f}× | {r['ssim']:.4f} | {r['psnr']:.2f} | {r.get('change', float('nan')):.3f} | "
            f"{r['ssim_gap']:+.4f} | {gpu} | {rss} |"
        )
    return "\n".join(lines) + "\n"
