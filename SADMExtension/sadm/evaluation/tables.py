"""Per-subject means, mean ± std over subjects, and the Markdown table shaped like the paper's Table 2
(rows: methods; columns: SSIM / PSNR / NRMSE / change correlation / LV blood-pool volume error, each
'single / missing / full'),
one table per grid: the input's native grid (what a user sees) and the model's grid."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import numpy as np

METRICS = ("ssim", "psnr", "nrmse", "change", "lv_ml")
HIGHER_IS_BETTER = {"ssim": True, "psnr": True, "nrmse": False, "change": True, "lv_ml": False}
GRIDS = ("native", "model")
"""Where a frame is scored: the input's own grid (the default everywhere) or the model's grid."""
HEADINGS = {
    "ssim": "SSIM",
    "psnr": "PSNR",
    "nrmse": "NRMSE",
    "change": "change r",
    "lv_ml": "LV blood-pool volume error ml",
}
"""lv_ml: |LV blood-pool volume of the frame − of the truth| (sadm.evaluation.blood_pool), native grid,
cardiac sequences with an ED label only."""


def summarize(rows: Sequence[dict]) -> list[dict]:
    """{method, setting, grid, metric, mean, std, subjects}: frames averaged per subject first, then
    the mean and (population) std over subjects, so a long sequence does not outweigh a short one.
    Rows without a grid are model-grid rows (records written before native scoring); a metric a row
    lacks is left out."""
    per_subject: dict[tuple[str, str, str], dict[str, dict[str, list[float]]]] = {}
    for row in rows:
        key = (row["method"], row["setting"], row.get("grid") or "model")
        values = per_subject.setdefault(key, {}).setdefault(row["subject"], {m: [] for m in METRICS})
        for metric in METRICS:
            if row.get(metric) is not None and row.get(metric) != "":
                values[metric].append(float(row[metric]))
    summary = []
    for (method, setting, grid), subjects in per_subject.items():
        for metric in METRICS:
            if not all(values[metric] for values in subjects.values()):
                continue
            means = np.array([np.mean(values[metric]) for values in subjects.values()])
            summary.append(
                {
                    "method": method,
                    "setting": setting,
                    "grid": grid,
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
    summary: Sequence[dict],
    methods: Sequence[str],
    settings: Sequence[str],
    with_std: bool = False,
    grid: str = "native",
) -> str:
    """Rows: methods; columns: metrics with one value per setting ('single / missing / full'), for
    the frames scored on `grid`. The best method per setting and metric is bold."""
    lookup = {(s["method"], s["setting"], s["metric"]): s for s in summary if s.get("grid", "model") == grid}
    best = {}
    for setting in settings:
        for metric in METRICS:
            candidates = [(lookup[(m, setting, metric)]["mean"], m) for m in methods if (m, setting, metric) in lookup]
            if candidates:
                best[(setting, metric)] = (max if HIGHER_IS_BETTER[metric] else min)(candidates)[1]
    digits = {"ssim": 3, "psnr": 2, "nrmse": 3, "change": 3, "lv_ml": 2}
    joined = " / ".join(settings)
    metrics = [m for m in METRICS if any(key[2] == m for key in lookup)]
    header = "| method | " + " | ".join(f"{HEADINGS[metric]} ({joined})" for metric in metrics) + " |"
    lines = [header, "|---" * (len(metrics) + 1) + "|"]
    for method in methods:
        cells = []
        for metric in metrics:
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


def last_frame_rows(rows: Sequence[dict], grid: str = "native") -> list[dict]:
    """The rows of each subject's last frame on `grid` — the ES frame of an ED→ES cine, the frame the
    paper scores (§4.2) — in every setting where it was generated (single and full always; missing
    when it was drawn missing)."""
    last: dict[str, int] = {}
    for row in rows:
        last[row["subject"]] = max(last.get(row["subject"], 0), int(row["frame"]))
    return [row for row in rows if (row.get("grid") or "model") == grid and int(row["frame"]) == last[row["subject"]]]


def paper_units_table(rows: Sequence[dict], methods: Sequence[str], settings: Sequence[str]) -> str:
    """The last frame alone in the units recent work reports (SSIM × 100, PSNR dB, NRMSE), one column
    per setting with the subjects it averages: a model scored on ACDC sits beside published figures."""
    summary = {(s["method"], s["setting"], s["metric"]): s for s in summarize(last_frame_rows(rows))}
    units = (("ssim", "SSIM ×100", 100.0, 1), ("psnr", "PSNR", 1.0, 2), ("nrmse", "NRMSE", 1.0, 3))
    counts = {
        setting: max((s["subjects"] for (_, st, m), s in summary.items() if st == setting and m == "ssim"), default=0)
        for setting in settings
    }
    header = "| method | " + " | ".join(f"{label} ({' / '.join(settings)})" for _, label, _, _ in units) + " |"
    lines = [header, "|---" * (len(units) + 1) + "|"]
    for method in methods:
        cells = []
        for metric, _, factor, digits in units:
            values = []
            for setting in settings:
                entry = summary.get((method, setting, metric))
                values.append("–" if entry is None else f"{entry['mean'] * factor:.{digits}f}")
            cells.append(" / ".join(values))
        lines.append(f"| {method} | {' | '.join(cells)} |")
    subjects = " / ".join(str(counts[s]) for s in settings)
    return (
        "\n".join(lines)
        + f"\n\nSubjects per setting: {subjects} (missing: those whose last frame was drawn missing).\n"
    )
