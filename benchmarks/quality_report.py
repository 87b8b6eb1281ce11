"""What the quality benchmark writes: the Markdown table, the JSON record and the guidance plot.

The table follows the paper's layout (Tables 1, 4 and 8 side by side): quality columns,
VAE reconstruction columns, physics columns; one row for the ground truth and one per
model; each cell is the mean over replications +- the 95% interval. "-" marks a metric that
does not apply to the row (MModality and reconstruction for the ground truth) or that this
dataset cannot give (joints of InterX); "n/a" a metric without data (Contact when no test
sample should touch).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from dhvae_sdk.atomic_file import atomic_output

GROUND_TRUTH = "Ground truth"
PV_NOTE = ("PV (voxels): overlapping 2 cm voxels of the two bodies per frame, averaged over all frames (the paper's "
           "Table 8 definition); PV (ml): the same overlap as a volume, 8 ml per voxel (the unit of the paper's code).")
# (key, header); the arrow says which direction is better ("->" : closer to the ground truth).
COLUMNS = (
    ("fid", "FID ↓"),
    ("r_precision_top1", "R-Prec Top1 ↑"),
    ("r_precision_top2", "R-Prec Top2 ↑"),
    ("r_precision_top3", "R-Prec Top3 ↑"),
    ("mm_dist", "MM-Dist ↓"),
    ("diversity", "Diversity →"),
    ("mmodality", "MModality ↑"),
    ("rfid", "rFID ↓"),
    ("recon_r_precision_top3", "Recon R-Prec Top3 ↑"),
    ("mpjpe", "MPJPE (m) ↓"),
    ("pose_mpjpe", "Pose MPJPE (m) ↓"),
    ("path_error", "Path error (m) ↓"),
    ("pose_motion_ratio", "Pose motion ratio → 1"),
    ("feature_l1", "L1 ↓"),
    ("pv", "PV (voxels) ↓"),
    ("pv_ml", "PV (ml) ↓"),
    ("pfr", "PFR ↓"),
    ("pdr", "PDR ↓"),
    ("contact", "Contact ↑"),
)


def format_cell(entry: dict[str, float] | None) -> str:
    if entry is None:
        return "-"
    if not math.isfinite(entry["mean"]):
        return "n/a"
    # round() then + 0.0 turns a rounded -0.0 (a ground-truth FID of -1e-12) into 0.0.
    return f"{round(entry['mean'], 3) + 0.0:.3f}±{entry['ci95']:.3f}"


def markdown_table(summaries: dict[str, dict[str, dict[str, float]]], deviations: list[str] = (),
                   columns: tuple[tuple[str, str], ...] = COLUMNS) -> str:
    """{row label: {metric: {"mean", "ci95"}}} -> a Markdown table with ``columns`` ((key, header)
    pairs), followed by the list of protocol deviations, if any."""
    lines = ["| Method | " + " | ".join(header for _, header in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for label, summary in summaries.items():
        lines.append(f"| {label} | " + " | ".join(format_cell(summary.get(key)) for key, _ in columns) + " |")
    lines += ["", PV_NOTE]
    if deviations:
        lines += ["", "Protocol deviations:", *(f"- {line}" for line in deviations)]
    return "\n".join(lines) + "\n"


def json_ready(value):
    """NaN and infinities become null (JSON has neither); numpy scalars and arrays become Python."""
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_text(path: Path, text: str) -> Path:
    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return path


def write_json(path: Path, record: dict) -> Path:
    return write_text(path, json.dumps(json_ready(record), indent=1, allow_nan=False) + "\n")


def plot_guidance_sweep(path: Path, sweeps: dict[str, dict[float, dict[str, dict[str, float]]]]) -> Path:
    """FID and R-Precision top 3 against the guidance scale, one line per model (with 95% bars).

    ``sweeps``: {model label: {guidance: {metric: {"mean", "ci95"}}}}.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(1, 2, figsize=(10, 4))
    for label, points in sweeps.items():
        scales = sorted(points)
        for axis, metric in zip(axes, ("fid", "r_precision_top3")):
            axis.errorbar(scales, [points[s][metric]["mean"] for s in scales],
                          yerr=[points[s][metric]["ci95"] for s in scales], marker="o", capsize=3, label=label)
    for axis, title in zip(axes, ("FID (lower is better)", "R-Precision top 3 (higher is better)")):
        axis.set_xlabel("guidance scale")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png", dpi=120)
    pyplot.close(figure)
    return path
