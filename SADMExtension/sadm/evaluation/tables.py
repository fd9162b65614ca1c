"""Per-subject means, mean ± std over subjects, and the Markdown table shaped like the paper's Table 2
(rows: methods; columns: SSIM / PSNR / NRMSE, each 'single / missing / full')."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import numpy as np

METRICS = ("ssim", "psnr", "nrmse")
HIGHER_IS_BETTER = {"ssim": True, "psnr": True, "nrmse": False}


def summarize(rows: Sequence[dict]) -> list[dict]:
    """{method, setting, metric, mean, std, subjects}: frames averaged per subject first, then the
    mean and (population) std over subjects, so a long sequence does not outweigh a short one."""
    per_subject: dict[tuple[str, str], dict[str, dict[str, list[float]]]] = {}
    for row in rows:
        subjects = per_subject.setdefault((row["method"], row["setting"]), {})
        values = subjects.setdefault(row["subject"], {m: [] for m in METRICS})
        for metric in METRICS:
            values[metric].append(row[metric])
    summary = []
    for (method, setting), subjects in per_subject.items():
        for metric in METRICS:
            means = np.array([np.mean(values[metric]) for values in subjects.values()])
            summary.append(
                {
                    "method": method,
                    "setting": setting,
                    "metric": metric,
                    "mean": float(means.mean()),
                    "std": float(means.std()),
                    "subjects": len(means),
                }
            )
    return summary


def to_csv(rows: Sequence[dict], columns: Sequence[str]) -> str:
    handle = io.StringIO()
    writer = csv.DictWriter(handle, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items() if k in columns})
    return handle.getvalue()


def markdown_table(
    summary: Sequence[dict], methods: Sequence[str], settings: Sequence[str], with_std: bool = False
) -> str:
    """Rows: methods; columns: metrics with one value per setting ('single / missing / full').
    The best method per setting and metric is bold."""
    lookup = {(s["method"], s["setting"], s["metric"]): s for s in summary}
    best = {}
    for setting in settings:
        for metric in METRICS:
            candidates = [(lookup[(m, setting, metric)]["mean"], m) for m in methods if (m, setting, metric) in lookup]
            if candidates:
                best[(setting, metric)] = (max if HIGHER_IS_BETTER[metric] else min)(candidates)[1]
    digits = {"ssim": 3, "psnr": 2, "nrmse": 3}
    joined = " / ".join(settings)
    header = "| method | " + " | ".join(f"{metric.upper()} ({joined})" for metric in METRICS) + " |"
    lines = [header, "|---" * (len(METRICS) + 1) + "|"]
    for method in methods:
        cells = []
        for metric in METRICS:
            values = []
            for setting in settings:
                entry = lookup.get((method, setting, metric))
                if entry is None:
                    values.append("–")
                    continue
                text = f"{entry['mean']:.{digits[metric]}f}"
                if with_std:
                    text += f" ± {entry['std']:.{digits[metric]}f}"
                values.append(f"**{text}**" if best.get((setting, metric)) == method else text)
            cells.append(" / ".join(values))
        lines.append(f"| {method} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"
