"""HiViT Fig. 2 from attention_variance.csv: per-block box plots of the attention variance across seeds."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from ..analysis.attention_variance import KEY_NAME, read_variance_csv  # noqa: E402
from ..io import read_json, write_figure_atomic  # noqa: E402


def _seeds(csv_path: Path) -> Optional[int]:
    """How many seeds the study compared, from the key file written beside the CSV."""
    key_path = csv_path.with_name(KEY_NAME)
    return len(read_json(key_path)["seeds"]) if key_path.is_file() else None


def write_variance_figure(csv_path: Path) -> list[Path]:
    """attention_variance.{png,pdf} beside the CSV: one panel of per-block box plots per model, shared y axis."""
    studies = read_variance_csv(csv_path)
    seeds = _seeds(csv_path)
    widths = [max(2.6, 0.42 * v.shape[0]) for _, v in studies.values()]  # inches: room for a two-line title
    exponent = math.floor(math.log10(max(v.max().item() for _, v in studies.values()) or 1.0))
    fig, axes = plt.subplots(1, len(studies), sharey=True, squeeze=False, figsize=(1.4 + sum(widths), 4.2),
                             gridspec_kw={"width_ratios": widths})
    for ax, (step, (label, variances)) in zip(axes[0], studies.items()):
        depth, images = variances.shape
        ax.boxplot((variances.T / 10.0**exponent).numpy(), positions=range(1, depth + 1), widths=0.6,
                   flierprops={"marker": ".", "markersize": 2, "alpha": 0.4})
        ax.set_title(f"{label} [{step}]: {depth} blocks\n{seeds or '?'} seeds, {images} images", fontsize=10)
        ax.set_xlabel("block")
        ax.grid(axis="y", alpha=0.3)
    scale = f" (×$10^{{{exponent}}}$)" if exponent else ""
    axes[0][0].set_ylabel(f"variance across {seeds or 'N'} seeds of the\nhead-averaged attention map,\n"
                          f"mean over positions{scale}")
    fig.tight_layout()
    paths = [csv_path.with_suffix(".png"), csv_path.with_suffix(".pdf")]
    try:
        for path in paths:
            write_figure_atomic(fig, path)
    finally:
        plt.close(fig)
    return paths
